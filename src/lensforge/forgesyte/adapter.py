"""The ForgeSyte plugin adapter: a ForgeSyte plugin class (or object) and its manifest made
into a LensForge :class:`~lensforge.Plugin` class whose tools are schema-described tools.

The adapted tools run through the same ToolRunner, executors and job store as any plugin:
inputs are checked against the plugin's own ``input_schema``, images arrive decoded and
checked, the output is validated against its ``output_schema`` (a breach is ``plugin_error``).

- Modern plugins: each entry of the ``tools`` dict (``description``, ``input_schema``,
  ``output_schema``, ``handler``: a callable or the name of a method) is one tool. LensForge
  calls the handler directly with the arguments its signature names: image inputs
  (``image_bytes``: raw bytes, ``image_base64``: base64 text), the other inputs as further
  arguments, or gathered into ``options`` when the handler takes them that way, and a
  ``progress_callback(current, total)`` wired to the job's progress when it asks for one.
- Legacy plugins (``metadata()`` and ``analyze(image_bytes, options)``): one tool ``analyze``.
- ``on_load()`` (after ForgeSyte's optional ``validate()``) runs as ``setup()`` in each
  worker process; ``on_unload()`` as ``teardown()`` when the worker stops.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lensforge.errors import RegistrationError, ValidationError
from lensforge.forgesyte import manifest as manifests
from lensforge.forgesyte.schemas import (
    MEDIA_ARGUMENTS,
    as_object_schema,
    legacy_input_schema,
    with_media,
)
from lensforge.media import Image, Video
from lensforge.plugin import Plugin, ToolContext, schema_tool

log = logging.getLogger(__name__)
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FRAME_MESSAGE = re.compile(r"^frame (\d+)/(\d+)$")


def lensforge_name(name: str) -> str:
    """A ForgeSyte plugin or tool name as a LensForge one: lowercase, ``-`` and ``.`` as ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", name.strip().lower())


def frame_progress(current: int, total: int) -> tuple[float, str]:
    """A ``progress_callback(current, total)`` report as (fraction, message)."""
    fraction = current / total if total > 0 else 0.0
    return fraction, f"frame {int(current)}/{int(total)}"


def parse_frame_progress(message: str | None) -> tuple[int, int] | None:
    """(current, total) from a message :func:`frame_progress` wrote, else None."""
    match = FRAME_MESSAGE.match(message or "")
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class ForgeSyteTool:
    """One adapted tool: its LensForge name, its ForgeSyte id and its media arguments."""

    name: str
    tool_id: str
    media: tuple[str, ...]
    legacy: bool = False

    @property
    def video(self) -> bool:
        """Whether the tool reads a video (ForgeSyte's ``input_types: ["video"]``)."""
        return any(MEDIA_ARGUMENTS[name].kind == "video" for name in self.media)


@dataclass(frozen=True)
class ForgeSyteInfo:
    """What LensForge knows of an adapted plugin beyond its tools (ForgeSyte's routes use it)."""

    plugin_id: str  # the plugin's ForgeSyte name, as its clients know it
    entry_point: str
    manifest: dict[str, Any]  # canonical (see manifest.canonical)
    tools: dict[str, ForgeSyteTool]  # by LensForge tool name

    def tool_name(self, tool_id: str) -> str | None:
        """The LensForge name of ForgeSyte tool ``tool_id``, if it was adapted."""
        return next((t.name for t in self.tools.values() if t.tool_id == tool_id), None)


class ForgeSytePlugin(Plugin):
    """Base of every adapted ForgeSyte plugin; :func:`adapt` makes the subclasses."""

    forgesyte: ClassVar[ForgeSyteInfo]
    _factory: ClassVar[Callable[[], Any]]
    _spare: ClassVar[list[Any]]  # the instance adapt() made to read the tools: used once

    def __init__(self) -> None:
        spare = type(self)._spare
        self.target: Any = spare.pop() if spare else type(self)._factory()

    def setup(self) -> None:
        for hook in ("validate", "on_load"):
            method = getattr(self.target, hook, None)
            if callable(method):
                method()

    def teardown(self) -> None:
        on_unload = getattr(self.target, "on_unload", None)
        if callable(on_unload):
            on_unload()

    def call_forgesyte(self, tool: ForgeSyteTool, inputs: dict[str, Any], ctx: ToolContext) -> Any:
        """Call the ForgeSyte handler of ``tool`` with validated, decoded ``inputs``; the
        temporary files its media arguments needed are gone once it has returned."""
        handler = _handler(self.target, tool)

        # ForgeSyte's worker lets a plugin leave out the total: the video's frame count.
        frames = next((v.info.frame_count for v in inputs.values() if isinstance(v, Video)), 0)

        def progress(current: int, total: int | None = None) -> None:
            ctx.progress(*frame_progress(current, total or frames))

        files = contextlib.ExitStack()
        try:
            values = dict(inputs)
            for name in tool.media:
                if isinstance(values.get(name), Image | Video):
                    values[name] = MEDIA_ARGUMENTS[name].convert(values[name], files)
            result = handler(**bind(handler, values, progress))
        except BaseException:
            files.close()
            raise
        if inspect.iscoroutine(result):
            return _plain_later(result, files)
        with files:
            return plain(result)


def plain(result: Any) -> Any:
    """A handler's result as data: Pydantic models (v2 or v1 style) dumped, as ForgeSyte does."""
    if hasattr(result, "model_dump"):
        return result.model_dump(mode="json")
    if not isinstance(result, dict) and callable(getattr(result, "dict", None)):
        return result.dict()
    return result


async def _plain_later(pending: Coroutine[Any, Any, Any], files: contextlib.ExitStack) -> Any:
    with files:
        return plain(await pending)


def _handler(target: Any, tool: ForgeSyteTool) -> Callable[..., Any]:
    if tool.legacy:
        analyze: Callable[..., Any] = target.analyze
        return analyze
    handler = target.tools[tool.tool_id]["handler"]
    return getattr(target, handler) if isinstance(handler, str) else handler  # type: ignore[no-any-return]


def _accepts(handler: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    """(argument names the handler takes by keyword, whether it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let it take what it is given
        return frozenset(), True
    named = frozenset(
        p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )
    return named, any(p.kind is p.VAR_KEYWORD for p in parameters)


def bind(
    handler: Callable[..., Any], values: dict[str, Any], progress: Callable[..., None]
) -> dict[str, Any]:
    """Keyword arguments for ``handler``: inputs it names (or all, with ``**kwargs``), the
    rest gathered into ``options``, and ``progress_callback`` when it takes one."""
    named, var_keyword = _accepts(handler)
    kwargs: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in values.items():
        (kwargs if key in named or var_keyword else rest)[key] = value
    if rest:
        if "options" not in named:
            raise ValidationError(
                f"The tool takes no input(s) {sorted(rest)}.", details={"fields": sorted(rest)}
            )
        options = kwargs.get("options")
        kwargs["options"] = {**(options if isinstance(options, dict) else {}), **rest}
    if "progress_callback" in named:
        kwargs["progress_callback"] = progress
    return kwargs


def _unbindable(handler: Callable[..., Any], schema: dict[str, Any]) -> list[str]:
    named, var_keyword = _accepts(handler)
    if var_keyword or "options" in named:
        return []
    return [key for key in schema.get("properties", {}) if key not in named]


def _metadata(instance: Any) -> dict[str, Any]:
    """A legacy plugin's ``metadata()`` as a dict; {} when it cannot be read here (it often
    builds a model only ForgeSyte's server defines)."""
    method = getattr(instance, "metadata", None)
    if not callable(method):
        return {}
    try:
        meta = method()
    except Exception as exc:
        log.info("ForgeSyte metadata() unreadable: %r", exc, extra={"event": "forgesyte_metadata"})
        return {}
    if isinstance(meta, dict):
        return meta
    dumped = plain(meta)
    return dumped if isinstance(dumped, dict) else {}


@dataclass
class _Build:
    """The tools of one plugin while they are adapted."""

    plugin: str
    tools: list[ForgeSyteTool] = field(default_factory=list)
    methods: dict[str, Any] = field(default_factory=dict)
    listed: list[dict[str, Any]] = field(default_factory=list)  # for a synthesized manifest

    def fail(self, tool: str, problem: str) -> RegistrationError:
        return RegistrationError(
            f"ForgeSyte plugin '{self.plugin}', tool '{tool}': {problem}",
            plugin=self.plugin,
            tool=tool,
        )

    def add(
        self,
        tool: ForgeSyteTool,
        description: str,
        input_schema: dict[str, Any],
        output_schema: dict[str, Any] | None,
    ) -> None:
        if not NAME_PATTERN.match(tool.name):
            raise self.fail(
                tool.tool_id, f"its name does not make a LensForge tool name ({tool.name!r})"
            )
        if any(known.name == tool.name for known in self.tools):
            raise self.fail(tool.tool_id, f"two tools become '{tool.name}'")

        def run(self: ForgeSytePlugin, inputs: dict[str, Any], ctx: ToolContext) -> Any:
            return self.call_forgesyte(tool, inputs, ctx)

        run.__name__ = run.__qualname__ = f"tool_{tool.name}"
        self.methods[run.__name__] = schema_tool(
            input_schema=input_schema,
            output_schema=output_schema,
            name=tool.name,
            description=description,
            long=any(MEDIA_ARGUMENTS[name].kind == "video" for name in tool.media),
        )(run)
        self.tools.append(tool)
        self.listed.append(
            {
                "id": tool.tool_id,
                "title": tool.tool_id,
                "description": description,
                "input_types": sorted(
                    {str(MEDIA_ARGUMENTS[name].input_type or "image_bytes") for name in tool.media}
                ),
                "output_types": [],
                "capabilities": [],
            }
        )


def _modern_tools(build: _Build, instance: Any, manifest: dict[str, Any]) -> None:
    for tool_id, meta in instance.tools.items():
        tool_id = str(tool_id)
        if not isinstance(meta, dict):
            raise build.fail(tool_id, "a tool must be a dict of metadata")
        handler = meta.get("handler")
        if isinstance(handler, str):
            handler = getattr(instance, handler, None)
            if not callable(handler):
                raise build.fail(tool_id, f"its handler names no method ({meta.get('handler')!r})")
        if not callable(handler):
            raise build.fail(tool_id, "its handler must be a callable or a method's name")
        entry = manifests.manifest_tool(manifest, tool_id)
        try:
            inputs = as_object_schema(meta.get("input_schema"))
            outputs = as_object_schema(meta.get("output_schema"))
        except TypeError as exc:
            raise build.fail(tool_id, str(exc)) from None
        input_schema, media = with_media(inputs, manifests.input_types(entry))
        unbindable = _unbindable(handler, input_schema)
        if unbindable:
            raise build.fail(tool_id, f"its handler takes no argument(s) {unbindable}")
        description = str(
            meta.get("description") or entry.get("description") or entry.get("title") or ""
        )
        build.add(
            ForgeSyteTool(lensforge_name(tool_id), tool_id, media),
            description or f"ForgeSyte tool {tool_id}.",
            input_schema,
            outputs,
        )


def adapt(
    target: Any, *, entry_point: str = "", rename: Mapping[str, str] | None = None
) -> type[ForgeSytePlugin]:
    """The LensForge plugin class for ForgeSyte plugin ``target`` (a class or an object).

    ``rename`` maps a ForgeSyte plugin name to the LensForge name to use instead. Raises
    RegistrationError naming the plugin and the problem; an import the plugin makes of a
    module that does not exist propagates as ModuleNotFoundError.
    """
    instance = target() if isinstance(target, type) else target
    plugin_id = getattr(instance, "name", None)
    if not isinstance(plugin_id, str) or not plugin_id.strip():
        raise RegistrationError(f"ForgeSyte plugin {entry_point or target!r} has no string 'name'")
    name = (rename or {}).get(plugin_id) or lensforge_name(plugin_id)
    if not NAME_PATTERN.match(name):
        raise RegistrationError(
            f"ForgeSyte plugin '{plugin_id}' cannot be named '{name}' in LensForge (names "
            f"match {NAME_PATTERN.pattern}); rename it with "
            f"LENSFORGE_FORGESYTE_RENAME={plugin_id}:new_name",
            plugin=plugin_id,
        )
    manifest = manifests.read_manifest(type(instance).__module__, plugin_id) or {}
    meta = _metadata(instance) if not isinstance(getattr(instance, "tools", None), dict) else {}
    build = _Build(plugin_id)
    if isinstance(getattr(instance, "tools", None), dict) and instance.tools:
        _modern_tools(build, instance, manifest)
    elif callable(getattr(instance, "analyze", None)):
        description = str(meta.get("description") or "Analyse an image (ForgeSyte analyze).")
        schema = legacy_input_schema(meta.get("config_schema"))
        build.add(
            ForgeSyteTool("analyze", "analyze", ("image_bytes",), legacy=True),
            description,
            schema,
            None,
        )
    else:
        raise RegistrationError(
            f"ForgeSyte plugin '{plugin_id}' has neither a 'tools' dict nor analyze()",
            plugin=plugin_id,
        )
    version = str(
        getattr(instance, "version", None)
        or manifest.get("version")
        or meta.get("version")
        or "0.0.0"
    )
    description = str(
        getattr(instance, "description", None)
        or manifest.get("description")
        or meta.get("description")
        or (type(instance).__doc__ or "").strip()
    )
    info = ForgeSyteInfo(
        plugin_id=plugin_id,
        entry_point=entry_point,
        manifest=manifests.canonical(
            manifest or manifests.synthesized(plugin_id, version, description, build.listed)
        ),
        tools={tool.name: tool for tool in build.tools},
    )
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": f"ForgeSytePlugin[{plugin_id}]",
        "__doc__": description,
        "name": name,
        "version": version,
        "description": description,
        "forgesyte": info,
        "_factory": staticmethod(target if isinstance(target, type) else lambda: target),
        "_spare": [instance] if isinstance(target, type) else [],
        **build.methods,
    }
    return type(f"ForgeSyte_{name}", (ForgeSytePlugin,), namespace)
