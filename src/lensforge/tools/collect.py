"""collect_tools: every tool a plugin class declares, as validated specs.

Registration is all or nothing: the first tool that cannot be described stops it, with a
:class:`~lensforge.errors.RegistrationError` naming the plugin, the tool and the problem.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from lensforge.errors import RegistrationError
from lensforge.plugin import Plugin, SchemaToolOptions, declared_options
from lensforge.tools.schema import SchemaTool
from lensforge.tools.spec import ToolSpec, invalid_tool
from lensforge.tools.typed import TypedTool

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


def collect_tools(plugin_cls: type[Plugin]) -> dict[str, ToolSpec]:
    """Validate every tool of a plugin class; all or nothing, naming the plugin and tool."""
    plugin = getattr(plugin_cls, "name", None)
    if not isinstance(plugin, str) or not re.match(NAME_PATTERN, plugin):
        raise RegistrationError(
            f"plugin class {plugin_cls.__qualname__}: 'name' must be a lowercase identifier "
            f"matching {NAME_PATTERN}, got {plugin!r}"
        )
    specs: dict[str, ToolSpec] = {}
    members: dict[str, Any] = {}
    for klass in reversed(plugin_cls.__mro__):  # declaration order: the first tool is first
        members.update(vars(klass))
    for attr, func in members.items():
        opts = declared_options(func) if inspect.isfunction(func) else None
        if opts is None:
            continue
        spec: ToolSpec
        if isinstance(opts, SchemaToolOptions):
            spec = SchemaTool.from_method(plugin, attr, func, opts)
        else:
            spec = TypedTool.from_method(plugin, attr, func, opts)
        if not re.match(NAME_PATTERN, spec.name):
            raise invalid_tool(plugin, spec.name, f"tool names must match {NAME_PATTERN}")
        if spec.name in specs:
            raise invalid_tool(plugin, spec.name, "two tools share this name")
        if spec.timeout_s is not None and spec.timeout_s <= 0:
            raise invalid_tool(plugin, spec.name, "timeout_s must be positive")
        if not spec.description:
            raise invalid_tool(plugin, spec.name, "a tool needs a description (its docstring)")
        specs[spec.name] = spec
    if not specs:
        raise RegistrationError(f"plugin '{plugin}' declares no tools (mark methods with @tool)")
    return specs
