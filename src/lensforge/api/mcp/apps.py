"""The MCP Apps view of a result (``io.modelcontextprotocol/ui``): one HTML resource.

Every tool carries ``_meta.ui.resourceUri = ui://lensforge/result-view.html``; a host that
supports MCP Apps reads that resource (``text/html;profile=mcp-app``) and renders it in a
sandboxed frame, passing it the call's arguments and result over postMessage. The view
(``view.html``, self-contained) draws the result's boxes, polygons and text spans over the
input image, reading a ``lensforge://blobs/...`` image through the host's ``resources/read``.
Its Content-Security-Policy allows no network source, and its resource ``_meta.ui.csp`` asks
for none. A client without the extension ignores the ``_meta`` and reads the text as before.

The SDK's ``mcp.server.apps.Apps`` binds ``MCPServer`` function tools; LensForge's tools are
its own, so the few wire fields are set here instead.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import mcp_types as types

UI = "io.modelcontextprotocol/ui"
VIEW_URI = "ui://lensforge/result-view.html"
APP_MIME_TYPE = "text/html;profile=mcp-app"


class ResultView:
    """The view's resource and the ``_meta`` that links each tool to it."""

    def __init__(self) -> None:
        self.html = files("lensforge.api.mcp").joinpath("view.html").read_text("utf-8")

    @staticmethod
    def tool_meta() -> dict[str, Any]:
        return {"ui": {"resourceUri": VIEW_URI}}

    @staticmethod
    def resource() -> types.Resource:
        return types.Resource(
            uri=VIEW_URI,
            name="result-view",
            title="LensForge result view",
            description="Draws a tool's boxes, polygons and text spans over its input image.",
            mime_type=APP_MIME_TYPE,
        )

    def read(self) -> types.TextResourceContents:
        return types.TextResourceContents(
            uri=VIEW_URI,
            mime_type=APP_MIME_TYPE,
            text=self.html,
            meta={"ui": {"csp": {}, "prefersBorder": True}},
        )
