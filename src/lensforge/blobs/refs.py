"""Blob references: ``{"blob": "sha256:<hex>"}`` inside job inputs and results."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from lensforge.errors import LensForgeError, ValidationError

_DIGEST = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


def parse_digest(ref: str) -> str:
    """The hex digest in ``sha256:<hex>`` or ``<hex>``; anything else is a validation error."""
    match = _DIGEST.match(ref.strip().lower()) if isinstance(ref, str) else None
    if match is None:
        raise ValidationError(
            "A blob is addressed as 'sha256:<64 hex digits>'.", details={"blob": str(ref)[:100]}
        )
    return match.group(1)


def blob_refs(value: Any) -> list[str]:
    """Hex digests of every ``{"blob": "sha256:..."}`` reference inside ``value``."""
    found: list[str] = []
    if isinstance(value, dict):
        ref = value.get("blob")
        if isinstance(ref, str):
            with contextlib.suppress(LensForgeError):  # not a blob reference
                found.append(parse_digest(ref))  # every spelling parse_digest accepts
        for item in value.values():
            found.extend(blob_refs(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(blob_refs(item))
    return found
