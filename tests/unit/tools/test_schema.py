"""SchemaTool: JSON Schema dicts plus a handler, checked by jsonschema."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from lensforge import ToolContext
from lensforge.errors import PluginError, ValidationError
from lensforge.media import MediaRef
from lensforge.tools import SchemaTool, collect_tools
from tests.plugins_for_tests import Ported, Testing


def schema_spec(plugin: Any, name: str) -> SchemaTool:
    spec = collect_tools(plugin)[name]
    assert isinstance(spec, SchemaTool)
    return spec


def test_schema_tool_keeps_its_schema_and_marks_media() -> None:
    spec = schema_spec(Ported, "run")
    assert spec.media_fields == ("picture",)
    assert spec.input_schema["properties"]["picture"]["x-lensforge-media"] == "image"
    assert spec.input_schema["properties"]["k"] == {"type": "integer", "minimum": 1}
    assert spec.description == "Ported from a JSON Schema system."
    assert spec.manifest()["media_inputs"] == ["picture"]


def test_validate_inputs_lists_every_bad_field() -> None:
    spec = schema_spec(Testing, "repeat")
    with pytest.raises(ValidationError) as info:
        spec.validate_inputs({"word": "", "n": "x", "other": 1})
    error = info.value
    assert error.message.startswith("Invalid inputs: ")
    fields = [problem["field"] for problem in error.details["errors"]]
    assert sorted(fields) == ["(inputs)", "n", "word"]  # additionalProperties sits on the root
    types = {problem["field"]: problem["type"] for problem in error.details["errors"]}
    assert types["word"] == "minLength"
    assert types["n"] == "type"
    assert (error.plugin, error.tool) == ("testing", "repeat")


def test_media_inputs_are_checked_as_image_references() -> None:
    spec = schema_spec(Ported, "run")
    blob = "sha256:" + "0" * 64
    assert spec.validate_inputs({"picture": {"blob": blob}, "k": 2}) == {
        "picture": MediaRef(blob),
        "k": 2,
    }
    with pytest.raises(ValidationError) as info:
        spec.validate_inputs({"picture": {"blob": "not a digest"}})
    assert info.value.details["errors"][0]["field"] == "picture"


def test_the_handler_takes_the_inputs_as_one_dict_and_the_context() -> None:
    ctx = ToolContext(plugin="testing", tool="repeat")
    values = {"word": "hi"}
    assert schema_spec(Testing, "repeat").call_arguments(values, ctx) == ((values, ctx), {})


def test_dump_output_enforces_the_output_schema() -> None:
    spec = schema_spec(Ported, "echo_words")
    assert spec.dump_output({"words": ["a", "b"]}) == {"words": ["a", "b"]}
    with pytest.raises(PluginError) as info:
        spec.dump_output({"words": ["a", 5]})
    assert (
        info.value.message
        == "The tool's output breaks its output schema: 5 is not of type 'string'"
    )
    assert info.value.details == {"path": ["words", 1]}
    with pytest.raises(PluginError):
        spec.dump_output({"nothing": True})


def test_dump_output_dumps_a_model_before_checking_it() -> None:
    class Words(BaseModel):
        words: list[str]

    spec = schema_spec(Ported, "echo_words")
    assert spec.dump_output(Words(words=["x"])) == {"words": ["x"]}


def test_no_output_schema_means_any_output() -> None:
    spec = schema_spec(Ported, "echo_words")
    unchecked = SchemaTool(
        **{**{f: getattr(spec, f) for f in spec.__dataclass_fields__}, "output_validator": None}
    )
    assert unchecked.dump_output([1, "two"]) == [1, "two"]


def test_schema_tool_takes_the_same_run_options_as_tool() -> None:
    from lensforge import Plugin, schema_tool

    class Heavy(Plugin):
        name = "heavy"

        @schema_tool(
            input_schema={"type": "object"},
            timeout_s=900,
            retry_on=("plugin_error",),
            max_attempts=3,
            cpus=2,
            gpus=1,
            memory_mb=4096,
            long=True,
        )
        def run(self, inputs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            """Run long on a GPU."""
            return {}

    spec = schema_spec(Heavy, "run")
    assert (spec.timeout_s, spec.retry_on, spec.max_attempts) == (900, ("plugin_error",), 3)
    assert (spec.cpus, spec.gpus, spec.memory_mb, spec.long) == (2, 1, 4096, True)
    assert spec.manifest()["long"] is True
