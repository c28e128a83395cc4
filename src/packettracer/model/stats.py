"""Whole-capture traffic counters and the throughput history behind the sparklines."""

from __future__ import annotations

from collections import deque
from typing import Any


class TrafficStats:
    """Counters the pipeline bumps per packet, and rates computed on each tick."""

    HISTORY = 300  # ticks of throughput kept for sparklines

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.skipped_linktype = 0
        self.filtered = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        # protocol number -> [packets, bytes]
        self.by_proto: dict[int, list[int]] = {}
        self.pps = 0.0
        self.bps = 0.0
        self.history_bps: deque[float] = deque(maxlen=self.HISTORY)
        self.history_pps: deque[float] = deque(maxlen=self.HISTORY)
        self._tick_packets = 0
        self._tick_bytes = 0

    @property
    def duration(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return self.last_ts - self.first_ts

    def tick(self, interval: float) -> None:
        if interval <= 0:
            return
        self.pps = (self.packets - self._tick_packets) / interval
        self.bps = (self.bytes - self._tick_bytes) * 8 / interval
        self._tick_packets = self.packets
        self._tick_bytes = self.bytes
        self.history_bps.append(self.bps)
        self.history_pps.append(self.pps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "skipped_linktype": self.skipped_linktype,
            "filtered": self.filtered,
            "first_seen": self.first_ts,
            "last_seen": self.last_ts,
            "duration": round(self.duration, 6),
        }
