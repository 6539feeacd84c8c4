"""The plugin contract: :class:`Plugin`, the :func:`tool` decorator and :class:`ToolContext`.

A plugin is a class with a ``name``, a ``version``, an optional ``setup()`` (run once per
worker process: load models there) and methods marked as tools::

    from pydantic import BaseModel
    from lensforge import Image, Plugin, ToolContext, tool

    class Size(BaseModel):
        width: int
        height: int

    class Measure(Plugin):
        name = "measure"
        version = "1.0.0"

        @tool(timeout_s=5)
        def size(self, image: Image, ctx: ToolContext | None = None) -> Size:
            \"\"\"Width and height of the image in pixels.\"\"\"
            return Size(width=image.width, height=image.height)

Register it through an entry point in the group ``lensforge.plugins``::

    [project.entry-points."lensforge.plugins"]
    measure = "my_package:Measure"

Input and output JSON Schemas come from the type hints (Pydantic); the docstring is the
tool's description. A tool ported from a system that describes tools as JSON Schema can be
declared with :func:`schema_tool` instead.
"""

from __future__ import annotations

import inspect
import logging
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, ConfigDict, TypeAdapter

from lensforge.errors import Cancelled, RegistrationError, ValidationError
from lensforge.media import IMAGE_JSON_SCHEMA, Image, is_media_schema

F = TypeVar("F", bound=Callable[..., Any])
_TOOL_MARK = "__lensforge_tool__"
_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class CancelSignal(Protocol):
    """What tells a running tool it was cancelled: a ``threading.Event`` or the like."""

    def is_set(self) -> bool: ...


class ToolContext:
    """What a running tool may use besides its inputs: progress, cancellation and a logger."""

    def __init__(
        self,
        *,
        job_id: str | None = None,
        plugin: str = "",
        tool: str = "",
        attempt: int = 1,
        on_progress: Callable[[float, str | None], None] | None = None,
        cancel_event: CancelSignal | None = None,
    ) -> None:
        self.job_id = job_id
        self.plugin = plugin
        self.tool = tool
        self.attempt = attempt
        self._on_progress = on_progress
        self._cancel_event = cancel_event

    @property
    def logger(self) -> logging.Logger:
        """The plugin's logger, ``lensforge.plugins.<plugin>``."""
        return logging.getLogger(f"lensforge.plugins.{self.plugin}")

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress between 0 and 1, with an optional message."""
        if self._on_progress is not None:
            self._on_progress(min(1.0, max(0.0, float(fraction))), message)

    @property
    def cancelled(self) -> bool:
        """True once someone asked to cancel this job; stop work and return soon."""
        return self._cancel_event is not None and self._cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`~lensforge.errors.Cancelled` if the job was cancelled."""
        if self.cancelled:
            raise Cancelled(plugin=self.plugin, tool=self.tool, job_id=self.job_id)


@dataclass(frozen=True)
class ToolOptions:
    """What the decorator records on a tool method."""

    name: str | None = None
    description: str | None = None
    timeout_s: float | None = None
    retry_on: tuple[str, ...] = ()
    max_attempts: int | None = None
    input_schema: dict[str, Any] | None = None  # set only by schema_tool
    output_schema: dict[str, Any] | None = None


@typing.overload
def tool(fn: F) -> F: ...


@typing.overload
def tool(
    *,
    name: str | None = ...,
    description: str | None = ...,
    timeout_s: float | None = ...,
    retry_on: Iterable[str] = ...,
    max_attempts: int | None = ...,
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    retry_on: Iterable[str] = (),
    max_attempts: int | None = None,
) -> Any:
    """Mark a plugin method as a tool.

    ``timeout_s`` is the tool's time limit; ``retry_on`` lists error codes worth retrying
    (with ``max_attempts`` in all). The description defaults to the method's docstring.
    """
    options = ToolOptions(name, description, timeout_s, tuple(retry_on), max_attempts)

    def mark(func: F) -> F:
        setattr(func, _TOOL_MARK, options)
        return func

    return mark(fn) if fn is not None else mark


def schema_tool(
    *,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
) -> Callable[[F], F]:
    """Mark a method ``handler(self, inputs: dict, ctx) -> dict`` as a JSON-Schema tool.

    String properties with ``"contentMediaType": "image/..."`` are decoded into an
    :class:`Image` before the handler sees them.
    """
    options = ToolOptions(
        name, description, timeout_s, input_schema=input_schema, output_schema=output_schema
    )

    def mark(func: F) -> F:
        setattr(func, _TOOL_MARK, options)
        return func

    return mark


class Plugin:
    """Base class of every plugin; see the module docstring for a runnable example.

    ``requires_packages`` and ``requires_binaries`` name dependencies checked at load time:
    when one is missing the plugin is UNAVAILABLE (listed, with the reason) instead of
    failing the server. ``setup()`` may also raise :class:`ModuleNotFoundError` or
    :class:`~lensforge.errors.PluginUnavailable` for the same effect.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0.0.0"
    description: ClassVar[str] = ""
    requires_packages: ClassVar[tuple[str, ...]] = ()
    requires_binaries: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""

    def setup(self) -> None:
        """Run once per worker process before the first call: load models here."""


@dataclass
class ToolSpec:
    """A validated tool: its schemas, limits and the function the ToolRunner calls."""

    plugin: str
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    function: Callable[..., Any]
    media_fields: tuple[str, ...]
    timeout_s: float | None
    retry_on: tuple[str, ...]
    max_attempts: int | None
    takes_context: bool
    is_async: bool
    input_model: type[BaseModel] | None = None
    output_adapter: TypeAdapter[Any] | None = None
    schema_style: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}.{self.name}"

    def validate_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Check ``inputs`` against the input schema; a ValidationError lists every bad field.

        Returns the validated keyword arguments (media still as references).
        """
        if not isinstance(inputs, dict):
            raise ValidationError(
                "'inputs' must be a JSON object.", plugin=self.plugin, tool=self.name
            )
        if self.schema_style:
            return self._validate_with_json_schema(inputs)
        assert self.input_model is not None
        try:
            model = self.input_model.model_validate(inputs)
        except pydantic.ValidationError as exc:
            problems = [
                {
                    "field": ".".join(str(part) for part in err["loc"]) or "(inputs)",
                    "message": err["msg"],
                    "type": err["type"],
                }
                for err in exc.errors(include_url=False, include_input=False)
            ]
            raise ValidationError(
                "Invalid inputs: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems),
                details={"errors": problems},
                plugin=self.plugin,
                tool=self.name,
            ) from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    def _validate_with_json_schema(self, inputs: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        validator_cls = jsonschema.validators.validator_for(self.input_schema)
        errors = sorted(
            validator_cls(self.input_schema).iter_errors(inputs), key=lambda e: list(e.path)
        )
        if errors:
            problems = [
                {
                    "field": ".".join(str(p) for p in err.path) or "(inputs)",
                    "message": err.message,
                    "type": str(err.validator),
                }
                for err in errors
            ]
            raise ValidationError(
                "Invalid inputs: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems),
                details={"errors": problems},
                plugin=self.plugin,
                tool=self.name,
            )
        return dict(inputs)

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "qualified_name": self.qualified_name,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "timeout_s": self.timeout_s,
            "retry_on": list(self.retry_on),
            "media_inputs": list(self.media_fields),
        }


def _is_context(annotation: Any) -> bool:
    if annotation is ToolContext:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(arg is ToolContext for arg in get_args(annotation))
    return False


def _is_media(annotation: Any) -> bool:
    if annotation is Image:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(arg is Image for arg in get_args(annotation))
    return False


def _fail(plugin: str, tool_name: str, problem: str) -> RegistrationError:
    return RegistrationError(
        f"plugin '{plugin}', tool '{tool_name}': {problem}", plugin=plugin, tool=tool_name
    )


def _typed_spec(plugin: str, attr: str, func: Callable[..., Any], opts: ToolOptions) -> ToolSpec:
    name = opts.name or attr
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise _fail(plugin, name, f"type hints cannot be resolved ({exc})") from exc
    params = list(inspect.signature(func).parameters.values())[1:]  # drop self
    fields: dict[str, Any] = {}
    media: list[str] = []
    takes_context = False
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise _fail(plugin, name, f"*args/**kwargs ('{param.name}') cannot be described")
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if param.name == "ctx" or _is_context(annotation):
            takes_context = True
            continue
        if annotation is inspect.Parameter.empty:
            raise _fail(plugin, name, f"parameter '{param.name}' has no type hint")
        if _is_media(annotation):
            media.append(param.name)
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
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise _fail(plugin, name, f"its types cannot become a JSON Schema ({exc})") from exc
    return ToolSpec(
        plugin=plugin,
        name=name,
        description=opts.description or inspect.getdoc(func) or "",
        input_schema=input_schema,
        output_schema=output_schema,
        function=func,
        media_fields=tuple(media),
        timeout_s=opts.timeout_s,
        retry_on=opts.retry_on,
        max_attempts=opts.max_attempts,
        takes_context=takes_context,
        is_async=inspect.iscoroutinefunction(func),
        input_model=input_model,
        output_adapter=output_adapter,
    )


def _schema_spec(plugin: str, attr: str, func: Callable[..., Any], opts: ToolOptions) -> ToolSpec:
    import jsonschema

    name = opts.name or attr
    assert opts.input_schema is not None
    for label, schema in (("input", opts.input_schema), ("output", opts.output_schema)):
        if schema is None:
            continue
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise _fail(plugin, name, f"its {label} schema is invalid: {exc.message}") from None
    if opts.input_schema.get("type", "object") != "object":
        raise _fail(plugin, name, "its input schema must describe an object")
    props = opts.input_schema.get("properties", {})
    media = tuple(key for key, prop in props.items() if is_media_schema(prop))
    input_schema = dict(opts.input_schema)
    input_schema["properties"] = {
        key: (IMAGE_JSON_SCHEMA if key in media else prop) for key, prop in props.items()
    }
    return ToolSpec(
        plugin=plugin,
        name=name,
        description=opts.description or inspect.getdoc(func) or "",
        input_schema=input_schema,
        output_schema=opts.output_schema or {},
        function=func,
        media_fields=media,
        timeout_s=opts.timeout_s,
        retry_on=opts.retry_on,
        max_attempts=opts.max_attempts,
        takes_context=True,
        is_async=inspect.iscoroutinefunction(func),
        schema_style=True,
    )


def collect_tools(plugin_cls: type[Plugin]) -> dict[str, ToolSpec]:
    """Validate every tool of a plugin class; all or nothing, naming the plugin and tool."""
    import re

    plugin = getattr(plugin_cls, "name", None)
    if not isinstance(plugin, str) or not re.match(_NAME_PATTERN, plugin):
        raise RegistrationError(
            f"plugin class {plugin_cls.__qualname__}: 'name' must be a lowercase identifier "
            f"matching {_NAME_PATTERN}, got {plugin!r}"
        )
    specs: dict[str, ToolSpec] = {}
    members: dict[str, Any] = {}
    for klass in reversed(plugin_cls.__mro__):  # declaration order: the first tool is first
        members.update(vars(klass))
    for attr, func in members.items():
        opts = getattr(func, _TOOL_MARK, None) if inspect.isfunction(func) else None
        if not isinstance(opts, ToolOptions):
            continue
        builder = _schema_spec if opts.input_schema is not None else _typed_spec
        spec = builder(plugin, attr, func, opts)
        if not re.match(_NAME_PATTERN, spec.name):
            raise _fail(plugin, spec.name, f"tool names must match {_NAME_PATTERN}")
        if spec.name in specs:
            raise _fail(plugin, spec.name, "two tools share this name")
        if spec.timeout_s is not None and spec.timeout_s <= 0:
            raise _fail(plugin, spec.name, "timeout_s must be positive")
        if not spec.description:
            raise _fail(plugin, spec.name, "a tool needs a description (its docstring)")
        specs[spec.name] = spec
    if not specs:
        raise RegistrationError(f"plugin '{plugin}' declares no tools (mark methods with @tool)")
    return specs
