"""TypedTool: schemas from type hints, inputs and outputs checked by Pydantic."""

from __future__ import annotations

from typing import Any

import pytest

from lensforge import ToolContext
from lensforge.errors import PluginError, ValidationError
from lensforge.tools import TypedTool, collect_tools
from tests.plugins_for_tests import Testing, Typed


def typed(plugin: Any, name: str) -> TypedTool:
    spec = collect_tools(plugin)[name]
    assert isinstance(spec, TypedTool)
    return spec


def test_input_schema_comes_from_the_type_hints() -> None:
    spec = typed(Typed, "detect")
    schema = spec.input_schema
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"image", "threshold", "labels"}  # no ctx
    assert schema["required"] == ["image"]
    assert schema["properties"]["image"]["x-lensforge-media"] == "image"
    assert schema["properties"]["threshold"] == {
        "default": 0.5,
        "title": "Threshold",
        "type": "number",
    }
    assert schema["additionalProperties"] is False
    assert spec.media_fields == ("image",)
    assert spec.takes_context is True
    assert spec.timeout_s == 5


def test_output_schema_comes_from_the_return_hint() -> None:
    spec = typed(Typed, "detect")
    assert spec.output_schema["type"] == "array"
    found = spec.output_schema["$defs"]["Found"]
    assert set(found["properties"]) == {"label", "score"}
    assert found["properties"]["score"]["maximum"] == 1
    assert collect_tools(Typed)["count_words"].output_schema == {"type": "integer"}


def test_validate_inputs_lists_every_bad_field() -> None:
    spec = typed(Typed, "detect")
    with pytest.raises(ValidationError) as info:
        spec.validate_inputs({"threshold": "high", "labels": [1, 2], "extra": True})
    fields = {problem["field"] for problem in info.value.details["errors"]}
    assert {"image", "threshold", "extra"} <= fields
    assert all(field.split(".")[0] in {"image", "threshold", "extra", "labels"} for field in fields)


def test_inputs_must_be_an_object() -> None:
    with pytest.raises(ValidationError) as info:
        typed(Testing, "echo").validate_inputs(["not", "an", "object"])  # type: ignore[arg-type]
    assert info.value.message == "'inputs' must be a JSON object."
    assert (info.value.plugin, info.value.tool) == ("testing", "echo")


def test_validation_errors_are_worded_once_and_bounded() -> None:
    spec = typed(Testing, "echo")
    with pytest.raises(ValidationError) as info:
        spec.validate_inputs({"times": "x"})
    error = info.value
    assert error.message.startswith("Invalid inputs: ")
    assert {p["field"] for p in error.details["errors"]} == {"text", "times"}
    assert (error.plugin, error.tool) == ("testing", "echo")
    with pytest.raises(ValidationError) as many:
        spec.validate_inputs({f"extra_{i}": i for i in range(50)})
    assert len(many.value.details["errors"]) == ValidationError.MAX_LISTED
    assert many.value.details["total_errors"] == 51  # 50 unknown keys and the missing text
    assert many.value.message.endswith("; and 31 more")


def test_validated_values_keep_defaults() -> None:
    assert typed(Testing, "echo").validate_inputs({"text": "hi"}) == {"text": "hi", "times": 1}


def test_the_context_is_passed_only_to_tools_that_take_one() -> None:
    ctx = ToolContext(plugin="testing", tool="sleep")
    assert typed(Testing, "sleep").call_arguments({"seconds": 1.0}, ctx) == (
        (),
        {"seconds": 1.0, "ctx": ctx},
    )
    assert typed(Testing, "echo").call_arguments({"text": "a", "times": 2}, ctx) == (
        (),
        {"text": "a", "times": 2},
    )


def test_dump_output_returns_json_ready_data() -> None:
    spec = typed(Testing, "echo")
    echoed = Testing().echo("hi", 2)
    assert spec.dump_output(echoed) == {"text": "hi", "times": 2}
    assert spec.dump_output({"text": "hi", "times": 2}) == {"text": "hi", "times": 2}
    assert typed(Typed, "count_words").dump_output(3) == 3


def test_dump_output_refuses_the_wrong_shape() -> None:
    with pytest.raises(PluginError) as info:
        typed(Testing, "echo").dump_output({"text": 5})
    assert "output schema" in info.value.message
    assert "text" in info.value.details["violation"]
    assert "times" in info.value.details["violation"]


def test_dump_output_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(PluginError) as info:
        typed(Testing, "noop").dump_output({"ok": object()})
    assert "output schema" in info.value.message
