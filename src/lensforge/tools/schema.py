"""SchemaTool: a tool described by JSON Schema dicts plus a handler (the
:func:`~lensforge.schema_tool` way, for plugins ported from MCP-style systems).

The handler is called as ``handler(self, inputs, ctx)``. String properties whose schema has
an ``image/...`` ``contentMediaType`` are media inputs: the ToolRunner decodes them into an
:class:`~lensforge.Image` first, and the published input schema shows them as LensForge's
image schema. A property marked ``"x-lensforge-media": "video"`` is a video input: the
handler gets a :class:`~lensforge.Video`. Both schemas are checked (and their validators
built) once, at registration.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from lensforge.errors import PluginError
from lensforge.media import IMAGE_JSON_SCHEMA, MediaRef, is_media_schema
from lensforge.plugin import SchemaToolOptions, ToolContext
from lensforge.tools.spec import CallArguments, ToolSpec, invalid_tool
from lensforge.video.media import VIDEO_JSON_SCHEMA

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


@dataclass(kw_only=True)
class SchemaTool(ToolSpec):
    """A tool whose schemas are given as JSON Schema, validated by ``jsonschema``."""

    input_validator: Validator = field(repr=False)
    output_validator: Validator | None = field(repr=False)

    @classmethod
    def from_method(
        cls, plugin: str, attr: str, func: Callable[..., Any], opts: SchemaToolOptions
    ) -> SchemaTool:
        """Build the spec of handler ``attr``; RegistrationError if a schema is invalid."""
        name = opts.name or attr
        input_class = _validator_class(plugin, name, "input", opts.input_schema)
        output_validator = None
        if opts.output_schema is not None:
            output_class = _validator_class(plugin, name, "output", opts.output_schema)
            output_validator = output_class(opts.output_schema)
        if opts.input_schema.get("type", "object") != "object":
            raise invalid_tool(plugin, name, "its input schema must describe an object")
        props = opts.input_schema.get("properties", {})
        media = tuple(key for key, prop in props.items() if is_media_schema(prop))
        videos = tuple(key for key, prop in props.items() if _is_video_schema(prop))
        input_schema = dict(opts.input_schema)
        input_schema["properties"] = {
            key: IMAGE_JSON_SCHEMA if key in media else VIDEO_JSON_SCHEMA if key in videos else prop
            for key, prop in props.items()
        }
        return cls(
            plugin=plugin,
            name=name,
            description=opts.description or inspect.getdoc(func) or "",
            input_schema=input_schema,
            output_schema=opts.output_schema or {},
            function=func,
            media_fields=media,
            video_fields=videos,
            timeout_s=opts.timeout_s,
            retry_on=opts.retry_on,
            max_attempts=opts.max_attempts,
            cpus=opts.cpus,
            gpus=opts.gpus,
            memory_mb=opts.memory_mb,
            long=opts.long,
            # Inputs are checked against the published schema (images as blob references).
            input_validator=input_class(input_schema),
            output_validator=output_validator,
        )

    def _check_inputs(self, inputs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        errors = sorted(self.input_validator.iter_errors(inputs), key=lambda e: list(e.path))
        problems = [
            {
                "field": ".".join(str(part) for part in error.path) or "(inputs)",
                "message": error.message,
                "type": str(error.validator),
            }
            for error in errors
        ]
        if problems:
            return problems, {}
        values = dict(inputs)
        for name in (*self.media_fields, *self.video_fields):  # as a typed tool's media give it
            value = values.get(name)
            if isinstance(value, dict) and "blob" in value:
                values[name] = MediaRef(str(value["blob"]))
        return [], values

    def call_arguments(self, values: dict[str, Any], ctx: ToolContext) -> CallArguments:
        """``handler(self, inputs, ctx)``: the inputs as one dict, then the context."""
        return (values, ctx), {}

    def dump_output(self, raw: Any) -> Any:
        import jsonschema

        if isinstance(raw, BaseModel):
            raw = raw.model_dump(mode="json")
        if self.output_validator is not None:
            error = jsonschema.exceptions.best_match(self.output_validator.iter_errors(raw))
            if error is not None:
                raise PluginError(
                    f"The tool's output breaks its output schema: {error.message}",
                    details={"path": list(error.path)},
                )
        return raw


def _is_video_schema(schema: dict[str, Any]) -> bool:
    """Whether a property's JSON Schema declares a video input (LensForge's video schema)."""
    return schema.get("x-lensforge-media") == "video"


def _validator_class(plugin: str, tool: str, label: str, schema: dict[str, Any]) -> type[Validator]:
    """The validator class for ``schema`` (by its ``$schema``), once the schema is checked."""
    import jsonschema  # only plugins with schema-described tools pay for it

    validator_class: type[Validator] = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise invalid_tool(plugin, tool, f"its {label} schema is invalid: {exc.message}") from None
    return validator_class
