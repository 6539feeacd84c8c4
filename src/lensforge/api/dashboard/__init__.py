"""The web dashboard at ``/``: a static page and its ES modules, plus ``GET /v1/stats``.

The page is plain HTML, CSS and vanilla JavaScript served from package data: no build step,
nothing from a CDN, so it works with the network cut off (docs/dashboard.md says why). It
talks to the REST API like any other client, with the API key in a header.
"""

from lensforge.api.dashboard.routes import router

__all__ = ["router"]
