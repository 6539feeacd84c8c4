"""An existing agent on the ``mcp`` SDK 1.x against LensForge's /mcp (a legacy session).

Run by tests/mcp_server/test_clients.py with the Python of a separate venv holding ``mcp<2``;
prints what the agent sees as one JSON line.
"""

import asyncio
import base64
import json
import struct
import sys
import zlib

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def main(url: str) -> None:
    out: dict = {}
    async with (
        streamable_http_client(url) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        out["protocol"] = init.protocolVersion
        out["tools"] = [tool.name for tool in (await session.list_tools()).tools]
        image = {"data": base64.b64encode(png(30, 20)).decode(), "mimeType": "image/png"}
        sized = await session.call_tool("testing_size", {"image": image})
        out["size"] = sized.structuredContent
        bad = await session.call_tool("testing_echo", {"text": "hi", "times": "many"})
        out["bad"] = {"isError": bad.isError, "text": bad.content[0].text, "meta": bad.meta}
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        slept = await session.call_tool(
            "testing_sleep", {"seconds": 0.6}, progress_callback=on_progress
        )
        out["slept"] = slept.structuredContent
        out["progress"] = seen
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
