"""Files shipped inside the package and served from memory: the dashboard's and the API
documentation's assets.

Each folder is read once, when its router is built; an answer carries an ETag, so a reload
costs a ``304``, and the security headers of the page it belongs to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from fastapi import Request, Response

from lensforge.errors import NotFound


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


class Assets:
    """The files of one package folder whose suffix has a media type, by name."""

    def __init__(
        self,
        package: str,
        folder: str,
        media_types: Mapping[str, str],
        headers: Mapping[str, str],
        what: str,
    ) -> None:
        self.headers = dict(headers)
        self.what = what  # names the files in a 404: "dashboard asset"
        self.files: dict[str, Asset] = {}
        for entry in resources.files(package).joinpath(folder).iterdir():
            suffix = entry.name[entry.name.rfind(".") :]
            if entry.is_file() and suffix in media_types:
                body = entry.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                self.files[entry.name] = Asset(body, media_types[suffix], etag)

    def response(self, name: str, request: Request) -> Response:
        """The file ``name`` (``304`` when the caller holds this version), else 404."""
        asset = self.files.get(name)
        if asset is None:
            raise NotFound(f"No {self.what} {name!r}.")
        headers = {**self.headers, "ETag": asset.etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)
