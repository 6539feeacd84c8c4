"""TypedTool: a tool described by its Python type hints (the :func:`~lensforge.tool` way).

The parameters become a Pydantic model (its JSON Schema is the input schema) and the return
hint a TypeAdapter (the output schema); ``Image`` parameters are media inputs, and a ``ctx``
parameter receives the :class:`~lensforge.ToolContext`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, ConfigDict, TypeAdapter

from lensforge.errors import PluginError, pydantic_problems
from lensforge.media import Image, Video
from lensforge.plugin import ToolContext, ToolOptions
from lensforge.tools.spec import CallArguments, ToolSpec, invalid_tool


@dataclass(kw_only=True)
class TypedTool(ToolSpec):
    """A tool whose schemas come from its type hints, validated by Pydantic."""

    input_model: type[BaseModel]
    output_adapter: TypeAdapter[Any]
    takes_context: bool

    @classmethod
    def from_method(
        cls, plugin: str, attr: str, func: Callable[..., Any], opts: ToolOptions
    ) -> TypedTool:
        """Build the spec of method ``attr`` from its signature; RegistrationError if it
        cannot be described."""
        name = opts.name or attr
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception as exc:
            raise invalid_tool(plugin, name, f"type hints cannot be resolved ({exc})") from exc
        fields: dict[str, Any] = {}
        media: list[str] = []
        videos: list[str] = []
        takes_context = False
        for param in list(inspect.signature(func).parameters.values())[1:]:  # drop self
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                problem = f"*args/**kwargs ('{param.name}') cannot be described"
                raise invalid_tool(plugin, name, problem)
            annotation = hints.get(param.name, inspect.Parameter.empty)
            if param.name == "ctx" or _mentions(annotation, ToolContext):
                takes_context = True
                continue
            if annotation is inspect.Parameter.empty:
                raise invalid_tool(plugin, name, f"parameter '{param.name}' has no type hint")
            if _mentions(annotation, Image):
                media.append(param.name)
            elif _mentions(annotation, Video):
                videos.append(param.name)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (annotation, default)
        model_name = "".join(part.capitalize() for part in f"{plugin}_{name}_input".split("_"))
        try:
            input_model = pydantic.create_model(
                model_name,
                __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                **fields,
            )
            input_schema = input_model.model_json_schema()
            returns = hints.get("return", Any)
            output_adapter: TypeAdapter[Any] = TypeAdapter(Any if returns is None else returns)
            output_schema = output_adapter.json_schema() if returns not in (Any, None) else {}
        except (
            pydantic.PydanticSchemaGenerationError,
            pydantic.PydanticUserError,
            TypeError,
        ) as exc:
            problem = f"its types cannot become a JSON Schema ({exc})"
            raise invalid_tool(plugin, name, problem) from exc
        return cls(
            plugin=plugin,
            name=name,
            description=opts.description or inspect.getdoc(func) or "",
            input_schema=input_schema,
            output_schema=output_schema,
            function=func,
            media_fields=tuple(media),
            video_fields=tuple(videos),
            cpus=opts.cpus,
            gpus=opts.gpus,
            memory_mb=opts.memory_mb,
            long=opts.long,
            timeout_s=opts.timeout_s,
            retry_on=opts.retry_on,
            max_attempts=opts.max_attempts,
            input_model=input_model,
            output_adapter=output_adapter,
            takes_context=takes_context,
        )

    def _check_inputs(self, inputs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        try:
            model = self.input_model.model_validate(inputs)
        except pydantic.ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            return pydantic_problems(errors, "(inputs)"), {}
        return [], {name: getattr(model, name) for name in type(model).model_fields}

    def call_arguments(self, values: dict[str, Any], ctx: ToolContext) -> CallArguments:
        """Keyword arguments, the context as ``ctx`` when the method takes one."""
        return (), ({**values, "ctx": ctx} if self.takes_context else values)

    def dump_output(self, raw: Any) -> Any:
        try:
            return self.output_adapter.dump_python(
                self.output_adapter.validate_python(raw), mode="json"
            )
        except pydantic.ValidationError as exc:
            problems = exc.errors(include_url=False, include_input=False)
            detail = "; ".join(
                f"{p['field']}: {p['message']}" for p in pydantic_problems(problems[:6], "(result)")
            )
        except Exception as exc:  # not serialisable as JSON, for instance
            detail = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise PluginError(
            f"The tool's output breaks its output schema: {detail}",
            details={"violation": detail},
        )


def _mentions(annotation: Any, kind: type) -> bool:
    """Whether a parameter hint is ``kind`` or a union with ``kind`` in it."""
    if annotation is kind:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(arg is kind for arg in get_args(annotation))
    return False
