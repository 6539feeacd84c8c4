"""Each served tool's output schema is a named component of /openapi.json, linked from the
analysis answers, and real results validate against their tool's component."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from lensforge import Plugin, tool
from lensforge.api.openapi import REF_PREFIX, TOOL_KEY, result_name, tool_result_schemas
from lensforge.tools.collect import collect_tools
from tests.support import b64, png
from tests.unit.api.support import thread_app, wait_for


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(thread_app(tmp_path_factory.mktemp("typed"))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/openapi.json").json()
    return body


def test_names_come_from_plugin_and_tool() -> None:
    assert result_name("image", "info") == "ImageInfoResult"
    assert result_name("codes", "decode") == "CodesDecodeResult"
    assert result_name("my_plugin", "read-text") == "MyPluginReadTextResult"


def test_every_served_tool_with_an_output_schema_has_its_component(
    client: TestClient, document: dict[str, Any]
) -> None:
    schemas = document["components"]["schemas"]
    plugins = client.get("/v1/plugins").json()["plugins"]
    typed = [t for p in plugins for t in p["tools"] if t["output_schema"]]
    assert len(typed) >= 10
    for manifest in typed:
        plugin, name = manifest["qualified_name"].split(".", 1)
        component = schemas[result_name(plugin, name)]
        assert component[TOOL_KEY] == manifest["qualified_name"]
    assert schemas["ImageInfoResult"]["properties"]["width"]["type"] == "integer"


def test_the_analysis_answers_link_the_results(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    result = schemas["AnalyzeResponse"]["properties"]["result"]
    linked = {choice["$ref"].removeprefix(REF_PREFIX) for choice in result["anyOf"]}
    assert "ImageInfoResult" in linked
    assert linked == {name for name, schema in schemas.items() if TOOL_KEY in schema}
    for path, method in (("/v1/analyze", "post"), ("/v1/jobs/{job_id}/result", "get")):
        ok = document["paths"][path][method]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/AnalyzeResponse")


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "#/$defs/" not in text and "#/definitions/" not in text
    schemas = document["components"]["schemas"]
    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        assert ref.removeprefix(REF_PREFIX) in schemas, ref


def validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:openapi{REF_PREFIX}{name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_real_results_validate_against_their_components(
    client: TestClient, document: dict[str, Any]
) -> None:
    image = {"image": b64(png(20, 10))}
    for qualified, inputs in (("image.info", image), ("image.hash", image)):
        plugin, name = qualified.split(".")
        body = {"plugin": plugin, "tool": name, "inputs": inputs}
        answer = client.post("/v1/analyze", json=body).json()
        validator(document, result_name(plugin, name)).validate(answer["result"])
        validator(document, "AnalyzeResponse").validate(answer)
        stored = client.get(f"/v1/jobs/{answer['job_id']}/result").json()
        assert wait_for(client, answer["job_id"])["status"] == "SUCCESS"
        validator(document, "AnalyzeResponse").validate(stored)
    wrong = {"format": 3, "width": "wide"}
    with pytest.raises(jsonschema.ValidationError):
        validator(document, "ImageInfoResult").validate(wrong)


class First(BaseModel):
    x: int


class Second(BaseModel):
    y: str


def nested(model: type[BaseModel]) -> type[BaseModel]:
    class Box(BaseModel):
        inner: model  # type: ignore[valid-type]

    class Out(BaseModel):
        boxes: list[Box]

    return Out


class Left(Plugin):
    name = "left"
    version = "1"

    @tool
    def find(self, n: int) -> nested(First):  # type: ignore[valid-type]
        """Boxes."""
        raise NotImplementedError


class Right(Plugin):
    name = "right"
    version = "1"

    @tool
    def find(self, n: int) -> nested(Second):  # type: ignore[valid-type]
        """Boxes."""
        raise NotImplementedError


def test_nested_models_keep_their_names_unless_two_differ() -> None:
    tools = [*collect_tools(Left).values(), *collect_tools(Right).values()]
    added = tool_result_schemas(tools, taken={"First": {"type": "string"}})
    assert {"LeftFindResult", "RightFindResult", "Box", "RightFindResultBox", "Second"} <= set(
        added
    )
    assert "LeftFindResultFirst" in added  # 'First' was taken by a different schema
    right = json.dumps(added["RightFindResult"])
    assert REF_PREFIX + "RightFindResultBox" in right
    assert REF_PREFIX + "Second" in json.dumps(added["RightFindResultBox"])
