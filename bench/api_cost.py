"""The API process's own cost per sync analysis: CPU and page faults, a tiny image and a photo.

    .venv/bin/python bench/api_cost.py        # about half a minute

Starts a real ``lensforge serve`` (loopback, free port, 2 workers, temporary database and blob
store), then for (a) an 8x8 PNG and (b) a 640x480 noise PNG (~780 KB) sends 200 different
images to ``image.info`` as multipart uploads, two at a time, twice (the first pass stores the
blobs, the second is measured: the same images again, as a client retrying or a pipeline
re-running would send them). It prints, per request, the API process's user and system CPU
milliseconds and minor page faults (from /proc/PID/stat), the client's CPU, and (b) - (a):
what an upload of that size adds to a request. The workers are not counted.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from common import cpu_and_faults as counters
from common import describe, machine, running

import plugins as bench  # bench/ is sys.path[0]

IMAGES = 200
SIZES = {"(a) 8x8 PNG": (8, 8), "(b) 640x480 PNG": (640, 480)}


def png(width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((width, height), 40 + seed % 60).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    print(describe(machine()))
    rows = {}
    with (
        tempfile.TemporaryDirectory(prefix="lensforge-bench-") as tmp,
        running(bench.start_server(Path(tmp))) as server,
    ):
        port, api = server.port, server.pid
        for label, (width, height) in SIZES.items():
            images = [png(width, height, i) for i in range(IMAGES)]
            bodies = [bench.multipart_for("image.info", image, None) for image in images]
            bench.through_lensforge(port, bodies, bench.MULTIPART)  # stores the blobs
            before, client_before = counters(api), os.times()
            rate = bench.through_lensforge(port, bodies, bench.MULTIPART)
            after, client_after = counters(api), os.times()
            calls = IMAGES + 4  # through_lensforge's warm-up calls count too
            rows[label] = {
                "bytes": len(images[0]),
                "rate": rate,
                "user": 1000 * (after[0] - before[0]) / calls,
                "sys": 1000 * (after[1] - before[1]) / calls,
                "faults": (after[2] - before[2]) / calls,
                "client": 1000
                * (
                    client_after.user
                    - client_before.user
                    + client_after.system
                    - client_before.system
                )
                / calls,
            }
    print(
        f"{'request':<18} {'bytes':>9} {'req/s':>7} {'API user ms':>12} {'API sys ms':>11} "
        f"{'API faults':>11} {'client ms':>10}"
    )
    for label, row in rows.items():
        print(
            f"{label:<18} {row['bytes']:>9,} {row['rate']:>7.1f} {row['user']:>12.2f} "
            f"{row['sys']:>11.2f} {row['faults']:>11.1f} {row['client']:>10.2f}"
        )
    a, b = rows.values()
    print(
        f"{'(b) - (a)':<18} {b['bytes'] - a['bytes']:>9,} {'':>7} {b['user'] - a['user']:>12.2f} "
        f"{b['sys'] - a['sys']:>11.2f} {b['faults'] - a['faults']:>11.1f} "
        f"{b['client'] - a['client']:>10.2f}"
    )
    print(f"\nper request, {IMAGES} images each, 2 in flight, image.info; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
