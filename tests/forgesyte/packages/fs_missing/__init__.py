"""A ForgeSyte plugin that needs ForgeSyte's own server (``app``), which LensForge lacks."""

from typing import Any

from app.plugins.base import BasePlugin  # type: ignore[import-not-found]


class Plugin(BasePlugin):  # type: ignore[misc]
    name = "fs_missing"
    tools: dict[str, Any] = {}
