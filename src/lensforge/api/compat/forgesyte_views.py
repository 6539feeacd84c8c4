"""ForgeSyte's response shapes, built from LensForge's records: plugins (health and
manifest), jobs (status, list item, result file), errors (``{"detail": ...}`` with
LensForge's code inside), and the lookup of plugins and tools by their ForgeSyte ids.

A ForgeSyte job with several tools is several LensForge jobs (one per tool); its id is their
ids joined by ``~`` (:data:`JOB_ID_SEPARATOR`), so every read below takes a list of jobs.
"""

from __future__ import annotations

from typing import Any

from lensforge.errors import LensForgeError, PluginNotFound, ToolNotFound, utc_timestamp
from lensforge.forgesyte import ForgeSyteInfo, parse_frame_progress
from lensforge.registry import PluginRecord, Registry
from lensforge.store import JobRecord, Status
from lensforge.tools import ToolSpec

JOB_ID_SEPARATOR = "~"
MAX_TOOLS_PER_JOB = 16

# LensForge's codes as ForgeSyte's statuses (ForgeSyte answers 400 for bad submits and
# lookups by plugin or tool, 408 for timeouts, 500 for failed tools); others keep theirs.
_STATUS_BY_CODE = {
    "validation_error": 400,
    "unsupported_media_type": 400,
    "plugin_not_found": 400,
    "tool_not_found": 400,
    "timeout": 408,
    "plugin_error": 500,
    "worker_lost": 500,
}
_NOT_FOUND = frozenset({"plugin_not_found", "tool_not_found", "job_not_found", "not_found"})
_STATE = {
    Status.PENDING: "pending",
    Status.RUNNING: "running",
    Status.SUCCESS: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "failed",  # ForgeSyte has no cancelled state; its clients stop on failed
}


def error_body(code: str, message: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """ForgeSyte's ``{"detail": message}``, with LensForge's ``code`` and envelope beside it."""
    return {"detail": message, "code": code, "error": error or {"code": code, "message": message}}


def error_status(code: str, status: int, method: str) -> int:
    """The HTTP status ForgeSyte would answer for LensForge error ``code`` on ``method``."""
    if code in _NOT_FOUND and method == "GET":
        return 404
    return _STATUS_BY_CODE.get(code, status)


def exception_view(exc: LensForgeError, method: str) -> tuple[int, dict[str, Any]]:
    return error_status(exc.code, exc.status, method), error_body(
        exc.code, exc.message, exc.envelope()["error"]
    )


# -- plugins and tools by their ForgeSyte ids -------------------------------------------------


def info_of(record: PluginRecord) -> ForgeSyteInfo | None:
    info = getattr(record.plugin_cls, "forgesyte", None)
    return info if isinstance(info, ForgeSyteInfo) else None


def plugin_id(record: PluginRecord) -> str:
    """The id ForgeSyte clients know the plugin by (its ForgeSyte name, or LensForge's)."""
    info = info_of(record)
    return info.plugin_id if info else record.name


def find_plugin(registry: Registry, wanted: str) -> PluginRecord:
    """The plugin with ForgeSyte id (or LensForge name) ``wanted``; PluginNotFound otherwise."""
    for record in registry.records():
        if plugin_id(record) == wanted:
            return record
    try:
        return registry.get(wanted)
    except PluginNotFound:
        raise PluginNotFound(f"Plugin '{wanted}' not found", plugin=wanted) from None


def tool_id(record: PluginRecord | None, name: str) -> str:
    """The ForgeSyte id of LensForge tool ``name``."""
    info = info_of(record) if record else None
    tool = info.tools.get(name) if info else None
    return tool.tool_id if tool else name


def find_tool(record: PluginRecord, wanted: str) -> ToolSpec:
    """The tool with ForgeSyte id (or LensForge name) ``wanted``; ToolNotFound otherwise."""
    info = info_of(record)
    spec = record.tools.get((info.tool_name(wanted) if info else None) or wanted)
    if spec is not None:
        return spec
    available = [tool_id(record, name) for name in record.tools]
    raise ToolNotFound(
        f"Tool '{wanted}' not found in plugin '{plugin_id(record)}'. Available: {available}",
        plugin=record.name,
        tool=wanted,
    )


def manifest(record: PluginRecord) -> dict[str, Any]:
    """The plugin's ForgeSyte manifest (its manifest.json, or one made from its tools)."""
    info = info_of(record)
    if info is not None:
        return info.manifest
    return {
        "id": record.name,
        "name": record.name,
        "version": record.version,
        "description": record.description,
        "type": "custom",
        "capabilities": [],
        "tools": [
            {
                "id": spec.name,
                "title": spec.name,
                "description": spec.description,
                "input_types": input_types(spec),
                "output_types": [],
                "capabilities": [],
                "inputs": list(spec.input_schema.get("properties", {})),
                "outputs": list(spec.output_schema.get("properties", {})),
            }
            for spec in record.tools.values()
        ],
    }


def input_types(spec: ToolSpec) -> list[str]:
    """A LensForge tool's media inputs as ForgeSyte's manifest ``input_types``."""
    return [
        kind
        for kind, has in (("image_bytes", spec.media_fields), ("video", spec.video_fields))
        if has
    ]


def resolve_capabilities(
    record: PluginRecord, logical: list[str], input_type: str = "image_bytes"
) -> list[str]:
    """ForgeSyte's capability routing: each logical id to the first tool taking
    ``input_type`` (``image_bytes`` or ``video``) that lists it among its capabilities, else
    whose id starts with it."""
    tools = manifest(record).get("tools", [])
    scoped = [t for t in tools if input_type in (t.get("input_types") or [])]
    resolved = []
    for wanted in logical:
        match = next((t for t in scoped if wanted in (t.get("capabilities") or [])), None)
        match = match or next((t for t in scoped if str(t.get("id", "")).startswith(wanted)), None)
        if match is None:
            raise ToolNotFound(
                f"No plugin tool found for capability '{wanted}' with input '{input_type}' in "
                f"plugin '{plugin_id(record)}'. Available tools: {[t.get('id') for t in tools]}",
                plugin=record.name,
            )
        resolved.append(str(match["id"]))
    return resolved


def health(registry: Registry, record: PluginRecord) -> dict[str, Any]:
    """ForgeSyte's PluginHealthResponse (fields LensForge does not track are null)."""
    metrics = registry.metrics.plugin(record.name)
    return {
        "name": plugin_id(record),
        "state": record.current_state.value,
        "description": record.description,
        "reason": record.reason,
        "version": record.version,
        "uptime_seconds": None,
        "last_used": None,
        "success_count": metrics["successes"],
        "error_count": sum(metrics["errors"].values()),
        "last_execution_time_ms": None,
        "avg_execution_time_ms": None,
    }


# -- jobs -------------------------------------------------------------------------------------


def _ts(value: float | None) -> str | None:
    return None if value is None else utc_timestamp(value)


def job_status(parts: list[JobRecord]) -> str:
    """One ForgeSyte status for the LensForge jobs of one ForgeSyte job."""
    states = [_STATE[part.status] for part in parts]
    if "failed" in states:
        return "failed"
    if all(state == "completed" for state in states):
        return "completed"
    if any(state != "pending" for state in states):
        return "running"
    return "pending"


def _fraction(job: JobRecord) -> float:
    if job.status.terminal:
        return 1.0
    return job.progress if job.status is Status.RUNNING else 0.0


def progress_percent(parts: list[JobRecord]) -> int:
    return int(100 * sum(_fraction(part) for part in parts) / len(parts))


def error_message(parts: list[JobRecord]) -> str | None:
    for part in parts:
        if part.status is Status.CANCELLED:
            return "Job was cancelled"
        if part.error is not None and part.status.terminal:
            return str(part.error["error"]["message"])
    return None


def summary(output: dict[str, Any]) -> dict[str, Any]:
    """ForgeSyte's summary of a result file: its frames, their detections and classes (an
    image job's file has no frames, so its summary counts nothing, as in ForgeSyte)."""
    top, tools = output.get("frames"), output.get("tools")
    frames: list[Any] = top if isinstance(top, list) else []
    counted = list(frames)
    tools = tools if isinstance(tools, dict) else {}
    for result in tools.values():
        if isinstance(result, dict) and isinstance(result.get("frames"), list):
            counted.extend(result["frames"])
    classes: set[str] = set()
    detections = 0
    for frame in counted:
        found = frame.get("detections", []) if isinstance(frame, dict) else []
        if isinstance(found, dict):
            found = found.get("tracked_objects", [])
        for det in found if isinstance(found, list) else []:
            detections += 1
            label = det.get("class") or det.get("label") if isinstance(det, dict) else None
            if isinstance(label, str):
                classes.add(label)
            elif isinstance(det, dict) and "class_id" in det:
                classes.add(f"class_{det['class_id']}")
    return {"frame_count": len(frames), "detection_count": detections, "classes": sorted(classes)}


def is_video(record: PluginRecord | None, parts: list[JobRecord]) -> bool:
    """Whether a ForgeSyte job is a video job (its tools read a video)."""
    spec = record.tools.get(parts[0].tool) if record else None
    return bool(spec and spec.video_fields)


def result_file(
    job_id: str, parts: list[JobRecord], record: PluginRecord | None, plugin: str
) -> dict[str, Any]:
    """The JSON ForgeSyte's worker writes for a job: an image job's results by tool, a video
    job's frames (one tool's flattened, several tools' merged by ``frame_idx``)."""
    if is_video(record, parts):
        if len(parts) == 1:
            return _video_file(job_id, parts[0].result)
        return _merged_video_file(job_id, {tool_id(record, p.tool): p.result for p in parts})
    if len(parts) == 1:
        return {
            "plugin_id": plugin,
            "tool": tool_id(record, parts[0].tool),
            "results": parts[0].result,
        }
    return {"plugin_id": plugin, "tools": {tool_id(record, p.tool): p.result for p in parts}}


def _video_file(job_id: str, output: Any) -> dict[str, Any]:
    head = {"job_id": job_id, "status": "completed"}
    if isinstance(output, dict):
        rest = {k: v for k, v in output.items() if k not in ("total_frames", "frames")}
        frames = output.get("frames", [])
        return {**head, "total_frames": output.get("total_frames"), "frames": frames, **rest}
    if isinstance(output, list):
        return {**head, "total_frames": len(output), "frames": output}
    return {**head, "results": output}


def _merged_video_file(job_id: str, outputs: dict[str, Any]) -> dict[str, Any]:
    """Several video tools' frames merged by ``frame_idx``, each tool's data under its id."""
    merged: dict[int, dict[str, Any]] = {}
    total = 0
    for tool, output in outputs.items():
        if isinstance(output, dict):
            frames = output.get("frames", [])
            reported = output.get("total_frames")
            total = max(total, reported if isinstance(reported, int) else 0)
        elif isinstance(output, list):
            frames, total = output, max(total, len(output))
        else:
            continue
        for frame in frames if isinstance(frames, list) else []:
            data = frame if isinstance(frame, dict) else {"value": frame}
            index = data.get("frame_idx", len(merged))
            index = index if isinstance(index, int) else len(merged)
            merged.setdefault(index, {"frame_idx": index})[tool] = {
                k: v for k, v in data.items() if k != "frame_idx"
            }
    frames_out = [merged[index] for index in sorted(merged)]
    return {
        "job_id": job_id,
        "status": "completed",
        "total_frames": total or len(frames_out),
        "frames": frames_out,
    }


def job_view(
    job_id: str, parts: list[JobRecord], record: PluginRecord | None, result_url: str
) -> dict[str, Any]:
    """ForgeSyte's JobResultsResponse (``GET /v1/jobs/{id}``)."""
    status = job_status(parts)
    tools = [tool_id(record, part.tool) for part in parts]
    plugin = plugin_id(record) if record else parts[0].plugin
    many = len(parts) > 1
    done = sum(part.status is Status.SUCCESS for part in parts)
    current = next((t for t, p in zip(tools, parts, strict=True) if not p.status.terminal), None)
    return {
        "job_id": job_id,
        "status": status,
        "plugin_id": plugin,
        "result_url": result_url if status == "completed" else None,
        "summary": summary(result_file(job_id, parts, record, plugin))
        if status == "completed"
        else None,
        "tool": tools[0],
        "tools": tools if many else None,
        "job_type": ("video" if is_video(record, parts) else "image") + ("_multi" if many else ""),
        "error_message": error_message(parts),
        "progress": progress_percent(parts),
        "current_tool": current if many else None,
        "tools_total": len(parts) if many else None,
        "tools_completed": done if many else None,
        "created_at": _ts(min(part.created_at for part in parts)),
        "updated_at": _ts(max(part.updated_at for part in parts)),
    }


def list_item(job: JobRecord, record: PluginRecord | None, result_url: str) -> dict[str, Any]:
    """ForgeSyte's JobListItem (``GET /v1/jobs``)."""
    status = job_status([job])
    plugin = plugin_id(record) if record else job.plugin
    return {
        "job_id": job.id,
        "status": status,
        "plugin": plugin,
        "created_at": _ts(job.created_at),
        "completed_at": _ts(job.finished_at) if job.status.terminal else None,
        "result_url": result_url if status == "completed" else None,
        "summary": summary(result_file(job.id, [job], record, plugin))
        if status == "completed"
        else None,
        "error": error_message([job]),
        "progress": progress_percent([job]),
    }


def progress_event(job_id: str, job: JobRecord, tools: list[str], index: int) -> dict[str, Any]:
    """ForgeSyte's WebSocket progress event for part ``index`` of a job."""
    percent = int(100 * job.progress)
    frames = parse_frame_progress(job.progress_message) or (percent, 100)
    event: dict[str, Any] = {
        "job_id": job_id,
        "current_frame": frames[0],
        "total_frames": frames[1],
        "percent": percent,
    }
    if len(tools) > 1:
        event.update(current_tool=tools[index], tools_total=len(tools), tools_completed=index)
    return event
