"""Discovery of ForgeSyte plugins: the ``forgesyte.plugins`` entry-point group.

On by default (``LENSFORGE_FORGESYTE_PLUGINS=false`` turns it off). Each entry point is
adapted (:func:`~lensforge.forgesyte.adapter.adapt`) and registered beside the
``lensforge.plugins`` ones, after them:

- enablement: the plugin's LensForge name, or ``forgesyte:<entry point>``, in the allow and
  block lists (``LENSFORGE_PLUGINS_BLOCK=forgesyte:ocr`` blocks only ForgeSyte's ``ocr``,
  before its module is even imported);
- a plugin that imports a module that does not exist (often ForgeSyte's own server,
  ``app.*``) is listed UNAVAILABLE with the module named, never a crash;
- a name already taken is a load error naming both sides and the two ways out: block one,
  or rename the ForgeSyte one (``LENSFORGE_FORGESYTE_RENAME=ocr:forgesyte_ocr``).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lensforge.errors import LensForgeError, PluginUnavailable
from lensforge.forgesyte.adapter import adapt, lensforge_name

if TYPE_CHECKING:
    from lensforge.registry import Registry
    from lensforge.settings import Settings

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "forgesyte.plugins"


@dataclass(frozen=True)
class ForgeSyteOptions:
    """Whether ForgeSyte plugins are discovered, and the names some of them take instead."""

    enabled: bool = True
    rename: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> ForgeSyteOptions:
        return cls(settings.forgesyte_plugins, dict(settings.forgesyte_rename))

    @classmethod
    def from_environment(cls) -> ForgeSyteOptions:
        """From the ``LENSFORGE_FORGESYTE_*`` variables (a worker inherits its server's)."""
        from lensforge.settings import Settings

        return cls.from_settings(Settings())


def _enabled(registry: Registry, name: str, alias: str) -> bool:
    if name in registry.block or alias in registry.block:
        return False
    return not registry.allow or name in registry.allow or alias in registry.allow


def discover(registry: Registry, options: ForgeSyteOptions) -> None:
    """Register every enabled ForgeSyte plugin found in the ``forgesyte.plugins`` group."""
    if not options.enabled:
        return
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _load(registry, entry, options)


def _load(
    registry: Registry, entry: importlib.metadata.EntryPoint, options: ForgeSyteOptions
) -> None:
    alias = f"forgesyte:{entry.name}"
    if alias in registry.block:
        return
    fallback = options.rename.get(entry.name) or lensforge_name(entry.name)
    try:
        plugin_cls = adapt(entry.load(), entry_point=entry.value, rename=options.rename)
    except ModuleNotFoundError as exc:
        reason = (
            f"missing Python module '{exc.name}' (imported by ForgeSyte plugin {entry.value}); "
            "install it beside LensForge (ForgeSyte's own server modules, app.*, are not "
            "provided)"
        )
        if _enabled(registry, fallback, alias):
            registry.add_unavailable(
                fallback, reason, description=f"ForgeSyte plugin {entry.value}"
            )
        return
    except PluginUnavailable as exc:
        if _enabled(registry, fallback, alias):
            registry.add_unavailable(
                fallback, exc.message, description=f"ForgeSyte plugin {entry.value}"
            )
        return
    except Exception as exc:  # one broken plugin must not stop the server
        _failed(registry, alias, exc)
        return
    name = plugin_cls.name
    if not _enabled(registry, name, alias):
        return
    if name in registry.names():
        owner = registry.get(name).plugin_cls
        _failed(
            registry,
            alias,
            LensForgeError(
                f"ForgeSyte plugin '{plugin_cls.forgesyte.plugin_id}' (entry point "
                f"'{entry.name}') is named '{name}', like the plugin already registered by "
                f"{owner.__module__}.{owner.__qualname__}; block one of them "
                f"(LENSFORGE_PLUGINS_BLOCK=forgesyte:{entry.name}) or rename the ForgeSyte one "
                f"(LENSFORGE_FORGESYTE_RENAME={plugin_cls.forgesyte.plugin_id}:another_name)"
            ),
        )
        return
    try:
        registry.register(plugin_cls)
    except Exception as exc:
        _failed(registry, alias, exc)


def _failed(registry: Registry, alias: str, exc: Exception) -> None:
    reason = exc.message if isinstance(exc, LensForgeError) else repr(exc)
    registry.load_errors[alias] = reason
    log.error(
        "ForgeSyte plugin %s failed to register: %s",
        alias,
        reason,
        extra={"event": "plugin_registration_failed", "plugin": alias},
    )
