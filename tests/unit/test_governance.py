"""ARCHITECTURE §1, enforced by reading the source (AST scans, like a linter).

Each rule is a function ``rule(root) -> list[str]`` over a package directory laid out like
``src/lensforge``; it returns one line per violation. Every rule is shown to pass on the real
tree and to fail on a small synthetic module that breaks it.
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import lensforge

PACKAGE = "lensforge"
SRC = Path(lensforge.__file__).resolve().parent

# -- reading a source tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. lensforge.execution.jobs
    path: Path
    rel: str  # path relative to the package root, e.g. execution/jobs.py
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@functools.cache
def _parse(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def modules(root: Path) -> Iterator[Module]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        parts = [PACKAGE, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        yield Module(".".join(parts), path, rel.as_posix(), _parse(path, path.stat().st_mtime_ns))


def imported_modules(module: Module, known: set[str]) -> Iterator[tuple[int, str, str | None]]:
    """(line, module, name) for every import of a ``lensforge`` module, wherever it appears.

    ``name`` is the name taken from the module (``from m import name``), None for ``import m``.
    """
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if candidate in known:  # `from lensforge.execution import jobs`: the submodule
                    yield node.lineno, candidate, None
                else:
                    yield node.lineno, base, alias.name


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def enclosing_functions(tree: ast.Module) -> dict[ast.AST, str]:
    """Every node mapped to the qualified name of the function (or class) around it."""
    owner: dict[ast.AST, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = f"{scope}.{child.name}" if scope else child.name
            owner[child] = inner
            visit(child, inner)

    visit(tree, "")
    return owner


# -- rule (a): only the ToolRunner invokes tool code -------------------------------------------

TOOL_RUNNER = "execution/tool_runner.py"


def tool_invocation_violations(root: Path) -> list[str]:
    """``ToolSpec.function`` (the tool callable) is read or called only in the ToolRunner."""
    violations = []
    for module in modules(root):
        if module.rel == TOOL_RUNNER:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and node.attr == "function":
                kind = "calls" if isinstance(node.ctx, ast.Load) else "touches"
                violations.append(f"{module.rel}:{node.lineno} {kind} <expr>.function")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"getattr", "setattr"}
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "function"
            ):
                violations.append(f"{module.rel}:{node.lineno} reads .function via getattr")
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "function":
                        violations.append(f"{module.rel}:{node.lineno} imports 'function'")
    return violations


# -- rule (b): layers import only downward ----------------------------------------------------

# The execution chain, top to bottom; a layer may import its own rank or lower.
EXECUTION_RANKS: dict[str, int] = {
    "lensforge.execution": 0,  # the package docstring only
    "lensforge.execution.analysis": 4,
    "lensforge.execution.uploads": 4,  # the front door's streamed uploads
    "lensforge.execution.streams": 4,  # live frame streams: front-door sessions
    # the job layer: lifecycle, claiming and capacity, heartbeat and recovery
    "lensforge.execution.jobs": 3,
    "lensforge.execution.dispatch": 3,
    "lensforge.execution.leases": 3,
    "lensforge.execution.waiting": 3,
    "lensforge.execution.progress": 3,
    # plugin execution: hands a job to an executor through the middleware chain
    "lensforge.execution.plugins": 2,
    "lensforge.execution.middleware": 2,
    "lensforge.execution.verdicts": 2,
    # executors: where the ToolRunner runs (inline, threads, supervised processes, Ray)
    "lensforge.execution.executors": 1,
    "lensforge.execution.executors.base": 1,
    "lensforge.execution.executors.inline": 1,
    "lensforge.execution.executors.thread": 1,
    "lensforge.execution.executors.local": 1,
    "lensforge.execution.executors.ray": 1,
    "lensforge.execution.channel": 1,
    "lensforge.execution.worker": 1,
    "lensforge.execution.tool_runner": 0,
}
API_RANK = 5


def is_wiring(name: str) -> bool:
    """Top-level wiring (the ``cli`` package, every module of it, ``wiring`` and ``testing``,
    which builds services for tests): may import anything."""
    return name in ("lensforge.wiring", "lensforge.testing") or within(name, "lensforge.cli")


# The store, from most to least guarded:
# - its private modules (group commit, DB-API layer, statements, reads and writes): the store
#   itself only;
# - JobStore and its protocol (reads and writes jobs): the job layer, the store itself and
#   wiring;
# - the job tables: the store itself;
# - job types (Status, JobRecord, ...): the plugin layer and above (never the executors, the
#   ToolRunner or foundation modules); other tables (keys, audit) are not job state.
STORE_PRIVATE = {
    f"lensforge.store.{name}"
    for name in ("dbapi", "writer", "database", "writes", "reads", "readback")
}
JOBSTORE_NAMES = {"JobStore", "JobStoreProtocol"}
JOBSTORE_USERS = (
    "lensforge.execution.jobs",
    "lensforge.execution.dispatch",
    "lensforge.execution.leases",
    "lensforge.execution.progress",
    "lensforge.store",
)
JOB_TABLES = {"jobs", "job_events"}
JOB_TYPE_USERS_MIN_RANK = EXECUTION_RANKS["lensforge.execution.plugins"]
JOB_TYPES_MODULES = (
    "lensforge.store",
    "lensforge.store.store",
    "lensforge.store.records",
    "lensforge.store.protocol",
)
JOB_TYPE_NAMES = {"Status", "TERMINAL"}  # from lensforge.store.tables


def rank(name: str) -> int | None:
    """The layer of a module: None for foundation modules (below every execution layer)."""
    if within(name, "lensforge.api"):
        return API_RANK
    if within(name, "lensforge.execution"):
        return EXECUTION_RANKS.get(name, -99)
    return None


def _import_violation(src: str, src_rank: int | None, target: str, name: str | None) -> str:
    """Why ``src`` may not import ``target`` (``name`` from it), or an empty string."""
    if within(src, "lensforge.store") and within(target, "lensforge.store"):
        return ""
    if target in STORE_PRIVATE:
        return "the store's group commit, DB-API layer and statements are private to it"
    if within(target, "lensforge.cli"):
        return "nothing imports the CLI"
    if within(target, "lensforge.api") and not within(src, "lensforge.api"):
        return "nothing but the CLI imports the API"
    if is_wiring(target) and src_rank != API_RANK:
        return "only the API and the CLI import top-level wiring"
    if within(target, "lensforge.execution"):
        if src_rank is None:
            return "foundation modules sit below every execution layer"
        if (rank(target) or 0) > src_rank:
            return "a layer imports only from layers below it"
    if name in JOBSTORE_NAMES and not any(within(src, allowed) for allowed in JOBSTORE_USERS):
        return "only the job layer touches the store (JobStore)"
    if target == "lensforge.store.tables" and name in JOB_TABLES:
        return "only the store itself touches the job tables"
    uses_job_types = target in JOB_TYPES_MODULES or (
        target == "lensforge.store.tables" and (name is None or name in JOB_TYPE_NAMES)
    )
    if uses_job_types and (src_rank is None or src_rank < JOB_TYPE_USERS_MIN_RANK):
        return "only the job layer and above use the store's job types"
    return ""


def layer_violations(root: Path) -> list[str]:
    mods = list(modules(root))
    known = {m.name for m in mods}
    violations = []
    for module in mods:
        src = module.name
        if within(src, "lensforge.execution") and src not in EXECUTION_RANKS:
            violations.append(f"{module.rel}: execution module not assigned to a layer")
            continue
        if is_wiring(src):
            continue
        src_rank = rank(src)
        for line, target, name in imported_modules(module, known):
            why = _import_violation(src, src_rank, target, name)
            if why:
                shown = f"{target}.{name}" if name else target
                violations.append(f"{module.rel}:{line} imports {shown}: {why}")
        if not any(within(src, allowed) for allowed in JOBSTORE_USERS):
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Name) and node.id in JOBSTORE_NAMES:
                    violations.append(
                        f"{module.rel}:{node.lineno} names JobStore: "
                        "only the job layer touches the store"
                    )
    return violations


# -- rule (c): job status is written only through the store's transition function ------------

STORE_MODULE = "store/writes.py"
# in store/writes.py: the guarded update (and the helper that builds it), and the insert
STATUS_WRITERS = {"_transition", "_update_statement", "create"}
# the job layer (jobs.py applies verdicts, dispatch.py claims) and the in-memory store,
# a second implementation of the same guarded transition, and the tracing decorator, which
# only passes the job layer's calls on to the store it wraps
TRANSITION_CALLERS = {
    "execution/jobs.py",
    "execution/dispatch.py",
    "testing.py",
    "store/traced.py",
}
# store methods that change job status: transition, claim, transition_and_claim, ...
STATUS_CHANGING_METHOD = re.compile(r"(^|_)(transition|claim)(_|$)")
RAW_STATUS_SQL = re.compile(
    r"\b(update\s+\w*jobs\w*\s+set\b[^;]*\bstatus\b|insert\s+into\s+\w*jobs)", re.I
)


def _is_status_key(key: ast.expr | None) -> bool:
    if isinstance(key, ast.Constant) and key.value == "status":
        return True
    return isinstance(key, ast.Attribute) and key.attr == "status"  # jobs.c.status


def _dict_sets_status(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Dict) and any(_is_status_key(k) for k in node.keys)


def _chain_has_write(node: ast.expr) -> bool:
    """Whether a call chain like ``update(jobs).where(...)`` starts from update() or insert()."""
    while True:
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in {"update", "insert"} and (
                isinstance(func, ast.Name) or not isinstance(func.value, ast.Call)
            ):
                return True
            node = func.value if isinstance(func, ast.Attribute) else func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return False


def _dicts_with_status(function: ast.AST) -> set[str]:
    """Names assigned a dict literal with a "status" key (or given one later) in a function."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and _dict_sets_status(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Subscript)
            and isinstance(node.targets[0].value, ast.Name)
            and _is_status_key(node.targets[0].slice)
        ):
            names.add(node.targets[0].value.id)
    return names


DRIVER_CALLS = {"run", "execute", "executemany", "exec_driver_sql", "rows", "records"}


def _chain(node: ast.Call, parents: dict[ast.AST, ast.AST]) -> list[ast.Call]:
    """Every call of the method chain ``node`` belongs to (``a(...).b(...).c(...)``)."""
    top: ast.AST = node
    while True:
        parent = parents.get(top)
        grand = parents.get(parent) if parent is not None else None
        if (
            isinstance(parent, ast.Attribute)
            and isinstance(grand, ast.Call)
            and grand.func is parent
        ):
            top = grand
        else:
            break
    calls = []
    current: ast.AST = top
    while isinstance(current, ast.Call | ast.Attribute):
        if isinstance(current, ast.Call):
            calls.append(current)
            current = current.func
        else:
            current = current.value
    return calls


def _guards_status(calls: list[ast.Call]) -> bool:
    """Whether a ``.where(...)`` of the chain compares the status column (a guarded update)."""
    for call in calls:
        if isinstance(call.func, ast.Attribute) and call.func.attr == "where":
            for arg in call.args:
                for node in ast.walk(arg):
                    if isinstance(node, ast.Compare) and _is_status_key(node.left):
                        return True
    return False


def _is_update(calls: list[ast.Call]) -> bool:
    root = calls[-1].func if calls else None
    name = root.id if isinstance(root, ast.Name) else getattr(root, "attr", "")
    return name == "update"


def status_write_violations(root: Path) -> list[str]:
    violations = []
    for module in modules(root):
        owners = enclosing_functions(module.tree)
        parents = {
            child: parent
            for parent in ast.walk(module.tree)
            for child in ast.iter_child_nodes(parent)
        }
        functions = {
            owners[node]: node
            for node in ast.walk(module.tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        for node in ast.walk(module.tree):
            where = f"{module.rel}:{getattr(node, 'lineno', 0)}"
            scope = owners.get(node, "")
            allowed = module.rel == STORE_MODULE and scope in STATUS_WRITERS
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if RAW_STATUS_SQL.search(node.value):
                    violations.append(f"{where} writes job rows in raw SQL")
                continue
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_transition"
                and module.rel != STORE_MODULE
            ):
                violations.append(f"{where} calls the store's private _transition")
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr = node.func.attr
            if STATUS_CHANGING_METHOD.search(attr) and module.rel not in {
                *TRANSITION_CALLERS,
                STORE_MODULE,
            }:
                violations.append(
                    f"{where} calls .{attr}(): only JobExecutionService changes job status"
                )
            local_dicts = _dicts_with_status(functions.get(scope, module.tree))
            status_args = any(_dict_sets_status(arg) for arg in node.args) or any(
                isinstance(a, ast.Name) and a.id in local_dicts for a in node.args
            )
            if attr in DRIVER_CALLS and status_args and not allowed:
                violations.append(
                    f"{where} runs a statement with a job status in {scope or 'module scope'}"
                )
                continue
            if attr != "values" or not _chain_has_write(node.func.value):
                continue
            sets_status = (
                status_args
                or any(kw.arg == "status" for kw in node.keywords)
                or any(kw.arg is None and _dict_sets_status(kw.value) for kw in node.keywords)
                or any(
                    kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id in local_dicts
                    for kw in node.keywords
                )
            )
            if not sets_status:
                continue
            if not allowed:
                violations.append(
                    f"{where} sets job status in {scope or 'module scope'}: "
                    "only the store's _transition (and create) may"
                )
            calls = _chain(node, parents)
            if _is_update(calls) and not _guards_status(calls):
                violations.append(f"{where} updates job status without a WHERE status guard")
    return violations


# -- rule (d): no import cycle inside the store ------------------------------------------------


def store_cycle_violations(root: Path) -> list[str]:
    """The store's modules import each other without a cycle (its package ``__init__``,
    which only re-exports, is left out: every submodule import passes through it)."""
    mods = [m for m in modules(root) if within(m.name, "lensforge.store") and not m.is_package]
    known = {m.name for m in modules(root)}
    graph: dict[str, set[str]] = {m.name: set() for m in mods}
    for module in mods:
        for _, target, _ in imported_modules(module, known):
            if target in graph and target != module.name:
                graph[module.name].add(target)
    violations: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                violations.append("import cycle in the store: " + " → ".join(cycle))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return violations


RULES: dict[str, Callable[[Path], list[str]]] = {
    "tool invocation": tool_invocation_violations,
    "layers": layer_violations,
    "status writes": status_write_violations,
    "store cycles": store_cycle_violations,
}

# -- the real tree ----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_the_real_tree_follows_the_rule(rule: Callable[[Path], list[str]]) -> None:
    assert rule(SRC) == []


def test_the_scans_see_the_real_tree() -> None:
    """Guard against a scan that passes because it read nothing."""
    names = {m.name for m in modules(SRC)}
    for expected in (
        "lensforge.execution.tool_runner",
        "lensforge.execution.jobs",
        "lensforge.store.writes",
        "lensforge.api.routes.analyze",
    ):
        assert expected in names
    runner = next(m for m in modules(SRC) if m.rel == TOOL_RUNNER)
    calls = [
        n
        for n in ast.walk(runner.tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "function"
    ]
    assert calls, "the ToolRunner should be the one place that calls spec.function"
    store = next(m for m in modules(SRC) if m.rel == STORE_MODULE)
    assert "_transition" in {n.name for n in ast.walk(store.tree) if isinstance(n, ast.FunctionDef)}


# -- synthetic trees that break each rule -------------------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """A package tree under ``root/lensforge`` (every folder gets an __init__.py)."""
    package = root / PACKAGE
    for rel, source in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    for folder in [package, *[p for p in package.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return package


CLEAN_TREE = {
    "plugin.py": """
        class ToolSpec:
            function = None
        """,
    "execution/tool_runner.py": """
        def run(spec, instance, kwargs):
            return spec.function(instance, **kwargs)
        """,
    "execution/jobs.py": """
        from lensforge.store import JobStore
        from lensforge.execution.plugins import Verdict

        def finish(store: JobStore, job):
            return store.transition(job.id, "RUNNING", "SUCCESS")
        """,
    "execution/plugins.py": """
        from lensforge.execution.executors import run
        from lensforge.store import Status
        """,
    "execution/executors.py": """
        from lensforge.execution.tool_runner import run
        """,
    "store/writes.py": """
        from sqlalchemy import insert, update

        def create(tx, new):
            row = {"id": new.id, "status": "PENDING"}
            return insert(jobs).values(row)

        def request_cancel(tx, job_id):
            return update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True)

        def _transition(conn, job_id, from_status, to_status):
            return update(jobs).where(jobs.c.status == from_status).values(status=to_status)
        """,
    "store/dbapi.py": """
        from lensforge.store.tables import jobs
        """,
    "store/store.py": """
        from lensforge.store import writes
        from lensforge.store.dbapi import Tx

        class JobStore:
            async def transition(self, job_id):
                return writes
        """,
    "api/routes/jobs.py": """
        from lensforge.execution.jobs import finish
        from lensforge.store import Status
        """,
    "wiring.py": """
        from lensforge.store import JobStore
        from lensforge.execution.jobs import finish
        """,
    "cli/__init__.py": """
        from lensforge.api import app
        """,
}


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_the_clean_synthetic_tree_passes(rule: Callable[[Path], list[str]], tmp_path: Path) -> None:
    assert rule(write_tree(tmp_path, CLEAN_TREE)) == []


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("execution/plugins.py", "def go(spec, obj):\n    return spec.function(obj)\n"),
        ("execution/executors.py", "def go(spec):\n    fn = spec.function\n    return fn()\n"),
        ("api/routes/x.py", "def go(spec):\n    return getattr(spec, 'function')()\n"),
        ("registry.py", "def go(record):\n    return record.tools['a'].function(None)\n"),
    ],
    ids=["call", "alias", "getattr", "foundation"],
)
def test_tool_invocation_outside_the_runner_is_caught(
    tmp_path: Path, rel: str, source: str
) -> None:
    root = write_tree(tmp_path, {**CLEAN_TREE, rel: source})
    violations = tool_invocation_violations(root)
    assert violations
    assert all(v.startswith(rel) for v in violations)


@pytest.mark.parametrize(
    ("rel", "source", "why"),
    [
        ("media.py", "from lensforge.execution.jobs import finish\n", "foundation"),
        ("registry.py", "import lensforge.execution.tool_runner\n", "foundation"),
        ("execution/tool_runner.py", "from lensforge.execution.jobs import x\n", "below it"),
        ("execution/executors.py", "from lensforge.execution import plugins\n", "below it"),
        ("execution/jobs.py", "from .analysis import AnalysisRequest\n", "below it"),
        ("execution/plugins.py", "from lensforge.api.deps import JobsDep\n", "CLI imports"),
        ("registry.py", "from lensforge.api import create_app\n", "CLI imports"),
        ("execution/jobs.py", "from lensforge.wiring import Services\n", "top-level wiring"),
        ("store/store.py", "from lensforge import cli\n", "imports the CLI"),
        ("execution/jobs.py", "from lensforge.store.dbapi import Tx\n", "private"),
        ("execution/jobs.py", "from lensforge.store.writer import StoreWriter\n", "private"),
        ("api/routes/x.py", "import lensforge.store.writes\n", "private"),
        ("execution/plugins.py", "from lensforge.store import JobStoreProtocol\n", "JobStore"),
        ("api/routes/x.py", "import lensforge.cli.remote\n", "imports the CLI"),
        ("execution/tool_runner.py", "from lensforge.store import Status\n", "job types"),
        ("execution/executors.py", "from lensforge.store.tables import Status\n", "job types"),
        ("media.py", "import lensforge.store.store\n", "job types"),
        ("registry.py", "from lensforge.store.tables import jobs\n", "job tables"),
        ("execution/jobs.py", "from lensforge.store.tables import job_events\n", "job tables"),
        ("execution/plugins.py", "from lensforge.store import JobStore\n", "JobStore"),
        ("api/routes/jobs.py", "def f(s: 'JobStore'): ...\nJobStore = 1\n", "JobStore"),
        ("execution/cache.py", "X = 1\n", "not assigned to a layer"),
    ],
)
def test_upward_imports_are_caught(tmp_path: Path, rel: str, source: str, why: str) -> None:
    root = write_tree(tmp_path, {**CLEAN_TREE, rel: source})
    violations = layer_violations(root)
    assert violations, f"{rel} should break the layer rule"
    assert any(v.startswith(rel) and why in v for v in violations), violations


def test_what_the_layer_rule_allows(tmp_path: Path) -> None:
    allowed = {
        # other tables in the same database are not job state
        "security/keys.py": "from lensforge.store.tables import api_keys, metadata\n",
        # the CLI, split over modules, is top-level wiring
        "cli/keys.py": "from lensforge.store import JobStore\nfrom lensforge.api import app\n",
        # the API may use job types and the analysis layer
        "api/routes/x.py": "from lensforge.store import JobRecord, Status\n",
        "execution/analysis.py": "from lensforge.execution.jobs import finish\n",
    }
    assert layer_violations(write_tree(tmp_path, {**CLEAN_TREE, **allowed})) == []


def test_imports_inside_functions_count_too(tmp_path: Path) -> None:
    source = "def late():\n    from lensforge.execution.analysis import AnalysisRequest\n"
    root = write_tree(tmp_path, {**CLEAN_TREE, "execution/plugins.py": source})
    assert layer_violations(root)


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        (
            "store/writes.py",
            """
            from sqlalchemy import update

            def _transition(conn, job_id, from_status, to_status):
                return update(jobs).where(jobs.c.id == job_id).values(status=to_status)
            """,
        ),
        (
            "store/writes.py",
            """
            class JobStore:
                def reset(self, tx, job_id):
                    tx.run(_RESET, {"id": job_id, "status": "PENDING"})
            """,
        ),
        (
            "store/writes.py",
            """
            from sqlalchemy import update

            class JobStore:
                def force(self, job_id):
                    return update(jobs).where(jobs.c.id == job_id).values(status="SUCCESS")
            """,
        ),
        (
            "store/writes.py",
            """
            from sqlalchemy import update

            def reset(conn):
                return conn.execute(update(jobs).values(**{"status": "PENDING"}))
            """,
        ),
        (
            "store/writes.py",
            """
            from sqlalchemy import update

            def reset(conn):
                values = {"status": "PENDING", "lease_owner": None}
                return conn.execute(update(jobs).where(jobs.c.id == 1).values(values))
            """,
        ),
        (
            "execution/jobs.py",
            """
            import sqlalchemy as sa

            def sneak(conn):
                conn.execute(sa.update(jobs).values({jobs.c.status: "FAILED"}))
            """,
        ),
        (
            "api/routes/jobs.py",
            """
            def sneak(conn):
                conn.exec_driver_sql("UPDATE jobs SET status = 'SUCCESS' WHERE id = ?")
            """,
        ),
        (
            "execution/plugins.py",
            """
            def finish(store, job):
                return store.transition(job.id, "RUNNING", "SUCCESS")
            """,
        ),
        (
            "api/routes/jobs.py",
            """
            async def take(services):
                return services.store.claim("me", 30, 10)
            """,
        ),
        (
            "execution/plugins.py",
            """
            def finish(store, job):
                return store.transition_and_claim(job.id, "RUNNING", "SUCCESS", worker="w")
            """,
        ),
        (
            "execution/analysis.py",
            """
            from lensforge.store.writes import _transition

            def go(conn):
                return _transition(conn, "id", "PENDING", "RUNNING")
            """,
        ),
    ],
    ids=[
        "unguarded",
        "driver-call",
        "keyword",
        "double-star",
        "row-dict",
        "column-key",
        "raw-sql",
        "transition-elsewhere",
        "claim-elsewhere",
        "transition-and-claim-elsewhere",
        "private-transition",
    ],
)
def test_status_writes_outside_the_transition_are_caught(
    tmp_path: Path, rel: str, source: str
) -> None:
    files = dict(CLEAN_TREE)
    if rel == "store/writes.py":  # keep the allowed writers beside the offending one
        source = textwrap.dedent(files[rel]) + textwrap.dedent(source)
    files[rel] = source
    root = write_tree(tmp_path, files)
    violations = status_write_violations(root)
    assert violations
    assert all(v.startswith(rel) for v in violations), violations


def test_other_column_updates_are_allowed(tmp_path: Path) -> None:
    source = """
        from sqlalchemy import update

        def renew(conn):
            return conn.execute(update(jobs).values(lease_expires_at=1.0, progress=0.5))

        def view(job):
            return {"status": job.status}
        """
    root = write_tree(tmp_path, {**CLEAN_TREE, "execution/plugins.py": source})
    assert status_write_violations(root) == []


def test_an_import_cycle_in_the_store_is_caught(tmp_path: Path) -> None:
    files = {
        **CLEAN_TREE,
        "store/dbapi.py": "from lensforge.store.queries import JobQueries\n",
        "store/queries.py": "def late():\n    from lensforge.store.dbapi import Tx\n",
    }
    (violation,) = store_cycle_violations(write_tree(tmp_path, files))
    assert "lensforge.store.dbapi" in violation and "lensforge.store.queries" in violation
