"""LensForge: run vision-analysis plugins as governed, durable jobs.

The public surface for plugin authors and embedders is re-exported here.
"""

from lensforge.errors import LensForgeError
from lensforge.media import Image
from lensforge.plugin import Plugin, ToolContext, schema_tool, tool
from lensforge.results import Box, Detection, ImageArtifact, Point, Polygon, TextSpan

__version__ = "0.1.0"

__all__ = [
    "Box",
    "Detection",
    "Image",
    "ImageArtifact",
    "LensForgeError",
    "Plugin",
    "Point",
    "Polygon",
    "TextSpan",
    "ToolContext",
    "__version__",
    "schema_tool",
    "tool",
]
