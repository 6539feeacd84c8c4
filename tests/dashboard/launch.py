"""A real LensForge server for the dashboard tests: ``python -m tests.dashboard.launch``.

Like ``lensforge serve`` (settings from LENSFORGE_* variables) plus the test plugins (a
slow, cancellable ``testing.sleep``), with logs configured by :mod:`lensforge.logs`.
"""

from __future__ import annotations

import uvicorn

from lensforge.api import create_app
from lensforge.logs import configure_logging
from lensforge.settings import Settings
from tests.plugins_for_tests import Single, Testing

if __name__ == "__main__":
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, extra_plugins=[Testing, Single])
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        log_config=None,
    )
