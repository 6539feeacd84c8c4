"""The front door's shape check (AnalysisExecutionService._check_shape): hostile inputs (too
many keys, huge strings or keys, deep nesting) are refused before any schema work, with the
limit in the error's details; inputs at the limit pass to the schema check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lensforge.errors import ValidationError
from lensforge.execution.analysis import AnalysisExecutionService, AnalysisRequest
from tests.unit.execution.front_support import analysis


def front(tmp_path: Path, **limits: int) -> AnalysisExecutionService:
    service = analysis(tmp_path)
    for name, value in limits.items():
        setattr(service, name, value)
    return service


def refusal(service: AnalysisExecutionService, inputs: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        service.prepare(AnalysisRequest(plugin="front", tool="steps", inputs=inputs))
    return caught.value


def test_inputs_with_more_keys_than_the_limit_are_refused_and_the_limit_itself_passes(
    tmp_path: Path,
) -> None:
    service = front(tmp_path, max_input_keys=3)
    at_limit = refusal(service, {"n": 1, "a": 1, "b": 1})  # the schema's refusal, not the shape's
    assert "keys" not in at_limit.message
    over = refusal(service, {"n": 1, "a": 1, "b": 1, "c": 1})
    assert over.message == "Inputs hold more than 3 keys; send fewer fields."
    assert over.details == {"max_keys": 3}
    nested_at_limit = refusal(service, {"n": {"a": 1}, "b": 1})  # 2 + 1 keys
    assert "keys" not in nested_at_limit.message
    nested_over = refusal(service, {"n": {"a": 1, "b": 1}, "c": 1})  # 2 + 2 keys
    assert nested_over.details == {"max_keys": 3}


def test_a_string_or_a_key_longer_than_the_limit_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    service = front(tmp_path, max_input_string=5)
    assert "longer" not in refusal(service, {"n": "abcde"}).message  # at the limit: the schema's
    long_value = refusal(service, {"n": ["ok", "abcdef"]})
    assert long_value.message == "Input n[1] is longer than 5 characters."
    assert long_value.details == {"field": "n[1]", "max_length": 5}
    assert "longer" not in refusal(service, {"n": {"abcde": 1}}).message
    long_key = refusal(service, {"n": {"abcdef": 1}})
    assert long_key.message == "A key inside n is longer than 5 characters."
    assert long_key.details == {"field": "n", "max_length": 5}


def test_inputs_nested_deeper_than_the_limit_are_refused_with_where(tmp_path: Path) -> None:
    service = front(tmp_path, max_input_depth=3)
    assert "deeper" not in refusal(service, {"n": {"a": {"b": 1}}}).message  # depth 3
    deep = refusal(service, {"n": {"a": {"b": [1]}}})
    assert deep.message == "Inputs nest deeper than 3 levels (at n.a.b[0])."
    assert deep.details == {"field": "n.a.b[0]", "max_depth": 3}
