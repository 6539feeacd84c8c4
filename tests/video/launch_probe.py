"""Start a real LensForge server with the frame probe: ``python -m tests.video.launch_probe``.

Settings come from LENSFORGE_* environment variables, as with ``lensforge serve``.
"""

from __future__ import annotations

from lensforge.api import create_app
from lensforge.api.server import run_server
from lensforge.settings import Settings
from tests.video.probe_plugin import FrameProbe

if __name__ == "__main__":
    settings = Settings()
    run_server(create_app(settings, extra_plugins=[FrameProbe]), settings, log_level="warning")
