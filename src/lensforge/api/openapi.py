"""The OpenAPI document's typed results: each tool's output schema as a named component.

``GET /v1/plugins/{plugin}`` carries each tool's output schema; this module also publishes
them in ``/openapi.json``, built when the document is generated from the registry the app
serves: ``image.info`` becomes ``components/schemas/ImageInfoResult``, each model that
schema nests becomes a component of its own (``#/$defs/X`` rewritten to a component
reference). The ``result`` of :class:`~lensforge.api.models.AnalyzeResponse` (``POST
/v1/analyze``, ``GET /v1/jobs/{job_id}/result``) is then ``anyOf`` those results, and each
result component says which tool gives it (``x-lensforge-tool``), so a generated client has
one class per tool's result (docs/client.md).

:func:`install` replaces ``app.openapi`` (FastAPI's documented way to extend the document);
the document is still built once, the first time it is asked for after start-up.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI

from lensforge.tools import ToolSpec

REF_PREFIX = "#/components/schemas/"
TOOL_KEY = "x-lensforge-tool"
_DEF_REF = re.compile(r"^#/(?:\$defs|definitions)/(.+)$")


def result_name(plugin: str, tool: str) -> str:
    """A tool's result component name: ``image.info`` -> ``ImageInfoResult``."""
    words = re.split(r"[^0-9A-Za-z]+", f"{plugin} {tool}")
    return "".join(word[:1].upper() + word[1:] for word in words if word) + "Result"


def tool_result_schemas(
    tools: Iterable[ToolSpec], taken: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Components for each tool's output schema (tools with none are left out).

    A model nested in a schema (``$defs``) keeps its own name unless ``taken`` (the
    document's components) or another tool already holds a different schema under it; then
    it is prefixed with the result's name. Returns every new component, results and nested.
    """
    added: dict[str, dict[str, Any]] = {}
    for spec in tools:
        if not spec.output_schema:
            continue
        schema = copy.deepcopy(spec.output_schema)
        schema.pop("$schema", None)
        name = result_name(spec.plugin, spec.name)
        nested = {**schema.pop("$defs", {}), **schema.pop("definitions", {})}
        same = {def_name: def_name for def_name in nested}
        renamed: dict[str, str] = {}
        for def_name, def_schema in nested.items():
            chosen = def_name
            existing = added.get(chosen, taken.get(chosen))
            if existing is not None and existing != _rewrite_refs(def_schema, same):
                chosen = name + def_name
            renamed[def_name] = chosen
        for def_name, def_schema in nested.items():
            component = _rewrite_refs(def_schema, renamed)
            # Generators name classes by title: one title per component, its own name.
            component["title"] = renamed[def_name]
            added[renamed[def_name]] = component
        result = _rewrite_refs(schema, renamed)
        result["title"] = name
        result[TOOL_KEY] = spec.qualified_name
        added[name] = result
    return added


def _rewrite_refs(node: Any, renamed: dict[str, str]) -> Any:
    """``node`` with each local ``$ref`` pointing at the component it became."""
    if isinstance(node, dict):
        out = {key: _rewrite_refs(value, renamed) for key, value in node.items()}
        ref = node.get("$ref")
        match = _DEF_REF.match(ref) if isinstance(ref, str) else None
        if match:
            out["$ref"] = REF_PREFIX + renamed.get(match.group(1), match.group(1))
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renamed) for item in node]
    return node


def publish_results(document: dict[str, Any], tools: list[ToolSpec]) -> None:
    """Add the tools' result components to ``document`` and link them from AnalyzeResponse."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    added = tool_result_schemas(tools, schemas)
    schemas.update(added)
    results = sorted(name for name, schema in added.items() if TOOL_KEY in schema)
    response = schemas.get("AnalyzeResponse")
    if response is None or not results:
        return
    choices: list[dict[str, Any]] = [{"$ref": REF_PREFIX + name} for name in results]
    if any(not spec.output_schema for spec in tools):
        choices.append({})  # a tool that declares no output schema may answer anything
    response["properties"]["result"] = {
        "anyOf": choices,
        "title": "Result",
        "description": (
            "The tool's output: the component named after the plugin and tool "
            "(image.info -> ImageInfoResult), whose x-lensforge-tool names it."
        ),
    }


def install(app: FastAPI) -> None:
    """Make ``app.openapi`` publish the served registry's tool results in the document."""
    build: Callable[[], dict[str, Any]] = app.openapi
    published = False

    def openapi() -> dict[str, Any]:
        nonlocal published
        document = build()
        services = getattr(app.state, "services", None)
        if not published and services is not None:
            tools = [
                spec for record in services.registry.records() for spec in record.tools.values()
            ]
            publish_results(document, tools)
            published = True
        return document

    app.openapi = openapi  # type: ignore[method-assign]
