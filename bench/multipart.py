"""Multipart parsing: LensForge's one-pass form reader against Starlette's ``request.form()``.

    .venv/bin/python bench/multipart.py        # a few seconds

For three generated PNG uploads (8x8, 640x480 and 2000x1500 noise: 0.6 KB, ~0.8 MB, ~7.6 MB),
each sent as ``bench/plugins.py``'s client (and ``curl -F``) sends it, arriving in 256 KiB
chunks as uvicorn hands them over, it prints the CPU milliseconds per form of (a) Starlette's
``request.form()`` with the file read back (what LensForge did before), and (b)
``lensforge.api.multipart.read_form``, both alternated, and the ratio a/b.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

from common import describe, machine
from PIL import Image
from starlette.requests import Request

import plugins as bench  # bench/ is sys.path[0]
from lensforge.api.multipart import read_form

CHUNK = 256 * 1024


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def request(body: bytes) -> Request:
    chunks = iter([body[i : i + CHUNK] for i in range(0, len(body), CHUNK)])

    async def receive() -> dict[str, Any]:
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    content_type = bench.MULTIPART.encode()
    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type)]}
    return Request(scope, receive)


async def starlette_form(body: bytes) -> int:
    size = 0
    async with request(body).form(max_files=16, max_fields=256) as form:
        for _, value in form.multi_items():
            if not isinstance(value, str):
                size += len(await value.read())
    return size


async def lensforge_form(body: bytes) -> int:
    form = await read_form(request(body), max_files=16, max_fields=256)
    return sum(len(data) for _, data in form.files)


async def main() -> None:
    print(describe(machine()))
    print(f"{'upload':<24} {'(a) Starlette ms':>16} {'(b) LensForge ms':>16} {'a/b':>6}")
    for width, height, calls in ((8, 8, 2000), (640, 480, 200), (2000, 1500, 20)):
        image = png(width, height)
        body = bench.multipart_for("image.info", image, None)
        times: dict[str, list[float]] = {"a": [], "b": []}
        for round_ in range(4):  # a b b a a b b a: drift weighs on both alike
            order = [("a", starlette_form), ("b", lensforge_form)]
            for key, parse in order if round_ % 2 == 0 else order[::-1]:
                started = time.process_time()
                for _ in range(calls):
                    assert await parse(body) == len(image)
                times[key].append((time.process_time() - started) / calls * 1000)
        a, b = (sum(times[k]) / len(times[k]) for k in ("a", "b"))
        label = f"{width}x{height} ({len(image):,} B)"
        print(f"{label:<24} {a:>16.3f} {b:>16.3f} {a / b:>6.2f}")


if __name__ == "__main__":
    asyncio.run(main())
