"""A legacy ForgeSyte plugin: metadata() and analyze(image_bytes, options)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.models import PluginMetadata  # type: ignore[import-not-found]


class Plugin:
    """Counts bytes, scaled."""

    name = "fs_legacy"
    version = "0.3.0"

    def metadata(self) -> "PluginMetadata":
        return {  # type: ignore[return-value]
            "name": self.name,
            "description": "Counts the bytes of an image.",
            "version": self.version,
            "inputs": ["image"],
            "outputs": ["json"],
            "config_schema": {
                "scale": {"type": "integer", "default": 1, "min": 1, "max": 10},
            },
        }

    def analyze(self, image_bytes: bytes, options: dict[str, Any] | None = None) -> dict[str, Any]:
        scale = (options or {}).get("scale", 1)
        return {"size": len(image_bytes) * scale, "scale": scale}
