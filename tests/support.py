"""Test helpers: images made in code, base64, and a free loopback port.

The test plugins live in :mod:`tests.plugins_for_tests`.
"""

from __future__ import annotations

import base64
import io
import socket
from typing import Any


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(
    width: int = 32, height: int = 24, color: tuple[int, int, int] = (10, 200, 10), **save: Any
) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "JPEG", **save)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
