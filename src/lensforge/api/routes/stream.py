"""``WS /v1/stream``: live frame streams (the session logic is
:mod:`lensforge.execution.streams`; this module speaks the socket protocol).

The client authorizes (a key in a header, or a first message ``{"type": "auth", "api_key":
...}``; never the query string), opens a stream with ``{"type": "open", "tool":
"image.info", "inputs": {...}, "policy": "drop_oldest"}``, then sends frames as binary
messages (JPEG/PNG bytes; frame ids count from 0 in the order sent) and ``{"type":
"close"}`` to finish. It receives ``ready``, then ``result`` / ``error`` per frame in frame
order, ``dropped`` reports, and a final ``closed`` summary. Close codes: 1000 normal, 1003
bad frame or bad open message, 1008 auth or a limit, 1009 frame too big.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.datastructures import Headers

from lensforge.api.auth import ANALYZE, authorize, requires
from lensforge.errors import LensForgeError, PayloadTooLarge, ValidationError
from lensforge.execution.streams import StreamLimits, StreamSession
from lensforge.security.keys import Caller
from lensforge.settings import Settings
from lensforge.wiring import Services

ROUTE = "/v1/stream"
AUTH_WAIT_S = 10.0
router = APIRouter(tags=["streams"])


def stream_limits(settings: Settings) -> StreamLimits:
    return StreamLimits(
        max_per_key=settings.stream_max_per_key,
        max_frame_bytes=settings.stream_max_frame_bytes,
        max_fps=settings.stream_max_fps,
        queue=settings.stream_queue,
        timeout_s=settings.default_timeout_s,
    )


def close_code(exc: LensForgeError) -> int:
    """The WebSocket close code for a refusal."""
    if exc.status in (401, 403, 429):
        return 1008
    if isinstance(exc, PayloadTooLarge):
        return 1009
    return 1003


async def _receive_json(websocket: WebSocket) -> dict[str, Any]:
    text = await asyncio.wait_for(websocket.receive_text(), timeout=AUTH_WAIT_S)
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise ValidationError("Stream control messages are JSON objects with a 'type'.")
    return message


async def _open(websocket: WebSocket, services: Services) -> tuple[Caller, StreamSession]:
    headers = websocket.headers
    first: dict[str, Any] | None = None
    if not (headers.get("authorization") or headers.get("x-api-key")):
        first = await _receive_json(websocket)
        if first.get("type") == "auth":
            headers = Headers({"x-api-key": str(first.get("api_key") or "")})
            first = None
    caller = authorize(services, ANALYZE, "GET", ROUTE, headers)
    opening = first or await _receive_json(websocket)
    if opening.get("type") != "open" or not isinstance(opening.get("tool"), str):
        raise ValidationError(
            'Open the stream with {"type": "open", "tool": "plugin.tool", "inputs": {...}}.'
        )
    plugin, _, tool = str(opening["tool"]).partition(".")
    inputs = opening.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise ValidationError("'inputs' must be a JSON object.")
    session = services.analysis.open_stream(
        plugin,
        tool or None,
        inputs,
        owner=caller.id,
        policy=str(opening.get("policy") or "drop_oldest"),
        limits=stream_limits(services.settings),
    )
    return caller, session


@router.websocket(ROUTE)
async def stream(websocket: WebSocket) -> None:
    """A live frame stream (the protocol is in this module's docstring)."""
    await websocket.accept()
    services: Services = websocket.app.state.services
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(message)

    async def refuse(exc: LensForgeError) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await send({"type": "error", "frame": None, "error": exc.envelope()["error"]})
            await websocket.close(code=close_code(exc))

    try:
        caller, session = await _open(websocket, services)
    except LensForgeError as exc:
        await refuse(exc)
        return
    except (TimeoutError, WebSocketDisconnect):
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=1008)
        return
    await send(
        {
            "type": "ready",
            "stream_id": session.id,
            "tool": session.tool_id,
            "policy": session.policy,
            "max_fps": session.limits.max_fps,
            "max_frame_bytes": session.limits.max_frame_bytes,
        }
    )

    async def forward() -> None:
        async for message in session.messages():
            await send(message)

    forwarding = asyncio.ensure_future(forward())
    try:
        await _receive_frames(websocket, session, send)
        await forwarding  # everything up to the summary has been sent
        await websocket.close(code=1000)
    except LensForgeError as exc:
        session.abort()
        await refuse(exc)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away
    finally:
        session.abort()  # a no-op once it finished; never left waiting for frames
        forwarding.cancel()
        stats = session.stats
        # Shielded: the stream is recorded even when the handler itself is being cancelled.
        await asyncio.shield(
            asyncio.to_thread(
                services.audit.record,
                "stream_closed",
                caller.id,
                stream_id=session.id,
                tool=session.tool_id,
                policy=session.policy,
                frames_in=stats.frames_in,
                dropped=stats.dropped,
                results=stats.results,
                errors=stats.errors,
            )
        )


async def _receive_frames(websocket: WebSocket, session: StreamSession, send: Any) -> None:
    """Frames and control messages until the client asks to close (then drain)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("bytes") is not None:
            await session.send(message["bytes"])
            continue
        try:
            control = json.loads(message.get("text") or "")
        except ValueError:
            control = None
        kind = control.get("type") if isinstance(control, dict) else None
        if kind == "close":
            await session.finish()
            return
        if kind == "ping":
            await send({"type": "pong"})
        else:
            raise ValidationError(
                "Send frames as binary messages; text messages are "
                '{"type": "close"} or {"type": "ping"}.'
            )


# Declared where AuthMiddleware's route scan and the route tests read scopes; the socket
# authorizes itself (the middleware sees HTTP only).
router.routes[-1].openapi_extra = requires(ANALYZE)  # type: ignore[attr-defined]
