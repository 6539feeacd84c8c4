"""MCP against REST: the same no-op tool, the same server, the same run.

    .venv/bin/python bench/mcp_vs_rest.py [--seconds 5] [--no-pin]

(Not ``bench/mcp.py``: a module of that name beside ``serve.py`` would shadow the SDK for
every script in this folder, ``serve.py`` included.)

Starts ``bench/serve.py lensforge`` (the app with the no-op ``bench`` plugin; MCP at ``/mcp``)
and measures, sequentially and at concurrency 8:

- MCP ``tools/call`` of ``bench_noop`` over streamable HTTP (the SDK's client; one session
  per concurrent caller, as separate agents would have);
- ``POST /v1/analyze`` of ``bench.noop`` (httpx, one keep-alive client).

Each is a durable job. It prints calls/s, p50, the server's CPU per call (API process and
workers, from /proc) and this client's CPU per mode, then the REST/MCP ratios of calls/s and
of server CPU per call (target: MCP within 2x of REST, judged on server CPU per call: the
SDK's client saturates its core before the server does, so calls/s partly measures it).
The server is pinned to one CPU and this load generator to another when ``taskset`` and two
CPUs are there. Every phase is bounded in time and in count;
the server runs on a loopback port and is killed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import (  # bench/ is sys.path[0]
    describe,
    machine,
    pick_cpus,
    start_bench_server,
    stop_all,
    tree_cpu_s,
)
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

CONCURRENCY = 8
MAX_CALLS = 20_000  # per phase, beside the time bound
WARMUP_S = 0.5
TARGET_RATIO = 2.0


@dataclass
class Phase:
    name: str
    concurrency: int
    calls: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_s: float = 0.0  # the server's CPU (API process and workers) in the window
    client_cpu_s: float = 0.0  # this process's CPU in the window

    @property
    def server_us_per_call(self) -> float:
        return self.server_cpu_s / self.calls * 1e6 if self.calls else float("nan")

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


async def _drive(
    name: str,
    concurrency: int,
    seconds: float,
    make_caller: Callable[[], Awaitable[tuple[Callable[[], Awaitable[None]], Any]]],
    server_pid: int,
) -> Phase:
    """``concurrency`` callers, each calling in a loop until the time or count runs out."""
    callers = [await make_caller() for _ in range(concurrency)]
    latencies: list[float] = []
    count = 0

    async def loop(call: Callable[[], Awaitable[None]], until: float, record: bool) -> None:
        nonlocal count
        while time.monotonic() < until and count < MAX_CALLS:
            started = time.perf_counter()
            await call()
            if record:
                latencies.append((time.perf_counter() - started) * 1000)
                count += 1

    try:
        warm = time.monotonic() + WARMUP_S
        await asyncio.gather(*(loop(call, warm, False) for call, _ in callers))
        server_cpu, client_cpu = tree_cpu_s(server_pid), time.process_time()
        started = time.monotonic()
        await asyncio.gather(*(loop(call, started + seconds, True) for call, _ in callers))
        elapsed = time.monotonic() - started
        server_cpu = tree_cpu_s(server_pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        for _, closer in reversed(callers):  # LIFO: anyio cancel scopes nest
            await closer()
    return Phase(name, concurrency, count, elapsed, latencies, server_cpu, client_cpu)


async def mcp_phase(url: str, concurrency: int, seconds: float, server_pid: int) -> Phase:
    from contextlib import AsyncExitStack

    async def make() -> tuple[Callable[[], Awaitable[None]], Any]:
        stack = AsyncExitStack()
        read, write, _ = await stack.enter_async_context(streamable_http_client(f"{url}/mcp"))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()

        async def call() -> None:
            result = await session.call_tool("bench_noop", {})
            if result.isError:
                raise RuntimeError(f"MCP call failed: {result.content}")

        return call, stack.aclose

    name = f"MCP tools/call (c={concurrency})"
    return await _drive(name, concurrency, seconds, make, server_pid)


async def rest_phase(url: str, concurrency: int, seconds: float, server_pid: int) -> Phase:
    client = httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64))
    body = {"plugin": "bench", "tool": "noop", "inputs": {}}

    async def make() -> tuple[Callable[[], Awaitable[None]], Any]:
        async def call() -> None:
            response = await client.post("/v1/analyze", json=body)
            if response.status_code != 200:
                raise RuntimeError(f"REST call failed: {response.status_code} {response.text}")

        async def nothing() -> None:
            return None

        return call, nothing

    try:
        name = f"POST /v1/analyze (c={concurrency})"
        return await _drive(name, concurrency, seconds, make, server_pid)
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per phase")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs with taskset")
    args = parser.parse_args()
    print(describe(machine()))
    server_cpu, client_cpu = pick_cpus(args.no_pin)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    workdir = Path(tempfile.mkdtemp(prefix="lensforge-bench-mcp-"))
    server = start_bench_server("lensforge", workdir, cpu=server_cpu, db_dir=workdir)
    url = server.url
    try:
        server.wait_ready()
        phases: list[Phase] = []
        for concurrency in (1, CONCURRENCY):
            phases.append(asyncio.run(rest_phase(url, concurrency, args.seconds, server.pid)))
            phases.append(asyncio.run(mcp_phase(url, concurrency, args.seconds, server.pid)))
    finally:
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    pinning = f"server on CPU {server_cpu}, client on CPU {client_cpu}"
    where = pinning if client_cpu is not None else "no CPU pinning"
    print(f"\nLensForge MCP vs REST, no-op tool, {args.seconds:g} s per phase ({where})\n")
    print(
        f"{'mode':<32} {'calls':>7} {'calls/s':>9} {'p50 ms':>8} {'srv CPU':>8} "
        f"{'srv us/call':>12} {'client CPU':>11}"
    )
    for phase in phases:
        print(
            f"{phase.name:<32} {phase.calls:>7} {phase.rate:>9.1f} {phase.p50:>8.2f} "
            f"{phase.server_cpu_s / phase.seconds:>8.0%} {phase.server_us_per_call:>12,.0f} "
            f"{phase.client_cpu_s / phase.seconds:>11.0%}"
        )
    print()
    worst = 0.0  # by server CPU per call: what one dedicated server core would give
    for rest, mcp in zip(phases[::2], phases[1::2], strict=True):
        ratio = rest.rate / mcp.rate if mcp.rate else float("inf")
        cpu_ratio = mcp.server_us_per_call / rest.server_us_per_call
        worst = max(worst, cpu_ratio)
        print(
            f"concurrency {rest.concurrency}: REST/MCP calls/s = {ratio:.2f}x "
            f"(p50 {rest.p50:.2f} ms vs {mcp.p50:.2f} ms); server CPU per call MCP/REST = "
            f"{cpu_ratio:.2f}x"
        )
    busy = max(phase.client_cpu_s / phase.seconds for phase in phases)
    if busy > 0.8:
        print(
            f"note: this client used up to {busy:.0%} of its core (the MCP SDK client costs more "
            "per call than httpx), so calls/s partly measures the client; server CPU per call "
            "does not"
        )
    verdict = "met" if worst <= TARGET_RATIO else "MISSED"
    print(f"target: MCP within {TARGET_RATIO:g}x of REST (server CPU per call): {verdict}")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
