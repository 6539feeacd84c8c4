"""The per-key token bucket on a clock the test moves (focused tests that kill mutants of
security/ratelimit.py; the HTTP side is tests/security/test_limits.py)."""

from __future__ import annotations

import pytest

from lensforge.security.ratelimit import RateLimiter
from tests.unit.security.conftest import Clock


def test_a_burst_of_one_allows_exactly_one_request_at_once(clock: Clock) -> None:
    limiter = RateLimiter(rate=4.0, burst=1)
    assert limiter.take("k") == 0.0
    assert limiter.take("k") == pytest.approx(0.25)  # one token refills in 1/rate s
    assert limiter.take("other") == 0.0  # buckets are per key


def test_tokens_refill_at_rate_per_second(clock: Clock) -> None:
    limiter = RateLimiter(rate=4.0, burst=1)
    assert limiter.take("k") == 0.0
    clock.now += 0.125  # half a token back
    assert limiter.take("k") == pytest.approx(0.125)
    clock.now += 0.125
    assert limiter.take("k") == 0.0


def test_a_burst_is_capped(clock: Clock) -> None:
    limiter = RateLimiter(rate=1.0, burst=3)
    clock.now += 3600  # a long idle time refills no more than the burst
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == pytest.approx(1.0)


def test_a_rate_of_zero_means_no_limit(clock: Clock) -> None:
    limiter = RateLimiter(rate=0.0, burst=1)
    assert [limiter.take("k") for _ in range(5)] == [0.0] * 5
