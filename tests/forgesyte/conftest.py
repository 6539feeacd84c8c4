"""ForgeSyte test plugins installed as real distributions, and an app that serves them.

The packages in ``packages/`` are copied into a temporary site directory, each with a
``.dist-info`` whose ``entry_points.txt`` names it in the ``forgesyte.plugins`` group: what
``pip install`` of a ForgeSyte plugin leaves behind. Nothing registers them by hand.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lensforge.api import create_app
from lensforge.settings import Settings

PACKAGES = Path(__file__).parent / "packages"
DISTRIBUTIONS = {
    # package: (distribution name, version, entry point name, object)
    "fs_shapes": ("forgesyte-fs-shapes", "2.1.0", "fs-shapes", "fs_shapes.plugin:Plugin"),
    "fs_legacy": ("forgesyte-fs-legacy", "0.3.0", "fs_legacy", "fs_legacy:Plugin"),
    "fs_missing": ("forgesyte-fs-missing", "1.0.0", "fs_missing", "fs_missing:Plugin"),
    "fs_ocr": ("forgesyte-fs-ocr", "1.0.0", "ocr", "fs_ocr:Plugin"),
    "fs_video": ("forgesyte-fs-video", "0.4.0", "fs-video", "fs_video:Plugin"),
}


def build_site(root: Path) -> Path:
    for package, (dist, version, entry, target) in DISTRIBUTIONS.items():
        shutil.copytree(PACKAGES / package, root / package)
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[forgesyte.plugins]\n{entry} = {target}\n")
    return root


@pytest.fixture(scope="session")
def forgesyte_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site directory holding the installed ForgeSyte test plugins."""
    return build_site(tmp_path_factory.mktemp("forgesyte-site"))


@pytest.fixture
def installed(forgesyte_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test plugins importable (and discoverable) in this process and its workers."""
    monkeypatch.syspath_prepend(str(forgesyte_site))
    importlib.invalidate_caches()
    yield forgesyte_site
    for name in [m for m in sys.modules if m.split(".")[0] in DISTRIBUTIONS]:
        del sys.modules[name]


@pytest.fixture
def client(installed: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The real app (SQLite, thread workers) serving the installed test plugins."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'lensforge.db'}",
        data_dir=tmp_path / "data",
        workers=2,
        poll_interval_s=0.05,
        executor="thread",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client
