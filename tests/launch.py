"""Start a real LensForge server with the test plugins: ``python -m tests.launch``.

Settings come from LENSFORGE_* environment variables, as with ``lensforge serve``.
"""

from __future__ import annotations

from lensforge.api import create_app
from lensforge.api.server import run_server
from lensforge.settings import Settings
from tests.plugins_for_tests import Chaos, Single, Testing

if __name__ == "__main__":
    settings = Settings()
    app = create_app(settings, extra_plugins=[Testing, Single, Chaos])
    run_server(app, settings, log_level="warning")
