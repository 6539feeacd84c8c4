"""A test plugin for the hardening tests (issue 15): tools that speak to callers through
ToolError, return huge results, or start child processes. Module-level, so worker processes
import it by its path (``tests.security.hardened:Hardened``)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from lensforge import Plugin, ToolError, tool


class Hardened(Plugin):
    name = "hardened"
    version = "0.0.1"

    @tool
    def refuse(self, reason: str = "The image holds no page.") -> dict[str, bool]:
        """Fail with a message written for callers."""
        raise ToolError(reason, details={"hint": "photograph the whole sheet"})

    @tool
    def big(self, megabytes: int = 1) -> dict[str, str]:
        """Return a result of about ``megabytes`` MiB of JSON."""
        return {"data": "x" * (megabytes * 1024 * 1024)}

    @tool(timeout_s=60)
    def spawn(self, pid_file: str) -> dict[str, bool]:
        """Start ``sleep 1000`` (a child that would outlive a careless kill), then hang."""
        child = subprocess.Popen(["sleep", "1000"])
        Path(pid_file).write_text(str(child.pid))
        while True:
            time.sleep(0.05)
