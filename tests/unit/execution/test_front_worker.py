"""What a worker rebuilds from the server's settings (``execution/worker.py``): the same
plugins enabled and blocked, the same ForgeSyte options, and extra plugins by import path."""

from __future__ import annotations

import pytest

from lensforge import Plugin, tool
from lensforge.execution.worker import WorkerConfig, import_plugin, plugin_path
from lensforge.forgesyte import ForgeSyteOptions
from lensforge.media import MediaLimits
from lensforge.settings import Settings
from tests.unit.execution.front_support import Front


class Outer:
    """Holds a plugin class one level down (its qualified name has a dot)."""

    class Inner(Plugin):
        name = "inner"
        version = "1.0.0"

        @tool
        def ping(self) -> dict[str, bool]:
            """Answer."""
            return {"pong": True}


def config(**settings: object) -> WorkerConfig:
    return WorkerConfig(
        Settings(**settings),  # type: ignore[arg-type]
        MediaLimits(),
        extra_plugins=[plugin_path(Front)],
    )


def test_the_workers_registry_allows_and_blocks_as_the_server_does() -> None:
    registry = config(plugins_allow=["image", "codes"], plugins_block=["codes"]).registry()
    assert registry.names() == ["front", "image"]  # extra plugins always join


def test_a_plugin_actor_loads_only_its_own_plugin() -> None:
    everything = config().registry()
    assert {"codes", "image", "front"} <= set(everything.names())
    assert config().registry(only="codes").names() == ["codes", "front"]


def test_the_workers_registry_takes_the_servers_forgesyte_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LENSFORGE_FORGESYTE_PLUGINS", "true")  # a worker's own environment
    registry = config(forgesyte_plugins=False, forgesyte_rename={"old": "new"}).registry()
    assert registry.forgesyte == ForgeSyteOptions(False, {"old": "new"})


def test_a_nested_plugin_class_is_imported_by_its_path() -> None:
    path = plugin_path(Outer.Inner)
    assert path == f"{__name__}:Outer.Inner"
    assert import_plugin(path) is Outer.Inner
    assert import_plugin(plugin_path(Front)) is Front
