"""Fixtures for the built-in vision plugins: one real app for the session, sample photos.

Every image is made in code (or bundled with scikit-image), with a known ground truth. The
``image`` plugin comes in through its entry point; the others are also passed as
``extra_plugins`` so the tests run whether or not their entry points are installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from lensforge.api import create_app
from lensforge.builtin.codes import CodesPlugin
from lensforge.builtin.faces import FacesPlugin
from lensforge.builtin.image import ImagePlugin
from lensforge.builtin.ocr import OcrPlugin
from lensforge.builtin.people import PeoplePlugin
from lensforge.settings import Settings
from tests.plugins.support import BUILTIN_PLUGINS, Api


@pytest.fixture(scope="session")
def plugin_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("lensforge")
    return Settings(
        database_url=f"sqlite:///{root / 'lensforge.db'}",
        data_dir=root / "data",
        workers=2,
        poll_interval_s=0.05,
    )


@pytest.fixture(scope="session")
def plugin_client(plugin_settings: Settings) -> Iterator[TestClient]:
    """The real app, lifespan included, with every built-in plugin."""
    app = create_app(plugin_settings, extra_plugins=list(BUILTIN_PLUGINS))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def api(plugin_client: TestClient) -> Api:
    return Api(plugin_client)


@pytest.fixture(scope="session")
def astronaut() -> PILImage.Image:
    """A real photograph of a face, bundled with scikit-image (no download)."""
    from skimage import data

    return PILImage.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def coffee() -> PILImage.Image:
    from skimage import data

    return PILImage.fromarray(data.coffee())


@pytest.fixture(scope="session")
def ocr() -> OcrPlugin:
    plugin = OcrPlugin()
    plugin.setup()
    return plugin


@pytest.fixture(scope="session")
def codes() -> CodesPlugin:
    plugin = CodesPlugin()
    plugin.setup()
    return plugin


@pytest.fixture(scope="session")
def faces() -> FacesPlugin:
    plugin = FacesPlugin()
    plugin.setup()
    return plugin


@pytest.fixture(scope="session")
def image_plugin() -> ImagePlugin:
    plugin = ImagePlugin()
    plugin.setup()
    return plugin


@pytest.fixture(scope="session")
def people() -> PeoplePlugin:
    plugin = PeoplePlugin()
    plugin.setup()
    return plugin


@pytest.fixture(scope="session")
def cameraman() -> PILImage.Image:
    """A real photograph of a standing man (behind a camera on a tripod), bundled with
    scikit-image as ``skimage.data.camera()`` (no download)."""
    from skimage import data

    return PILImage.fromarray(data.camera()).convert("RGB")
