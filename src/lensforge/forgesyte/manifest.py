"""ForgeSyte's ``manifest.json``: read from beside a plugin's module, or made from its tools.

A manifest holds the plugin's ``id``, ``name``, ``version``, ``description``, ``type``,
``capabilities`` and per tool ``id``, ``title``, ``description``, ``input_types``,
``output_types``, ``capabilities`` and loose ``inputs`` / ``outputs`` maps. ForgeSyte's
clients read it (``GET /v1/plugins/{id}/manifest``) and route capabilities with it
(``logical_tool_id``); LensForge uses it for the same, and for a tool's input types.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lensforge.errors import RegistrationError


def manifest_path(module_name: str) -> Path | None:
    """Where ``manifest.json`` sits for a plugin defined in ``module_name``, if it does."""
    module = sys.modules.get(module_name)
    module_file = getattr(module, "__file__", None)
    if not module_file:
        return None
    path = Path(module_file).parent / "manifest.json"
    return path if path.is_file() else None


def read_manifest(module_name: str, plugin: str) -> dict[str, Any] | None:
    """The plugin's manifest.json, or None; a manifest that is not a JSON object is a
    RegistrationError naming the file."""
    path = manifest_path(module_name)
    if path is None:
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistrationError(
            f"ForgeSyte plugin '{plugin}': {path} is not valid JSON ({exc})", plugin=plugin
        ) from None
    if not isinstance(manifest, dict):
        raise RegistrationError(
            f"ForgeSyte plugin '{plugin}': {path} must hold a JSON object", plugin=plugin
        )
    return manifest


def manifest_tools(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's tools as a list (ForgeSyte allows a list or a dict by id)."""
    tools = manifest.get("tools", [])
    if isinstance(tools, dict):
        return [{"id": key, **value} for key, value in tools.items() if isinstance(value, dict)]
    if isinstance(tools, list):
        return [tool for tool in tools if isinstance(tool, dict)]
    return []


def manifest_tool(manifest: dict[str, Any], tool_id: str) -> dict[str, Any]:
    """The manifest entry of ``tool_id`` (empty when the manifest does not list it)."""
    return next((tool for tool in manifest_tools(manifest) if tool.get("id") == tool_id), {})


def input_types(entry: dict[str, Any]) -> list[str]:
    """A manifest tool's input types (``input_types``, or the keys of a legacy ``inputs``)."""
    declared = entry.get("input_types")
    if isinstance(declared, list):
        return [str(kind) for kind in declared]
    inputs = entry.get("inputs")
    if isinstance(inputs, dict):
        return [str(key) for key in inputs]
    if isinstance(inputs, list):
        return [str(key) for key in inputs]
    return []


def canonical(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as ForgeSyte serves it: defaults filled, tools as a list, every tool
    with ``inputs`` (from ``input_types`` when it has none)."""
    result = {"version": "1.0.0", "description": "", "type": "custom", **manifest}
    tools = []
    for tool in manifest_tools(manifest):
        entry = {"title": "", "description": "", "outputs": [], **tool}
        if not entry.get("inputs"):
            entry["inputs"] = list(entry.get("input_types") or [])
        tools.append(entry)
    result["tools"] = tools
    return result


def synthesized(
    plugin_id: str, version: str, description: str, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """A manifest for a plugin that ships none, from what its tools declare."""
    return {
        "id": plugin_id,
        "name": plugin_id,
        "version": version,
        "description": description,
        "type": "custom",
        "capabilities": [],
        "tools": tools,
    }
