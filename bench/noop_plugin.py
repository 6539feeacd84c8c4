"""The no-op tool the overhead benchmark calls: it measures LensForge, not a tool.

LensForge discovers plugins only from entry points, so ``serve.py`` registers this class
with ``create_app(settings, extra_plugins=[Bench])``; a production install never sees it.
"""

from __future__ import annotations

from lensforge import Plugin, tool


class Bench(Plugin):
    """Benchmark helpers."""

    name = "bench"
    version = "1.0.0"

    @tool
    def noop(self) -> dict[str, bool]:
        """No-op."""
        return {"ok": True}
