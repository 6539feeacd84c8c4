"""``lensforge stream TOOL --video FILE``: play a video file through a live frame stream.

Frames are decoded with PyAV, sent as JPEG at the file's native frame rate (or ``--fps``),
and each result is printed as one JSON line (``{"frame": ..., "result": ...}``) as it comes;
the stream's summary (frames in, dropped, results) ends the output.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from lensforge.cli.options import (
    ApiKeyOption,
    InputOption,
    JsonOption,
    ServerOption,
    TargetArgument,
    parse_inputs,
)
from lensforge.cli.output import console, err_console
from lensforge.cli.remote_call import Remote
from lensforge.client import Client
from lensforge.errors import ValidationError

app = typer.Typer()


def video_frames(path: Path, quality: int = 85) -> tuple[float, Iterator[bytes]]:
    """The file's frame rate, and its frames as JPEG bytes (decoded one at a time)."""
    import av
    from PIL import Image

    try:
        container = av.open(str(path))
        video = container.streams.video[0]
    except (OSError, IndexError, av.error.FFmpegError) as exc:
        raise ValidationError(
            f"Cannot read a video stream from {str(path)!r}: {exc}.", details={"path": str(path)}
        ) from None
    rate = float(video.average_rate or video.guessed_rate or 30)

    def frames() -> Iterator[bytes]:
        with container:
            for frame in container.decode(video):
                buffer = io.BytesIO()
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(
                    buffer, "JPEG", quality=quality
                )
                yield buffer.getvalue()

    return rate, frames()


@app.command()
def stream(
    target: TargetArgument,
    video: Annotated[Path, typer.Option(help="Video file to play through the stream.")],
    input: InputOption = None,
    fps: Annotated[
        float | None, typer.Option(min=0.1, help="Frames per second (default: the file's).")
    ] = None,
    policy: Annotated[
        str, typer.Option(help="Back-pressure: drop_oldest, drop_newest or block.")
    ] = "drop_oldest",
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Play a video through a live stream of TOOL; print each result and the dropped count."""
    remote = Remote(server, api_key, as_json)

    def go(client: Client) -> dict[str, Any]:
        rate, frames = video_frames(video)
        with client.stream(target, policy=policy, **parse_inputs(input)) as live:
            for event in live.play(frames, fps=fps or rate):
                if event.type == "result":
                    print(json.dumps({"frame": event.frame, "result": event.result}), flush=True)
                elif event.type == "error" and event.error is not None:
                    err_console.print(f"frame {event.frame}: {event.error.code}: {event.error}")
            return live.close()

    def show(summary: dict[str, Any]) -> None:
        console.print(
            f"{summary['frames_in']} frames sent, {summary['results']} results, "
            f"{summary['dropped']} dropped, {summary['errors']} errors"
        )

    remote.call(go, show)
