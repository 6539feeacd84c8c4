"""LensForge with the test plugins over MCP: ``python -m tests.launch_mcp stdio|http``.

``stdio`` runs the same entry as ``lensforge mcp`` (which registers no test plugin);
``http`` serves the whole app, like ``python -m tests.launch``. Settings come from
LENSFORGE_* environment variables.
"""

from __future__ import annotations

import sys

from lensforge.settings import Settings
from tests.mcp_server.plugins import Drawing
from tests.plugins_for_tests import Chaos, Single, Testing

PLUGINS = [Testing, Single, Chaos, Drawing]

if __name__ == "__main__":
    settings = Settings()
    if sys.argv[1:] == ["stdio"]:
        from lensforge.api.mcp import run_stdio

        run_stdio(settings, extra_plugins=PLUGINS)
    elif sys.argv[1:] == ["http"]:
        import uvicorn

        from lensforge.api import create_app

        app = create_app(settings, extra_plugins=PLUGINS)
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level="warning", access_log=False
        )
    else:
        sys.exit("usage: python -m tests.launch_mcp stdio|http")
