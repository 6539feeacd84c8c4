"""The plugins the security suite registers (``extra_plugins=``), and its server launcher.

``python -m tests.security.plugins`` starts a real server with these plugins, settings from
``LENSFORGE_*`` variables, and every logger at DEBUG (uvicorn's access log included), so a
test can grep its output for secrets.
"""

from __future__ import annotations

from typing import Any

from lensforge import Plugin, tool
from tests.support import Single, Testing


class Shapes(Plugin):
    """A tool that takes free-form JSON, to reach the shape caps (depth, string length)."""

    name = "shapes"
    version = "0.0.1"

    @tool
    def count(self, data: dict[str, Any]) -> dict[str, int]:
        """How many keys the object has."""
        return {"keys": len(data)}


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
