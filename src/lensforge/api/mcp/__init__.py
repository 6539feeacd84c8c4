"""LensForge over the Model Context Protocol (the official ``mcp`` SDK, 2.x).

- :class:`MCPEndpoint`: streamable HTTP, mounted at ``/mcp`` by ``create_app``;
- :func:`run_stdio`: ``lensforge mcp``, an embedded LensForge on stdin and stdout;
- :class:`LensForgeMCP`: the handlers both serve (tools, blob resources, the tasks extension).

See ``docs/mcp.md``.
"""

from lensforge.api.mcp.server import LensForgeMCP
from lensforge.api.mcp.transports import MCPEndpoint, run_stdio

__all__ = ["LensForgeMCP", "MCPEndpoint", "run_stdio"]
