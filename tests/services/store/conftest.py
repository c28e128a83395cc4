"""Fixtures of the store tests: a database path in a fresh folder, and flow rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def make_flow(i: int = 0, ts: float | None = None, **extra: Any) -> dict[str, Any]:
    """A row shaped like Flow.to_dict(), varied by `i`."""
    now = time.time() if ts is None else ts
    row: dict[str, Any] = {
        "proto": "tcp",
        "src": f"10.0.{i // 250 % 250}.{i % 250 + 1}",
        "sport": 10_000 + i % 50_000,
        "dst": f"192.0.2.{i % 20 + 1}",
        "dport": 443,
        "packets_fwd": 5,
        "packets_rev": 4,
        "bytes_fwd": 500 + i,
        "bytes_rev": 4000,
        "first_seen": now - 3.0,
        "last_seen": now,
        "duration": 3.0,
        "tcp_state": "closed",
        "end_reason": "closed",
    }
    row.update(extra)
    return row


@pytest.fixture
def flow_factory() -> Callable[..., dict[str, Any]]:
    return make_flow


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "pt" / "data.db")
