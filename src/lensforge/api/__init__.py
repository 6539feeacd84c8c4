"""The REST interface: ``create_app(settings)`` builds a FastAPI app owning every service."""

from lensforge.api.app import create_app

__all__ = ["create_app"]
