"""Video: ``video.analyze`` + ``faces.detect`` through a real server against a plain loop, and
the live stream's end-to-end latency.

    .venv/bin/python bench/video.py [--seconds 2] [--min-size 64] [--stream-seconds 5] [--out F]

In one run, on a generated 1280x720 30 fps clip (a face photograph moving over a textured
background):

a. ``video.analyze`` with ``faces.detect`` on every frame (``min_size`` 64 by default: at 24
   the detector also searches 720p frames in tiles, over a second a frame on a small machine),
   through a real ``lensforge serve`` with one worker process: frames per second over the
   job's run (its RUNNING to SUCCESS timestamps) and from submit to result (upload excluded);
b. the plain loop: the same frames decoded with PyAV in one process and handed to the same
   detector (the ``faces`` plugin's class, set up once), no LensForge around it; run with a
   LensForge worker's environment (one thread per numeric library, malloc tuned: the fair
   comparison), and again with the default environment, as a script would run it;
c. ``WS /v1/stream`` with ``image.info`` at 30 fps, JPEG frames of the clip: the latency from
   a frame sent to its result received (p50/p99), and the frames dropped.

Target: (a) at least 0.9 of (b). Everything shares the machine's cores: on a loaded machine the
figures are noisy; run it a few times before trusting a small difference.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    describe,
    machine,
    median,
    percentile,
    running,
    start_lensforge_serve,
    write_json,
)

WIDTH, HEIGHT, FPS = 1280, 720, 30


def make_clip(path: Path, seconds: float) -> int:
    """Write the clip; returns its frame count."""
    from PIL import Image
    from skimage import data

    from lensforge.video import write_mp4

    face = np.asarray(Image.fromarray(data.astronaut()).resize((400, 400)))
    rng = np.random.default_rng(7)
    background = rng.integers(60, 120, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    count = round(seconds * FPS)

    def frames() -> Any:
        for i in range(count):
            frame = background.copy()
            x = 40 + (i * 9) % (WIDTH - 480)
            y = 40 + (i * 3) % (HEIGHT - 480)
            frame[y : y + 400, x : x + 400] = face
            yield frame

    write_mp4(path, frames(), fps=FPS)
    return count


def plain_loop(path: Path, min_size: int) -> dict[str, float]:
    """Decode every frame with PyAV and run the faces plugin's detector on it, in-process."""
    import av

    from lensforge.builtin.faces import FacesPlugin
    from lensforge.media import Image

    plugin = FacesPlugin()
    plugin.setup()
    found = frames = 0
    started = time.perf_counter()
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            pil = frame.to_image()
            image = Image(pil, data=b"", format="RAW", media_type="image/x-raw-rgb")
            found += plugin.detect(image, min_size=min_size).count
            frames += 1
    elapsed = time.perf_counter() - started
    return {"frames": frames, "seconds": elapsed, "fps": frames / elapsed, "faces": found}


def plain_loop_process(path: Path, min_size: int, *, tuned: bool) -> dict[str, float]:
    """:func:`plain_loop` in a fresh process: with a LensForge worker's environment (one
    thread per numeric library, glibc malloc tuned) when ``tuned``, else the default one."""
    import json
    import os
    import subprocess

    from lensforge.execution.executors.local import WORKER_ENVIRONMENT

    env = {**os.environ, **(WORKER_ENVIRONMENT if tuned else {})}
    argv = [sys.executable, __file__, "--plain-loop", str(path), "--min-size", str(min_size)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def through_server(url: str, path: Path, min_size: int) -> dict[str, float]:
    from lensforge.client import Client

    with Client(url, timeout=600) as lf:
        blob = lf.upload(path)["blob"]
        submitted = time.perf_counter()
        job = lf.submit(
            "video.analyze",
            video={"blob": blob},
            tool="faces.detect",
            every_s=None,
            inputs={"min_size": min_size},
            timeout_s=600,
        )
        result = job.result(timeout=3600)
        wall = time.perf_counter() - submitted
        info = job.info().raw
        stored = [f["item"] for f in job.frames()]  # a job's frames are stored, not inline
    frames = int(result["summary"]["frames_analyzed"])
    running_s = _seconds(info["finished_at"]) - _seconds(info["started_at"])
    found = sum(int(f["result"]["count"]) for f in stored)
    return {
        "frames": frames,
        "seconds_running": running_s,
        "fps_running": frames / running_s,
        "seconds_wall": wall,
        "fps_wall": frames / wall,
        "faces": found,
        "failures": int(result["summary"].get("failures", 0)),
    }


def _seconds(stamp: Any) -> float:
    if isinstance(stamp, int | float):
        return float(stamp)
    from datetime import datetime

    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def stream_latency(url: str, path: Path, seconds: float) -> dict[str, Any]:
    """``image.info`` on a live stream fed the clip's frames (as JPEG) at 30 fps."""
    import av

    from lensforge.client import Client

    jpegs: list[bytes] = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            buffer = io.BytesIO()
            frame.to_image().save(buffer, "JPEG", quality=85)
            jpegs.append(buffer.getvalue())
    count = round(seconds * FPS)
    frames = [jpegs[i % len(jpegs)] for i in range(count)]
    sent: dict[int, float] = {}

    def paced() -> Any:
        for index, frame in enumerate(frames):
            sent[index] = time.perf_counter()
            yield frame

    latencies: list[float] = []
    with Client(url) as lf, lf.stream("image.info") as live:
        for event in live.play(paced(), fps=FPS):
            if event.type == "result" and event.frame is not None:
                latencies.append((time.perf_counter() - sent[event.frame]) * 1000)
        summary = live.summary or {}
    latencies.sort()
    return {
        "frames_sent": count,
        "results": len(latencies),
        "dropped": summary.get("dropped"),
        "frame_bytes_median": median(len(f) for f in frames),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(latencies[-1], 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the clip")
    parser.add_argument(
        "--min-size", type=int, default=64, help="faces.detect's min_size (24 tiles 720p: slow)"
    )
    parser.add_argument("--stream-seconds", type=float, default=5.0, help="stream length")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    parser.add_argument("--plain-loop", type=Path, help=argparse.SUPPRESS)  # the child of (b)
    args = parser.parse_args()
    if args.plain_loop:
        import json

        print(json.dumps(plain_loop(args.plain_loop, args.min_size)))
        return
    info = machine()
    print(describe(info))
    with tempfile.TemporaryDirectory(prefix="lensforge-bench-video-") as tmp:
        workdir = Path(tmp)
        clip = workdir / "clip.mp4"
        frames = make_clip(clip, args.seconds)
        print(f"clip: {frames} frames of {WIDTH}x{HEIGHT} at {FPS} fps")
        env = {"LENSFORGE_WORKERS": "1", "LENSFORGE_EXECUTOR": "local"}
        with running(start_lensforge_serve(workdir / "server", env=env)) as server:
            server.wait_ready()
            served = through_server(server.url, clip, args.min_size)
            # the server idles meanwhile
            plain = plain_loop_process(clip, args.min_size, tuned=True)
            naive = plain_loop_process(clip, args.min_size, tuned=False)
            stream = stream_latency(server.url, clip, args.stream_seconds)
    ratio = served["fps_running"] / plain["fps"]
    print(
        f"a. video.analyze faces.detect: {served['fps_running']:.1f} frames/s while running "
        f"({served['fps_wall']:.1f} submit to result), {served['faces']} faces"
    )
    print(f"b. plain PyAV loop, same detector: {plain['fps']:.1f} frames/s, {plain['faces']} faces")
    print(f"   the same loop in a default environment: {naive['fps']:.1f} frames/s")
    print(f"   ratio a/b: {ratio:.2f} (target >= 0.9)")
    latency = stream["latency_ms"]
    print(
        f"c. live stream, image.info at {FPS} fps: p50 {latency['p50']} ms, p99 "
        f"{latency['p99']} ms, {stream['results']} results, {stream['dropped']} dropped"
    )
    if args.out:
        payload = {
            "served": served,
            "plain": plain,
            "plain_default_environment": naive,
            "ratio": ratio,
            "stream": stream,
        }
        write_json(args.out, payload, info)


if __name__ == "__main__":
    sys.exit(main())
