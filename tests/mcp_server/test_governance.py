"""MCP calls go through the one execution path: the MCP package reaches jobs only through
``AnalysisExecutionService`` (``services.analysis``), never the job service or the store."""

from __future__ import annotations

import ast
from pathlib import Path

import lensforge.api.mcp

PACKAGE = Path(lensforge.api.mcp.__file__).parent


def _modules() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def test_the_mcp_package_never_touches_the_job_service_or_the_store() -> None:
    offences = []
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("jobs", "store"):
                offences.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module in (
                "lensforge.execution.jobs",
                "lensforge.store.store",
            ):
                offences.append(f"{path.name}:{node.lineno} imports {node.module}")
    assert len(_modules()) >= 5
    assert offences == []


def test_every_tool_call_is_submitted_through_the_analysis_service() -> None:
    source = (PACKAGE / "server.py").read_text()
    assert "self.analysis.submit(" in source
    assert "self.analysis = services.analysis" in source or (
        "self.analysis: AnalysisExecutionService = services.analysis" in source
    )
