"""ForgeSyte plugins on LensForge: the adapter (:mod:`.adapter`), their manifests
(:mod:`.manifest`), their schemas (:mod:`.schemas`) and their discovery (:mod:`.discovery`).

ForgeSyte's job routes, for its clients, live in :mod:`lensforge.api.compat.forgesyte`.
"""

from lensforge.forgesyte.adapter import (
    ForgeSyteInfo,
    ForgeSytePlugin,
    ForgeSyteTool,
    adapt,
    frame_progress,
    parse_frame_progress,
)
from lensforge.forgesyte.discovery import ENTRY_POINT_GROUP, ForgeSyteOptions, discover

__all__ = [
    "ENTRY_POINT_GROUP",
    "ForgeSyteInfo",
    "ForgeSyteOptions",
    "ForgeSytePlugin",
    "ForgeSyteTool",
    "adapt",
    "discover",
    "frame_progress",
    "parse_frame_progress",
]
