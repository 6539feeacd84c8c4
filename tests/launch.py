"""Start a real LensForge server with the test plugins: ``python -m tests.launch``.

Settings come from LENSFORGE_* environment variables, as with ``lensforge serve``.
"""

from __future__ import annotations

import uvicorn

from lensforge.api import create_app
from lensforge.settings import Settings
from tests.plugins_for_tests import Chaos, Single, Testing

if __name__ == "__main__":
    settings = Settings()
    app = create_app(settings, extra_plugins=[Testing, Single, Chaos])
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
