"""The plugins the security suite registers (``extra_plugins=``), and its server launcher.

``python -m tests.security.plugins`` starts a real server with these plugins, settings from
``LENSFORGE_*`` variables, and every logger at DEBUG (uvicorn's access log included), so a
test can grep its output for secrets.
"""

from __future__ import annotations

from lensforge import Plugin
from tests.plugins_for_tests import Shapes, Single, Testing

PLUGINS: list[type[Plugin]] = [Testing, Single, Shapes]


def main() -> None:
    import logging

    import uvicorn

    from lensforge.api import create_app
    from lensforge.settings import Settings

    # Imported by name, not taken from __main__: worker processes import the plugins by
    # their module path, which must not be "__main__".
    from tests.security.plugins import PLUGINS as plugins

    logging.basicConfig(
        level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    app = create_app(settings, extra_plugins=plugins)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="debug", access_log=True)


if __name__ == "__main__":
    main()
