"""The no-op plugin of the throughput benchmark (``bench/throughput.py``).

It lives in its own module, not in the launcher's ``__main__``, because LensForge's worker
processes import plugin classes by module path (``throughput_plugin:TBench``); they find it
through the server's ``sys.path``, which the local executor hands down as ``PYTHONPATH``.
"""

from __future__ import annotations

from lensforge import Plugin, tool


class TBench(Plugin):
    """Throughput benchmark helpers."""

    name = "tbench"
    version = "1.0.0"

    @tool
    def noop(self) -> dict[str, bool]:
        """No-op."""
        return {"ok": True}
