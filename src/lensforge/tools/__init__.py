"""The spec machinery: plugin declarations (:mod:`lensforge.plugin`) made into validated
tool specs.

- :class:`ToolSpec` (``spec.py``): what every tool offers the registry, the front door and
  the ToolRunner: schemas, limits, ``validate_inputs``, ``call_arguments``, ``dump_output``,
  ``manifest``.
- :class:`TypedTool` (``typed.py``): schemas from type hints, checked by Pydantic.
- :class:`SchemaTool` (``schema.py``): JSON Schema dicts plus a handler, checked by
  ``jsonschema``.
- :func:`collect_tools` (``collect.py``): every tool of a plugin class, all or nothing.
"""

from lensforge.tools.collect import collect_tools
from lensforge.tools.schema import SchemaTool
from lensforge.tools.spec import CallArguments, ToolSpec
from lensforge.tools.typed import TypedTool

__all__ = ["CallArguments", "SchemaTool", "ToolSpec", "TypedTool", "collect_tools"]
