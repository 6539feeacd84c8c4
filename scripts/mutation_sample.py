"""Mutation testing by random sample: a kill rate per package in an hour, not a day.

A full ``make mutation`` over store/, execution/, security/ and the API's auth parts is
about 6,000 mutants: a day on a 2-core machine. A seeded uniform sample of each package's
mutants (those the selection's tests reach) gives the kill rate with a confidence interval,
and its survivors are a fair picture of the gaps. Run by ``make mutation-sample``;
docs/testing.md explains the figures.

    python scripts/mutation_sample.py [--per-package 250] [--seed 23] [--children 2]
    python scripts/mutation_sample.py --report     # the figures of what has run so far

It drives mutmut (``[tool.mutmut]`` in pyproject.toml) and reads its results in
``mutants/``; verdicts already there are reused, so a stopped run resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.stats import status_by_exit_code

MUTANTS = Path("mutants")
# A name no mutant has: mutmut generates the mutants and maps tests to functions, then stops
# ("nothing matches") before running any.
NOTHING = "lensforge.no_such_function__mutmut_0"
SAMPLE_FILE = MUTANTS / "sample.json"
KILLED = {"killed", "timeout", "caught by type check"}


def mutmut(*args: str) -> None:
    subprocess.run([Path(sys.executable).with_name("mutmut"), *args], check=False)


def verdicts() -> tuple[dict[str, int | None], dict[str, float]]:
    """Every mutant's exit code (None: not checked) and run time, from mutmut's .meta files."""
    codes: dict[str, int | None] = {}
    durations: dict[str, float] = {}
    for meta in MUTANTS.glob("src/**/*.meta"):
        data = json.loads(meta.read_text())
        codes.update(data.get("exit_code_by_key", {}))
        durations.update(data.get("durations_by_key", {}))
    return codes, durations


def package(name: str) -> str:
    return name.split(".")[1]  # lensforge.<package>.<module>...


def reached(name: str, stats: dict[str, list[str]]) -> bool:
    return bool(stats.get(re.sub(r"__mutmut_\d+$", "", name)))


def draw(per_package: int, seed: int, packages: list[str]) -> dict[str, list[str]]:
    codes, _ = verdicts()
    stats = json.loads((MUTANTS / "mutmut-stats.json").read_text())
    by_test = stats["tests_by_mangled_function_name"]
    pools: dict[str, list[str]] = defaultdict(list)
    for name in sorted(codes):
        if package(name) in packages and reached(name, by_test):
            pools[package(name)].append(name)
    return {  # one generator per package: a package's sample does not depend on the others
        pkg: random.Random(f"{seed}-{pkg}").sample(names, min(per_package, len(names)))
        for pkg, names in sorted(pools.items())
    }


def wilson(killed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a kill rate (sound near 100%, unlike p ± 2 SE)."""
    if n == 0:
        return 0.0, 1.0
    p = killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def report(sample: dict[str, list[str]]) -> None:
    codes, durations = verdicts()
    everything = Counter((package(n), status_by_exit_code[c]) for n, c in codes.items())
    print(
        f"{'package':<10} {'mutants':>7} {'no tests':>8} {'sampled':>7} {'checked':>7} "
        f"{'killed':>6} {'survived':>8}  kill rate (95% interval)   s/mutant (mean, median)"
    )
    for pkg, names in sorted(sample.items()):
        seen = Counter(status_by_exit_code[codes.get(n)] for n in names)
        checked = sum(v for k, v in seen.items() if k != "not checked")
        killed = sum(seen[k] for k in KILLED)
        low, high = wilson(killed, checked)
        times = [durations[n] for n in names if n in durations and codes.get(n) is not None]
        total = sum(v for (p, _), v in everything.items() if p == pkg)
        rate = f"{killed / checked:6.1%} ({low:.1%}-{high:.1%})" if checked else "-"
        pace = f"{statistics.mean(times):.1f}, {statistics.median(times):.1f}" if times else "-"
        print(
            f"{pkg:<10} {total:>7} {everything[(pkg, 'no tests')]:>8} {len(names):>7} "
            f"{checked:>7} {killed:>6} {seen['survived']:>8}  {rate:<26} {pace}"
        )
    print("\nsurvivors in the sample (mutmut show NAME):")
    for _, names in sorted(sample.items()):
        for name in sorted(n for n in names if status_by_exit_code[codes.get(n)] == "survived"):
            print(f"  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-package", type=int, default=250)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--packages", nargs="+", default=["store", "execution", "security", "api"])
    parser.add_argument("--report", action="store_true", help="only print the figures")
    options = parser.parse_args()
    if not options.report:
        if not (MUTANTS / "mutmut-stats.json").exists():
            print("generating the mutants and mapping tests to functions")
            mutmut("run", "--max-children", str(options.children), NOTHING)
        sample = draw(options.per_package, options.seed, options.packages)
        SAMPLE_FILE.write_text(json.dumps(sample, indent=1))
        codes, _ = verdicts()
        todo = [n for names in sample.values() for n in names if codes.get(n) is None]
        if todo:
            mutmut("run", "--max-children", str(options.children), *todo)
    if not SAMPLE_FILE.exists():
        sys.exit("no sample drawn yet: run without --report first")
    report(json.loads(SAMPLE_FILE.read_text()))


if __name__ == "__main__":
    main()
