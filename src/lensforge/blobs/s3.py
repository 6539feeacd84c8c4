"""Blobs in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Ceph, R2, ...).

``s3://bucket/prefix``: each blob is the object ``prefix/<sha256>``, content-addressed as in
the local store, so a blob is written at most once and never changes. Uploads are spooled
to a local file while hashed (the digest names the object, and video tools need a seekable
file anyway), then sent with boto3's managed transfer (multipart, streamed from disk);
downloads stream in chunks or ranges. boto3 is used because it is the reference client, reads
the usual AWS variables and config files, and its transfer manager does multipart for us;
the credentials and endpoint come from settings or that standard chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lensforge.blobs.refs import parse_digest
from lensforge.blobs.writer import BlobWriter
from lensforge.errors import BlobNotFound, StoreError, ValidationError

CHUNK = 256 * 1024


@dataclass(frozen=True)
class S3Options:
    """Where and how to reach the bucket; None means boto3's usual lookup (AWS_* variables,
    ~/.aws/config, instance roles)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


class S3BlobStore:
    """See the module docstring. ``spool_dir`` holds uploads while they stream in."""

    location = "s3"

    def __init__(self, url: str, spool_dir: Path, options: S3Options | None = None) -> None:
        import boto3
        from botocore.config import Config

        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValidationError(f"A blob URL looks like s3://bucket/prefix, not {url!r}.")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.spool_dir = Path(spool_dir)
        options = options or S3Options()
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=options.endpoint_url,
            region_name=options.region,
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=options.secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def _key(self, digest: str) -> str:
        return f"{self.prefix}/{digest}" if self.prefix else digest

    def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                key = str(kwargs.get("Key", ""))
                raise BlobNotFound(details={"blob": f"sha256:{key.rsplit('/', 1)[-1]}"}) from None
            raise StoreError(f"The blob bucket {self.bucket!r} answered {code}.") from exc
        except BotoCoreError as exc:
            raise StoreError(f"The blob bucket {self.bucket!r} cannot be reached.") from exc

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self._has(digest):
            self._call("put_object", Key=self._key(digest), Body=data)
        return f"sha256:{digest}"

    def writer(self, max_bytes: int | None = None) -> BlobWriter:
        return BlobWriter(self.spool_dir, self._adopt, max_bytes)

    def _adopt(self, spooled: Path, digest: str) -> None:
        if self._has(digest):
            return
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.upload_file(
                str(spooled),
                self.bucket,
                self._key(digest),
                Config=TransferConfig(multipart_chunksize=16 * 1024 * 1024),
            )
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"The blob could not be uploaded to {self.bucket!r}.") from exc

    def _has(self, digest: str) -> bool:
        try:
            self._call("head_object", Key=self._key(digest))
        except BlobNotFound:
            return False
        return True

    def get(self, ref: str) -> bytes:
        body = self._call("get_object", Key=self._key(parse_digest(ref)))["Body"]
        with contextlib.closing(body):
            data: bytes = body.read()
        return data

    def exists(self, ref: str) -> bool:
        return self._has(parse_digest(ref))

    def size(self, ref: str) -> int:
        return int(self._call("head_object", Key=self._key(parse_digest(ref)))["ContentLength"])

    @contextlib.contextmanager
    def local_path(self, ref: str) -> Iterator[Path]:
        """The blob downloaded (streamed) to a temporary file for the block's duration."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix="download-") as file:
            for chunk in self.stream(ref):
                file.write(chunk)
            file.flush()
            yield Path(file.name)

    def stream(self, ref: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start`` to ``end`` (inclusive; None: to the last), in chunks."""
        kwargs: dict[str, Any] = {"Key": self._key(parse_digest(ref))}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        body = self._call("get_object", **kwargs)["Body"]

        def chunks() -> Iterator[bytes]:
            with contextlib.closing(body):
                yield from body.iter_chunks(CHUNK)

        return chunks()
