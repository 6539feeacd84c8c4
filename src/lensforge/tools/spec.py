"""ToolSpec: what every validated tool offers, whichever way it was declared.

A spec holds a tool's schemas and limits, checks a call's inputs against them, says how the
tool function takes its arguments, and turns what the function returned into JSON-ready
data. Only the ToolRunner calls ``spec.function``; the two kinds of spec (typed and
schema-described) differ in how they do each step, never in what the runner sees.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lensforge.errors import RegistrationError, ValidationError
from lensforge.plugin import ToolContext

# Positional and keyword arguments for ``spec.function(instance, *args, **kwargs)``.
CallArguments = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass(kw_only=True)
class ToolSpec(ABC):
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
    video_fields: tuple[str, ...] = ()
    cpus: float | None = None
    gpus: float = 0.0
    memory_mb: int | None = None
    long: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}.{self.name}"

    def validate_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Check ``inputs`` against the input schema; a ValidationError lists the bad fields
        (see :meth:`~lensforge.errors.ValidationError.of_problems`).

        Returns the validated values by input name (media as :class:`~lensforge.media.MediaRef`
        references, decoded later by the ToolRunner).
        """
        if not isinstance(inputs, dict):
            raise ValidationError(
                "'inputs' must be a JSON object.", plugin=self.plugin, tool=self.name
            )
        problems, values = self._check_inputs(inputs)
        if problems:
            raise ValidationError.of_problems(
                "inputs", problems, plugin=self.plugin, tool=self.name
            )
        return values

    @abstractmethod
    def _check_inputs(self, inputs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """(``{field, message, type}`` problems, validated values) for an inputs object."""

    @abstractmethod
    def call_arguments(self, values: dict[str, Any], ctx: ToolContext) -> CallArguments:
        """How the tool function takes validated, decoded ``values`` and the context."""

    @abstractmethod
    def dump_output(self, raw: Any) -> Any:
        """The function's return value as JSON-ready data, checked against the output
        schema; a value that breaks it is a :class:`~lensforge.errors.PluginError`."""

    def manifest(self) -> dict[str, Any]:
        """The tool as ``GET /v1/plugins/{plugin}`` shows it."""
        return {
            "name": self.name,
            "qualified_name": self.qualified_name,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "timeout_s": self.timeout_s,
            "retry_on": list(self.retry_on),
            "media_inputs": list(self.media_fields),
            "video_inputs": list(self.video_fields),
            "resources": {"cpus": self.cpus, "gpus": self.gpus, "memory_mb": self.memory_mb},
            "long": self.long,
        }


def invalid_tool(plugin: str, tool: str, problem: str) -> RegistrationError:
    """The registration error for one tool, naming the plugin, the tool and the problem."""
    return RegistrationError(
        f"plugin '{plugin}', tool '{tool}': {problem}", plugin=plugin, tool=tool
    )
