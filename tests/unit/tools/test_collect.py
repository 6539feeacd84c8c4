"""collect_tools: a plugin class's tools as specs, validated all or nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lensforge import Plugin, ToolContext, schema_tool, tool
from lensforge.errors import RegistrationError
from lensforge.registry import Registry
from lensforge.tools import SchemaTool, ToolSpec, TypedTool, collect_tools
from tests.plugins_for_tests import Ported, Testing, Typed


def test_each_declaration_style_gets_its_own_spec_class() -> None:
    specs = collect_tools(Testing)
    assert isinstance(specs["echo"], TypedTool)
    assert isinstance(specs["repeat"], SchemaTool)
    assert all(isinstance(spec, ToolSpec) for spec in specs.values())
    for spec in specs.values():  # the old flag and the dead fields are gone
        for gone in ("schema_style", "is_async", "extra"):
            assert not hasattr(spec, gone), (spec.qualified_name, gone)


def test_docstring_is_the_description() -> None:
    spec = collect_tools(Typed)["detect"]
    assert spec.description.startswith("Find things in an image.")
    assert "The first paragraph and the rest" in spec.description


def test_decorator_name_and_description_win() -> None:
    tools = collect_tools(Typed)
    assert set(tools) == {"detect", "count_words"}
    assert tools["count_words"].description == "Count the words."
    assert tools["count_words"].qualified_name == "typed.count_words"


def test_tools_keep_declaration_order() -> None:
    assert list(collect_tools(Testing))[:3] == ["noop", "echo", "size"]


def test_a_schema_tool_without_a_docstring_takes_the_given_description() -> None:
    assert collect_tools(Ported)["run"].description == "Ported from a JSON Schema system."


def _no_hint() -> type[Plugin]:
    class NoHint(Plugin):
        name = "no_hint"

        @tool
        def ok(self) -> dict[str, int]:
            """Fine."""
            return {}

        @tool
        def broken(self, value) -> dict[str, int]:  # type: ignore[no-untyped-def]
            """The parameter has no hint."""
            return {}

    return NoHint


def _no_docstring() -> type[Plugin]:
    class NoDoc(Plugin):
        name = "no_doc"

        @tool
        def silent(self) -> dict[str, int]:
            return {}

    return NoDoc


def _duplicate() -> type[Plugin]:
    class Duplicate(Plugin):
        name = "duplicate"

        @tool(name="same")
        def first(self) -> dict[str, int]:
            """One."""
            return {}

        @tool(name="same")
        def second(self) -> dict[str, int]:
            """Two."""
            return {}

    return Duplicate


def _bad_plugin_name() -> type[Plugin]:
    class BadName(Plugin):
        name = "Bad-Name"

        @tool
        def ok(self) -> dict[str, int]:
            """Fine."""
            return {}

    return BadName


def _bad_tool_name() -> type[Plugin]:
    class BadToolName(Plugin):
        name = "bad_tool_name"

        @tool(name="Not A Name")
        def ok(self) -> dict[str, int]:
            """Fine."""
            return {}

    return BadToolName


def _invalid_schema() -> type[Plugin]:
    class InvalidSchema(Plugin):
        name = "invalid_schema"

        @schema_tool(input_schema={"type": "object", "properties": {"x": {"type": "nonsense"}}})
        def ported(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            """Its schema is broken."""
            return {}

    return InvalidSchema


def _non_object_schema() -> type[Plugin]:
    class ArraySchema(Plugin):
        name = "array_schema"

        @schema_tool(input_schema={"type": "array"})
        def ported(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            """Inputs must be an object."""
            return {}

    return ArraySchema


def _no_tools() -> type[Plugin]:
    class Empty(Plugin):
        name = "empty"

        def helper(self) -> None:
            """Not a tool."""

    return Empty


def _var_args() -> type[Plugin]:
    class VarArgs(Plugin):
        name = "var_args"

        @tool
        def spread(self, *values: int) -> dict[str, int]:
            """Cannot be described."""
            return {}

    return VarArgs


def _bad_timeout() -> type[Plugin]:
    class BadTimeout(Plugin):
        name = "bad_timeout"

        @tool(timeout_s=0)
        def quick(self) -> dict[str, int]:
            """Zero seconds is not a limit."""
            return {}

    return BadTimeout


def _unschemable() -> type[Plugin]:
    class Unschemable(Plugin):
        name = "unschemable"

        @tool
        def take(self, lock: threading.Lock) -> dict[str, int]:  # type: ignore[valid-type]
            """A lock cannot be JSON."""
            return {}

    return Unschemable


@pytest.mark.parametrize(
    ("make", "plugin", "tool_name", "words"),
    [
        (_no_hint, "no_hint", "broken", "value"),
        (_no_docstring, "no_doc", "silent", "description"),
        (_duplicate, "duplicate", "same", "share"),
        (_bad_plugin_name, None, None, "Bad-Name"),
        (_bad_tool_name, "bad_tool_name", "Not A Name", "names must match"),
        (_invalid_schema, "invalid_schema", "ported", "input schema is invalid"),
        (_non_object_schema, "array_schema", "ported", "object"),
        (_no_tools, None, None, "no tools"),
        (_var_args, "var_args", "spread", "values"),
        (_bad_timeout, "bad_timeout", "quick", "timeout_s"),
        (_unschemable, "unschemable", "take", "JSON Schema"),
    ],
    ids=[
        "missing-hint",
        "missing-docstring",
        "duplicate-names",
        "bad-plugin-name",
        "bad-tool-name",
        "invalid-json-schema",
        "non-object-schema",
        "no-tools",
        "var-args",
        "zero-timeout",
        "unschemable-type",
    ],
)
def test_registration_errors_name_the_plugin_tool_and_problem(
    make: Any, plugin: str | None, tool_name: str | None, words: str
) -> None:
    plugin_cls = make()
    registry = Registry()
    with pytest.raises(RegistrationError) as info:
        registry.register(plugin_cls)
    error = info.value
    assert words in error.message
    if plugin is not None:
        assert f"'{plugin}'" in error.message
        assert error.plugin == plugin
    if tool_name is not None:
        assert f"'{tool_name}'" in error.message
        assert error.tool == tool_name
    assert registry.names() == []  # all or nothing: not even the good tools


def test_register_refuses_what_is_not_a_plugin() -> None:
    class NotAPlugin:
        name = "nope"

    with pytest.raises(RegistrationError):
        Registry().register(NotAPlugin)  # type: ignore[arg-type]


def test_two_classes_cannot_share_a_plugin_name() -> None:
    class Other(Plugin):
        name = "testing"

        @tool
        def x(self) -> dict[str, int]:
            """X."""
            return {}

    registry = Registry()
    registry.register(Testing)
    with pytest.raises(RegistrationError, match="already registered"):
        registry.register(Other)
    assert registry.get("testing").plugin_cls is Testing
