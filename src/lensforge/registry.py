"""The plugin registry: discovery, enablement, registration, lifecycle and metrics."""

from __future__ import annotations

import enum
import importlib.metadata
import importlib.util
import logging
import shutil
import threading
from dataclasses import dataclass, field
from typing import Any

from lensforge.errors import (
    LensForgeError,
    PluginNotFound,
    PluginUnavailable,
    RegistrationError,
    ToolNotFound,
    ValidationError,
)
from lensforge.metrics import Metrics
from lensforge.plugin import Plugin
from lensforge.tools import ToolSpec, collect_tools

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "lensforge.plugins"


class PluginState(enum.StrEnum):
    LOADED = "LOADED"
    INITIALIZED = "INITIALIZED"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass
class PluginRecord:
    name: str
    version: str
    description: str
    plugin_cls: type[Plugin]
    tools: dict[str, ToolSpec]
    state: PluginState = PluginState.LOADED
    reason: str | None = None
    instance: Plugin | None = None
    active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def current_state(self) -> PluginState:
        if self.state is PluginState.INITIALIZED and self.active > 0:
            return PluginState.RUNNING
        return self.state


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent package is missing
        return False


def missing_dependencies(plugin_cls: type[Plugin]) -> str | None:
    """Why the plugin cannot run here (a missing package or binary), or None."""
    missing = [pkg for pkg in plugin_cls.requires_packages if not _importable(pkg)]
    missing_bins = [b for b in plugin_cls.requires_binaries if shutil.which(b) is None]
    if not missing and not missing_bins:
        return None
    parts = []
    if missing:
        parts.append(f"missing Python package(s): {', '.join(missing)}")
    if missing_bins:
        parts.append(f"missing program(s): {', '.join(missing_bins)}")
    hint = f"; install with: {plugin_cls.install_hint}" if plugin_cls.install_hint else ""
    return "; ".join(parts) + hint


class Registry:
    """Registered plugins by name. Registration is all-or-nothing per plugin."""

    def __init__(self, *, allow: list[str] | None = None, block: list[str] | None = None) -> None:
        self.allow = set(allow or ())
        self.block = set(block or ())
        self.metrics = Metrics()
        self._plugins: dict[str, PluginRecord] = {}
        self.load_errors: dict[str, str] = {}

    def enabled(self, name: str) -> bool:
        return name not in self.block and (not self.allow or name in self.allow)

    def register(self, plugin_cls: type[Plugin]) -> PluginRecord:
        """Validate every tool of ``plugin_cls`` and add it; RegistrationError names the problem."""
        if not (isinstance(plugin_cls, type) and issubclass(plugin_cls, Plugin)):
            raise RegistrationError(f"{plugin_cls!r} is not a lensforge.Plugin subclass")
        tools = collect_tools(plugin_cls)
        name = plugin_cls.name
        if name in self._plugins and self._plugins[name].plugin_cls is not plugin_cls:
            raise RegistrationError(f"plugin '{name}' is already registered by another class")
        record = PluginRecord(
            name=name,
            version=str(plugin_cls.version),
            description=plugin_cls.description or (plugin_cls.__doc__ or "").strip(),
            plugin_cls=plugin_cls,
            tools=tools,
        )
        reason = missing_dependencies(plugin_cls)
        if reason:
            record.state, record.reason = PluginState.UNAVAILABLE, reason
        self._plugins[name] = record
        return record

    def discover(self) -> None:
        """Register every enabled plugin found in the ``lensforge.plugins`` entry points."""
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if not self.enabled(entry.name):
                continue
            try:
                self.register(entry.load())
            except Exception as exc:  # one broken plugin must not stop the server
                reason = exc.message if isinstance(exc, LensForgeError) else repr(exc)
                self.load_errors[entry.name] = reason
                log.error(
                    "plugin %s failed to register: %s",
                    entry.name,
                    reason,
                    extra={"event": "plugin_registration_failed", "plugin": entry.name},
                )

    def initialize(self) -> None:
        """Run ``setup()`` of every loaded plugin in this process."""
        for record in self._plugins.values():
            self.initialize_plugin(record)

    def initialize_plugin(self, record: PluginRecord) -> None:
        with record._lock:
            if record.state is not PluginState.LOADED:
                return
            try:
                instance = record.plugin_cls()
                instance.setup()
            except (ModuleNotFoundError, PluginUnavailable) as exc:
                record.state, record.reason = PluginState.UNAVAILABLE, str(exc)
            except Exception as exc:
                record.state, record.reason = PluginState.FAILED, f"setup failed: {exc!r}"
                log.exception(
                    "plugin %s setup failed", record.name, extra={"event": "plugin_setup_failed"}
                )
            else:
                record.instance, record.state = instance, PluginState.INITIALIZED

    def names(self) -> list[str]:
        return sorted(self._plugins)

    def records(self) -> list[PluginRecord]:
        return [self._plugins[name] for name in sorted(self._plugins)]

    def get(self, name: str) -> PluginRecord:
        record = self._plugins.get(name)
        if record is None:
            raise PluginNotFound(
                f"No enabled plugin named '{name}'; enabled: {', '.join(self.names()) or 'none'}.",
                plugin=name,
            )
        return record

    def resolve(self, plugin: str, tool: str | None) -> ToolSpec:
        """The tool ``plugin.tool``; a plugin with a single tool needs no tool name."""
        if tool is None and "." in plugin:
            plugin, tool = plugin.split(".", 1)
        record = self.get(plugin)
        if not tool:
            if len(record.tools) == 1:
                return next(iter(record.tools.values()))
            raise ValidationError(
                f"Plugin '{plugin}' has several tools; name one of: {', '.join(record.tools)}.",
                plugin=plugin,
                details={"tools": sorted(record.tools)},
            )
        spec = record.tools.get(tool)
        if spec is None:
            raise ToolNotFound(
                f"Plugin '{plugin}' has no tool '{tool}'; it has: {', '.join(record.tools)}.",
                plugin=plugin,
                tool=tool,
            )
        return spec

    def check_available(self, plugin: str) -> None:
        record = self.get(plugin)
        if record.state in (PluginState.UNAVAILABLE, PluginState.FAILED):
            raise PluginUnavailable(
                f"Plugin '{plugin}' is {record.state.value.lower()}: {record.reason}",
                plugin=plugin,
                details={"state": record.state.value, "reason": record.reason},
            )

    def manifest(self, name: str) -> dict[str, Any]:
        record = self.get(name)
        return {
            "name": record.name,
            "version": record.version,
            "description": record.description,
            "state": record.current_state.value,
            "reason": record.reason,
            "metrics": self.metrics.plugin(record.name),
            "tools": [
                {**spec.manifest(), "metrics": self.metrics.tool(record.name, spec.name)}
                for spec in record.tools.values()
            ],
        }


def load_registry(
    *,
    allow: list[str] | None = None,
    block: list[str] | None = None,
    extra: list[type[Plugin]] | None = None,
) -> Registry:
    """A registry of the enabled installed plugins plus ``extra`` classes (tests, embedding)."""
    registry = Registry(allow=allow, block=block)
    registry.discover()
    for plugin_cls in extra or ():
        registry.register(plugin_cls)
    return registry
