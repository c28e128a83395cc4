"""State for automation: with PACKETTRACER_STATE_FILE set, the dashboard keeps a small JSON file
describing what it shows (panel, packets, flows, paused, pid). Browser tests of `--serve` read
it, since a terminal drawn on a canvas cannot be queried; scripts may use it the same way."""

from __future__ import annotations

import json
import os
import time
from typing import Any

ENV = "PACKETTRACER_STATE_FILE"
_last: dict[str, Any] = {}


def publish_state(state: dict[str, Any], min_interval: float = 0.2) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    now = time.monotonic()
    if state == _last.get("state") and now - _last.get("at", 0.0) < 5.0:
        return
    if now - _last.get("at", 0.0) < min_interval and state.get("panel") == _last.get("panel"):
        return
    _last.update(state=dict(state), at=now, panel=state.get("panel"))
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({**state, "pid": os.getpid(), "time": time.time()}, fh)
    os.replace(tmp, path)
