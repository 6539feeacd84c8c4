"""Per-tool call metrics: calls, successes, errors by code, latency percentiles. Thread-safe."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

_WINDOW = 2048  # latencies kept for percentiles


@dataclass
class ToolMetrics:
    calls: int = 0
    successes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency_sum_s: float = 0.0
    latency_max_s: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))

    def snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.recent)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        return {
            "calls": self.calls,
            "successes": self.successes,
            "errors": dict(self.errors),
            "latency_ms": {
                "p50": pct(0.50),
                "p95": pct(0.95),
                "max": round(self.latency_max_s * 1000, 3) if self.calls else None,
            },
        }


class Metrics:
    """Counters keyed by (plugin, tool); a snapshot is consistent under concurrent updates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tools: dict[tuple[str, str], ToolMetrics] = {}

    def record(self, plugin: str, tool: str, duration_s: float, error_code: str | None) -> None:
        with self._lock:
            entry = self._tools.get((plugin, tool))
            if entry is None:
                entry = self._tools[(plugin, tool)] = ToolMetrics()
            entry.calls += 1
            if error_code is None:
                entry.successes += 1
            else:
                entry.errors[error_code] += 1
            entry.latency_sum_s += duration_s
            entry.latency_max_s = max(entry.latency_max_s, duration_s)
            entry.recent.append(duration_s)

    def tool(self, plugin: str, tool: str) -> dict[str, Any]:
        with self._lock:
            return self._tools.get((plugin, tool), ToolMetrics()).snapshot()

    def plugin(self, plugin: str) -> dict[str, Any]:
        with self._lock:
            merged = ToolMetrics()
            for (name, _), entry in self._tools.items():
                if name != plugin:
                    continue
                merged.calls += entry.calls
                merged.successes += entry.successes
                merged.errors.update(entry.errors)
                merged.latency_sum_s += entry.latency_sum_s
                merged.latency_max_s = max(merged.latency_max_s, entry.latency_max_s)
                merged.recent.extend(entry.recent)
            return merged.snapshot()

    def items(self) -> list[tuple[str, str, ToolMetrics]]:
        """A copy of every tool's counters (for the Prometheus exporter)."""
        with self._lock:
            return [
                (p, t, ToolMetrics(m.calls, m.successes, Counter(m.errors), m.latency_sum_s))
                for (p, t), m in self._tools.items()
            ]
