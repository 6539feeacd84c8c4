"""Built-in plugin benchmark: each tool through LensForge against its library called directly.

    .venv/bin/python bench/plugins.py              # a few minutes on 2 cores
    .venv/bin/python bench/plugins.py --images 50 --tools ocr.read,codes.decode

For every built-in tool, on the same N generated images (photos cut from scikit-image's
bundled pictures, rendered text, QR codes and barcodes; PNG bytes made before timing):

(a) the floor: the tool's library called directly on the PNG bytes in a
    ``multiprocessing.Pool(2)`` whose processes load their models once (decode with Pillow,
    then OpenCV / imagehash / NumPy, as the tool does); for ``ocr.read`` and
    ``codes.decode``, whose pipelines are LensForge's own work (page straightening and
    layout; zxing first, retries only where nothing was found), the plugin's method itself;
(b) ``POST /v1/analyze`` of the tool with the image uploaded as a multipart file (what
    ``curl -F image=@photo.png`` and the Python client send), two requests in flight at a
    time, against a real ``lensforge serve`` subprocess (loopback, free port,
    ``LENSFORGE_WORKERS=2``, temporary database and blob store), which makes a durable job
    of each call and runs it in a worker process;
(c) with ``--transports multipart,json``, the same with the image as base64 inside a JSON
    body too.

Each side runs ``--rounds`` times (2 by default), alternated a b b a, and the mean of each side
is reported: on a shared machine whose speed drifts over minutes, both sides get the same share
of the drift. It prints images/s and the ratio b/a (1.0: LensForge costs nothing over the bare
library). The server finds the plugins through their ``lensforge.plugins`` entry points.
Every loop is bounded, the server listens on 127.0.0.1 only, and it is stopped at exit.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import multiprocessing
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Server, describe, machine, running, start_lensforge_serve

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TOOLS = [
    "image.info",
    "image.hash",
    "image.compare",
    "image.quality",
    "ocr.read",
    "codes.decode",
    "faces.detect",
    "faces.redact",
]
READY_TIMEOUT_S = 90.0
TARGET_RATIO = 0.9  # b/a, for every tool whose direct call takes TARGET_MIN_MS or more
TARGET_MIN_MS = 20.0
REQUEST_TIMEOUT_S = 60.0
VOCABULARY = (
    "lens forge image text tool plugin worker queue result quality sharp blur light dark code "
    "reader vision model server job store blob hash compare photo face detect"
)


# --- inputs -------------------------------------------------------------------------------


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def photos(count: int, rng: random.Random) -> list[bytes]:
    """640x480 crops of scikit-image's bundled photographs (several show a face)."""
    from PIL import Image
    from skimage import data

    sources = [
        Image.fromarray(getattr(data, name)()).convert("RGB")
        for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "astronaut")
    ]
    out = []
    for i in range(count):
        src = sources[i % len(sources)]
        w = rng.randint(int(src.width * 0.7), src.width)
        h = rng.randint(int(src.height * 0.7), src.height)
        x, y = rng.randint(0, src.width - w), rng.randint(0, src.height - h)
        crop = src.crop((x, y, x + w, y + h)).resize((640, 480))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(_png(crop))
    return out


def texts(count: int, rng: random.Random) -> list[bytes]:
    """Three lines of random words in DejaVu Sans, 18-28 px."""
    from PIL import Image, ImageDraw, ImageFont

    words, out = VOCABULARY.split(), []
    for _ in range(count):
        font = ImageFont.truetype(FONT, rng.randint(18, 28))
        image = Image.new("L", (720, 180), 255)
        draw = ImageDraw.Draw(image)
        for row in range(3):
            line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 7)))
            draw.text((20, 15 + row * 52), line, font=font, fill=0)
        out.append(_png(image))
    return out


def codes(count: int, rng: random.Random) -> list[bytes]:
    """A QR code (random payload) and an EAN-13 barcode on an 800x400 canvas."""
    import barcode
    import segno
    from barcode.writer import ImageWriter
    from PIL import Image

    out = []
    for _ in range(count):
        canvas = Image.new("RGB", (800, 400), "white")
        buffer = io.BytesIO()
        payload = "https://example.org/" + "".join(rng.choices("abcdefgh0123", k=12))
        segno.make_qr(payload).save(buffer, kind="png", scale=5, border=4)
        canvas.paste(Image.open(buffer).convert("RGB"), (20, 20))
        digits = "".join(rng.choices("0123456789", k=12))
        symbol = barcode.get("ean13", digits, writer=ImageWriter())
        options = {"module_width": 0.3, "module_height": 10, "write_text": False}
        canvas.paste(symbol.render(options).convert("RGB"), (300, 60))
        out.append(_png(canvas))
    return out


# --- (a) the libraries, directly ----------------------------------------------------------

_STATE: dict[str, Any] = {}


def _floor_init(tool: str) -> None:
    """Load the tool's models once in each pool process, as a LensForge worker does."""
    import cv2

    if tool in ("ocr.read", "codes.decode"):
        # Their pipelines are LensForge's own work (straightening and page layout; zxing
        # first, retries only where nothing was found: bench/quality.py weighs that against
        # the raw libraries), so the floor is the plugin's method itself, set up once.
        from lensforge.builtin.codes import CodesPlugin
        from lensforge.builtin.ocr import OcrPlugin

        plugin = OcrPlugin() if tool == "ocr.read" else CodesPlugin()
        plugin.setup()
        _STATE["plugin"] = plugin
    elif tool.startswith("faces."):
        from lensforge.builtin.faces import HAAR_CASCADE, centerface_model

        model = centerface_model()
        if model is not None:
            _STATE["net"] = cv2.dnn.readNetFromONNX(str(model))
        else:
            _STATE["haar"] = cv2.CascadeClassifier(cv2.data.haarcascades + HAAR_CASCADE)
    elif tool.startswith("image."):
        import imagehash  # noqa: F401


def _open(data: bytes) -> Any:
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data))
    image.load()
    return ImageOps.exif_transpose(image)


def _faces(rgb: Any) -> list[tuple[int, int, int, int]]:
    import cv2
    import numpy as np

    if "net" in _STATE:
        h, w = rgb.shape[:2]
        in_w, in_h = -(-w // 32) * 32, -(-h // 32) * 32
        blob = cv2.dnn.blobFromImage(rgb, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False)
        _STATE["net"].setInput(blob)
        heat, sizes, offsets, _ = _STATE["net"].forward(["537", "538", "539", "540"])
        ys, xs = np.nonzero(heat[0, 0] > 0.5)
        bh, bw = np.exp(sizes[0, 0, ys, xs]) * 4, np.exp(sizes[0, 1, ys, xs]) * 4
        x1 = (xs + offsets[0, 1, ys, xs] + 0.5) * 4 - bw / 2
        y1 = (ys + offsets[0, 0, ys, xs] + 0.5) * 4 - bh / 2
        rects = [
            [float(a), float(b), float(c), float(d)]
            for a, b, c, d in zip(x1, y1, bw, bh, strict=True)
        ]
        keep = cv2.dnn.NMSBoxes(rects, heat[0, 0, ys, xs].tolist(), 0.5, 0.3)
        return [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in (rects[i] for i in keep)]
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    found = _STATE["haar"].detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4)
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


def _floor_call(item: tuple[str, bytes, bytes | None]) -> int:
    tool, data, other = item
    if tool in ("ocr.read", "codes.decode"):
        from lensforge.media import Image as Decoded

        method = _STATE["plugin"].read if tool == "ocr.read" else _STATE["plugin"].decode
        method(Decoded.decode(data))
        return 1
    image = _open(data)
    if tool == "image.info":
        from PIL import ImageStat

        rgb = image.convert("RGB")
        _ = ImageStat.Stat(rgb).mean
        small = rgb.copy()
        small.thumbnail((128, 128))
        small.quantize(colors=5).getcolors()
        image.getexif()
    elif tool == "image.hash":
        import imagehash

        rgb = image.convert("RGB")
        grey = rgb.convert("L")  # once for the four grey hashes, as the tool does
        for fn in (imagehash.average_hash, imagehash.phash, imagehash.dhash, imagehash.whash):
            fn(grey)
        imagehash.colorhash(rgb)
    elif tool == "image.compare":
        import imagehash

        assert other is not None
        second = _open(other).convert("L")
        first = image.convert("L")
        _ = imagehash.phash(first) - imagehash.phash(second)
        _ = imagehash.dhash(first) - imagehash.dhash(second)
    elif tool == "image.quality":
        from lensforge.builtin.quality import QualityThresholds, assess

        assess(image, QualityThresholds())  # NumPy arithmetic: the tool is its own library
    elif tool in ("faces.detect", "faces.redact"):
        import cv2
        import numpy as np

        rgb = np.array(image.convert("RGB"))
        boxes = _faces(rgb)
        if tool == "faces.redact":
            for x, y, w, h in boxes:
                x, y = max(0, x), max(0, y)
                roi = rgb[y : y + h, x : x + w]
                if roi.size:
                    roi[...] = cv2.GaussianBlur(roi, (0, 0), max(1.0, max(w, h) / 8))
            buffer = io.BytesIO()
            from PIL import Image

            Image.fromarray(rgb).save(buffer, "PNG")
    return 1


def floor(tool: str, items: list[tuple[str, bytes, bytes | None]]) -> float:
    """Images per second with the library called directly in a Pool(2)."""
    context = multiprocessing.get_context("fork")
    with context.Pool(2, initializer=_floor_init, initargs=(tool,)) as pool:
        pool.map(_floor_call, items[:4], chunksize=1)  # warm-up
        started = time.perf_counter()
        done = sum(pool.imap_unordered(_floor_call, items, chunksize=2))
        elapsed = time.perf_counter() - started
    return done / elapsed


# --- (b) through a real server ------------------------------------------------------------


BOUNDARY = "lensforge-bench-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    headers = {"Content-Type": content_type} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def start_server(workdir: Path) -> Server:
    """A real ``lensforge serve`` with 2 workers (store and blobs in ``workdir``), ready."""
    server = start_lensforge_serve(workdir, env={"LENSFORGE_WORKERS": "2"})
    server.wait_ready(limit_s=READY_TIMEOUT_S)
    return server


def through_lensforge(
    port: int, bodies: list[bytes], content_type: str, concurrency: int = 2
) -> float:
    """Images per second through ``POST /v1/analyze`` with ``concurrency`` calls in flight."""
    lock = threading.Lock()
    queue = iter(bodies)
    failures: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        try:
            while True:
                with lock:
                    body = next(queue, None)
                if body is None:
                    return
                status, payload = _request(conn, "POST", "/v1/analyze", body, content_type)
                if status != 200:
                    failures.append(f"{status}: {payload[:300]!r}")
                    return
        finally:
            conn.close()

    for body in bodies[:4]:  # warm-up, outside the timing
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        status, payload = _request(conn, "POST", "/v1/analyze", body, content_type)
        conn.close()
        if status != 200:
            raise SystemExit(f"warm-up call failed: {status} {payload[:500]!r}")
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} call(s) failed, e.g. {failures[0]}")
    return len(bodies) / elapsed


# --- main ---------------------------------------------------------------------------------


def inputs_for(tool: str, n: int) -> tuple[list[bytes], list[bytes | None]]:
    rng = random.Random(tool)
    makers: dict[str, Callable[[int, random.Random], list[bytes]]] = {
        "ocr.read": texts,
        "codes.decode": codes,
    }
    images = makers.get(tool, photos)(n, rng)
    if tool != "image.compare":
        return images, [None] * n
    # half near duplicates (a resized JPEG copy), half unrelated pictures
    from PIL import Image

    others: list[bytes | None] = []
    for i, data in enumerate(images):
        if i % 2 == 0:
            buffer = io.BytesIO()
            Image.open(io.BytesIO(data)).convert("RGB").resize((320, 240)).save(
                buffer, "JPEG", quality=75
            )
            others.append(buffer.getvalue())
        else:
            others.append(images[(i + 3) % n])
    return images, others


def multipart_for(tool: str, image: bytes, other: bytes | None) -> bytes:
    """The form ``curl -F plugin=... -F tool=... -F image=@a.png [-F other=@b.png]`` sends."""
    plugin, name = tool.split(".")
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in (("plugin", plugin), ("tool", name))
    ]
    for field, data in (("image", image), ("other", other)):
        if data is not None:
            head = (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
                f'filename="{field}.png"\r\nContent-Type: application/octet-stream\r\n\r\n'
            )
            parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def body_for(tool: str, image: bytes, other: bytes | None) -> bytes:
    plugin, name = tool.split(".")
    inputs: dict[str, Any] = {"image": base64.b64encode(image).decode()}
    if other is not None:
        inputs["other"] = base64.b64encode(other).decode()
    return json.dumps({"plugin": plugin, "tool": name, "inputs": inputs}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="Images per tool.")
    parser.add_argument("--tools", default=",".join(TOOLS), help="Comma-separated tools.")
    parser.add_argument(
        "--transports",
        default="multipart",
        help="How LensForge gets the image: multipart (the default), json (base64) or both.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="Measurements of each side, alternated a b b a ... so that a machine whose "
        "speed drifts during the run weighs on both alike (default 2).",
    )
    parser.add_argument(
        "--in-flight",
        default="2,4",
        help="Requests in flight against the server's 2 workers, comma-separated: 2 is one "
        "per worker (measures the round trip, recorded), 4 two per worker (where a server is "
        "normally run: the target applies there). Default 2,4.",
    )
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON too.")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    tools = [t for t in args.tools.split(",") if t]
    transports = [t for t in args.transports.split(",") if t]
    if not transports or set(transports) - {"multipart", "json"}:
        parser.error("--transports takes multipart, json or both")
    makers = {"multipart": (multipart_for, MULTIPART), "json": (body_for, "application/json")}
    levels = [int(c) for c in args.in_flight.split(",") if c]
    target_level = 4 if 4 in levels else max(levels)
    # One measured side per transport and concurrency: "multipart@4" is two per worker.
    variants = [f"{t}@{c}" for c in levels for t in transports]

    print(f"generating {args.images} images per tool ...", flush=True)
    prepared = {tool: inputs_for(tool, args.images) for tool in tools}
    rows = []
    print(describe(machine()))
    with (
        tempfile.TemporaryDirectory(prefix="lensforge-bench-") as tmp,
        running(start_server(Path(tmp))) as server,
    ):
        port = server.port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status, payload = _request(conn, "GET", "/v1/plugins")
        conn.close()
        states = {p["name"]: p["state"] for p in json.loads(payload)["plugins"]}
        missing = {t.split(".")[0] for t in tools} - set(states)
        if status != 200 or missing:
            raise SystemExit(f"the server lacks plugins {sorted(missing)} (entry points?)")
        for tool in tools:
            images, others = prepared[tool]
            items = [(tool, image, other) for image, other in zip(images, others, strict=True)]
            bodies = {
                transport: [
                    makers[transport][0](tool, image, other)
                    for image, other in zip(images, others, strict=True)
                ]
                for transport in transports
            }
            sides = ["direct", *variants]
            runs: dict[str, list[float]] = {side: [] for side in sides}
            for round_ in range(args.rounds):
                for side in sides if round_ % 2 == 0 else sides[::-1]:  # a b, then b a, ...
                    if side == "direct":
                        runs[side].append(floor(tool, items))
                    else:
                        transport, level = side.split("@")
                        content_type = makers[transport][1]
                        runs[side].append(
                            through_lensforge(port, bodies[transport], content_type, int(level))
                        )
            a = sum(runs["direct"]) / len(runs["direct"])
            row: dict[str, Any] = {"tool": tool, "direct_per_s": a, "runs": runs}
            line = f"  {tool:<14} direct {a:7.1f}/s"
            for variant in variants:
                rate = sum(runs[variant]) / len(runs[variant])
                row[f"{variant}_per_s"], row[f"{variant}_ratio"] = rate, rate / a
                line += f"   {variant} {rate:7.1f}/s ({rate / a:4.2f})"
            rows.append(row)
            print(line, flush=True)

    print()
    header = f"{'tool':<14} {'(a) direct img/s':>17} {'ms/call':>8}"
    for variant in variants:
        header += f" {variant + ' img/s':>18} {'/a':>5}"
    print(header + "  target")
    for row in rows:
        per_call_ms = 1000 * 2 / row["direct_per_s"]  # one of the pool's two processes
        line = f"{row['tool']:<14} {row['direct_per_s']:>17.1f} {per_call_ms:>8.1f}"
        for variant in variants:
            line += f" {row[variant + '_per_s']:>18.1f} {row[variant + '_ratio']:>5.2f}"
        if per_call_ms < TARGET_MIN_MS:
            verdict = f"n/a (direct call under {TARGET_MIN_MS:g} ms)"
        else:
            worst = min(row[f"{t}@{target_level}_ratio"] for t in transports)
            verdict = (
                f"{'PASS' if worst >= TARGET_RATIO else 'MISS'} (>= {TARGET_RATIO} "
                f"at {target_level} in flight)"
            )
        print(f"{line}  {verdict}")
    print(
        f"\n{args.images} images per tool, {args.rounds} alternated rounds of each side; "
        f"(a) multiprocessing.Pool(2); LensForge: POST "
        f"/v1/analyze at concurrency {args.in_flight} against `lensforge serve` with 2 workers "
        f"(the target at {target_level}), the image as "
        f"{' / '.join(transports)}; {os.cpu_count()} CPUs."
    )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
