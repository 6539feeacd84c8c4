"""Job ids: UUIDv7-style, so they sort by creation (keyset paging and the claim order rely
on it); the exact bits checked on a fixed clock and fixed random bits."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from lensforge.store.records import new_job_id


def all_ones(bits: int) -> int:
    return (1 << bits) - 1


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        # ms 1_700_000_000_123 (0x18bcfe5687b); 456_789 ns past it: 456_789 * 4096 // 10**6
        # = 1871 (0x74f) in the 12 bits after the version
        (1_700_000_000_123_456_789, "018bcfe5-687b-774f-bfff-ffffffffffff"),
        # 15_625 ns is exactly 64/4096 of a millisecond: 0x040
        (1_700_000_000_123_015_625, "018bcfe5-687b-7040-bfff-ffffffffffff"),
        # the last nanosecond of a millisecond still fits its 12 bits: 0xfff
        (1_700_000_000_123_999_999, "018bcfe5-687b-7fff-bfff-ffffffffffff"),
        # a clock past 48 bits of milliseconds wraps: the id stays 128 bits
        ((2**48 + 5) * 1_000_000, "00000000-0005-7000-bfff-ffffffffffff"),
    ],
)
def test_an_id_is_the_time_the_version_the_variant_and_62_random_bits(
    monkeypatch: pytest.MonkeyPatch, ns: int, expected: str
) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: ns)
    monkeypatch.setattr(random, "getrandbits", all_ones)
    assert new_job_id() == expected


def test_the_random_bits_are_the_last_62(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_123_000_000)
    monkeypatch.setattr(random, "getrandbits", lambda bits: 0)
    assert new_job_id() == "018bcfe5-687b-7000-8000-000000000000"


def test_ids_are_uuid7_and_sort_by_creation() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [new_job_id() for _ in range(200)]
    after_ms = time.time_ns() // 1_000_000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert before_ms <= parsed.int >> 80 <= after_ms
    # in creation order, up to ids made in the same 1/4096 ms (their random bits decide)
    ticks = [text[:18] for text in ids]
    assert ticks == sorted(ticks)
    assert len(set(ids)) == len(ids)
