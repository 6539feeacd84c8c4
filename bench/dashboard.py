"""Dashboard figures: page weight, time to first render, and the cost of JSON logging.

    PYTHONPATH=src .venv/bin/python bench/dashboard.py     # about a minute (figures: README)

(a) Page weight on first load: bytes on the wire (Chrome DevTools Protocol
    ``encodedDataLength``, headers included) for everything the overview loads in a fresh
    browser context (cold cache), and again on a reload (warm: ETags answer 304).
(b) Time to first render in headless Chromium (Debian's, via Playwright), fresh context per
    run: first contentful paint, and the moment the overview's live figures are drawn.
(c) JSON logging on ``POST /v1/analyze`` of a no-op tool: requests a second with logs off
    (level warning: no access line) and on (level info, JSON, one access line a request,
    written to a file), alternating off/on rounds in one run, with wrk at concurrency 1 and 8;
    and, steadier on a busy machine, the in-process cost of one access line (record, JSON,
    write to a file), median of 5 batches of 20,000.

Each server is a real uvicorn process on a loopback port (uvloop, httptools, as
``lensforge serve``); every child is killed at exit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SERVER = """
import sys, uvicorn
from noop_plugin import Bench
from lensforge.api import create_app
from lensforge.logs import configure_logging
from lensforge.settings import Settings
settings = Settings()
configure_logging(settings.log_level, settings.log_format)
uvicorn.run(create_app(settings, extra_plugins=[Bench]), host="127.0.0.1", port=settings.port,
            loop="uvloop", http="httptools", access_log=False, log_config=None,
            log_level=settings.log_level)
"""
ANALYZE_BODY = '{"plugin":"bench","tool":"noop","inputs":{}}'


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(root: Path, log_level: str, cpu: int | None) -> Iterator[str]:
    """A LensForge server (one worker process) whose log lines go to ``root/server.log``."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(BENCH_DIR)]),
        "LENSFORGE_PORT": str(port),
        "LENSFORGE_DATABASE_URL": f"sqlite:///{root / 'lensforge.db'}",
        "LENSFORGE_DATA_DIR": str(root / "data"),
        "LENSFORGE_WORKERS": "1",
        "LENSFORGE_LOG_LEVEL": log_level,
        "LENSFORGE_LOG_FORMAT": "json",
    }
    argv = [sys.executable, "-c", SERVER]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    with (root / "server.log").open("ab") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError((root / "server.log").read_text())
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server not ready in 60 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- (a) and (b): the page in Chromium ----------------------------------------------------


def page_figures(url: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    cold_bytes, warm_bytes, requests, fcp, ready = [], [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for _ in range(runs):
                context = browser.new_context(viewport={"width": 1280, "height": 860})
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Network.enable")
                sizes: dict[str, float] = {}
                cdp.on(
                    "Network.loadingFinished",
                    lambda e, sizes=sizes: sizes.__setitem__(
                        e["requestId"], e["encodedDataLength"]
                    ),
                )
                page.goto(url + "/")
                page.wait_for_selector("[data-plugin='codes']")
                ready.append(page.evaluate("performance.now()"))
                fcp.append(
                    page.evaluate(
                        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime"
                    )
                )
                page.wait_for_load_state("networkidle")
                cold_bytes.append(sum(sizes.values()))
                requests.append(len(sizes))
                sizes.clear()
                page.reload()
                page.wait_for_selector("[data-plugin='codes']")
                page.wait_for_load_state("networkidle")
                warm_bytes.append(sum(sizes.values()))
                context.close()
        finally:
            browser.close()
    return {
        "runs": runs,
        "first_load_kb": round(statistics.median(cold_bytes) / 1024, 1),
        "first_load_requests": int(statistics.median(requests)),
        "reload_kb": round(statistics.median(warm_bytes) / 1024, 1),
        "first_contentful_paint_ms": round(statistics.median(fcp), 1),
        "overview_drawn_ms": round(statistics.median(ready), 1),
        "overview_drawn_ms_max": round(max(ready), 1),
    }


def asset_bytes() -> dict[str, int]:
    static = ROOT / "src/lensforge/api/dashboard/static"
    return {p.name: p.stat().st_size for p in sorted(static.iterdir())}


# -- (c): JSON logging on POST /v1/analyze ---------------------------------------------------


def wrk(url: str, connections: int, seconds: int, workdir: Path, cpu: int | None) -> float:
    script = workdir / "analyze.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{ANALYZE_BODY}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "-s",
        str(script),
        url + "/v1/analyze",
    ]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    if "Non-2xx" in out.stdout:
        raise RuntimeError(f"wrk saw errors:\n{out.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    assert match, out.stdout
    return float(match.group(1))


def logging_figures(root: Path, rounds: int, seconds: int) -> dict[str, Any]:
    if not shutil.which("wrk"):
        return {"skipped": "wrk is not installed (apt-get install -y wrk)"}
    results: dict[str, dict[int, list[float]]] = {"off": {1: [], 8: []}, "on": {1: [], 8: []}}
    lines = 0
    for n in range(rounds):
        for mode, level in (("off", "warning"), ("on", "info")):
            where = root / f"logs-{mode}-{n}"
            with server(where, level, cpu=0) as url:
                for connections in (1, 8):
                    wrk(url, connections, 1, where, cpu=1)  # warm-up
                    results[mode][connections].append(wrk(url, connections, seconds, where, cpu=1))
            if mode == "on":
                log = (where / "server.log").read_text().splitlines()
                access = [json.loads(x) for x in log if '"event":"http_request"' in x]
                assert access and all(
                    a["route"] == "/v1/analyze" for a in access if a["method"] == "POST"
                )
                lines += len(access)
    summary: dict[str, Any] = {"rounds": rounds, "seconds_each": seconds, "access_lines_on": lines}
    for connections in (1, 8):
        off = statistics.median(results["off"][connections])
        on = statistics.median(results["on"][connections])
        summary[f"c{connections}"] = {
            "off_rps": round(off),
            "on_rps": round(on),
            "cost_pct": round(100 * (off - on) / off, 1),
            "off_all": [round(v) for v in results["off"][connections]],
            "on_all": [round(v) for v in results["on"][connections]],
        }
    return summary


def line_cost_us(root: Path, batches: int = 5, lines: int = 20_000) -> dict[str, float]:
    """Microseconds to log one access line as JSON to a file, and with logs at warning."""
    import logging

    from lensforge.logs import _log_access, configure_logging

    class Route:
        path = "/v1/analyze"

    scope = {"method": "POST", "route": Route(), "state": {}}
    costs: dict[str, float] = {}
    with (root / "line-cost.log").open("w") as stream:
        for level in ("info", "warning"):
            configure_logging(level, "json", stream)
            samples = []
            for _ in range(batches):
                started = time.perf_counter()
                for _ in range(lines):
                    if logging.getLogger("lensforge.access").isEnabledFor(logging.INFO):
                        _log_access(scope, "0123456789abcdef", 200, 0.001)
                samples.append((time.perf_counter() - started) / lines * 1e6)
            costs["on" if level == "info" else "off"] = round(statistics.median(samples), 2)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="browser loads (a, b)")
    parser.add_argument("--rounds", type=int, default=2, help="off/on rounds (c)")
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds per measurement")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lensforge-bench-dashboard-") as tmp:
        root = Path(tmp)
        with server(root / "page", "warning", cpu=None) as url:
            page = page_figures(url, args.runs)
        logs = logging_figures(root, args.rounds, args.seconds)
        logs["access_line_us"] = line_cost_us(root)
    figures = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "python": platform.python_version(),
        },
        "assets_bytes": asset_bytes(),
        "page": page,
        "json_logging": logs,
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
