"""LensForge: run vision-analysis plugins as governed, durable jobs.

The public surface for plugin authors and embedders is re-exported here.
"""

from typing import TYPE_CHECKING, Any

from lensforge.errors import LensForgeError, ToolError
from lensforge.media import Image
from lensforge.plugin import Plugin, ToolContext, schema_tool, tool
from lensforge.results import Box, Detection, ImageArtifact, Point, Polygon, TextSpan

if TYPE_CHECKING:
    from lensforge.client import AsyncClient, Client

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Box",
    "Client",
    "Detection",
    "Image",
    "ImageArtifact",
    "LensForgeError",
    "Plugin",
    "Point",
    "Polygon",
    "TextSpan",
    "ToolContext",
    "ToolError",
    "__version__",
    "schema_tool",
    "tool",
]


def __getattr__(name: str) -> Any:
    # The HTTP client (httpx) loads on first use: worker processes never pay for it.
    if name in ("AsyncClient", "Client"):
        from lensforge import client

        return getattr(client, name)
    raise AttributeError(f"module 'lensforge' has no attribute {name!r}")
