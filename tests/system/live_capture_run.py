#!/usr/bin/env python3
"""Capture live through the real CaptureService and Pipeline, in this process or (as a script)
inside a network namespace:

    live_capture_run.py IFACE BACKEND [FILTER]

prints "ready" once capturing, captures until a line arrives on stdin, then prints one JSON object
{"flows": [...], "received": N, "dropped": N, "packets": N}.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from packettracer.capture.live import open_live_source
from packettracer.config import Settings
from packettracer.services.capture import CaptureService
from packettracer.services.pipeline import Pipeline

SETTLE = 0.4
"""Time after the traffic for the last ring block to retire (50 ms) and the pump to drain."""


def live_settings(interface: str, backend: str, bpf_filter: str | None = None) -> Settings:
    settings = Settings()
    settings.capture.interface = interface
    settings.capture.backend = backend
    settings.capture.bpf_filter = bpf_filter
    return settings


class LiveCapture:
    def __init__(self, settings: Settings) -> None:
        self.source = open_live_source(settings)
        self.pipeline = Pipeline(settings)
        self.service = CaptureService(
            self.source, self.pipeline, max_batches=settings.capture.queue_batches
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.service.run())
        await asyncio.sleep(0.05)

    async def stop(self, sentinel_port: int | None = None) -> None:
        """Stop once everything sent so far has gone through the pipeline: on a busy machine
        the capture thread may still be catching up when the traffic is over.

        With `sentinel_port`, one more datagram goes to 127.0.0.1 on that port and the capture
        stops once its flow is there (frames arrive in order): for `lo`, where other programs
        keep talking. Otherwise it stops when nothing new has arrived for a while.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        if sentinel_port is not None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"sentinel", ("127.0.0.1", sentinel_port))
            while loop.time() < deadline:
                if any(flow.dport == sentinel_port for flow in self.pipeline.flows):
                    break
                await asyncio.sleep(0.05)
        else:
            seen = -1
            while loop.time() < deadline:
                await asyncio.sleep(SETTLE)
                now = self.service.received + self.pipeline.stats.packets
                if now == seen and not len(self.service.queue):
                    break
                seen = now
        self.service.stop()
        assert self._task is not None
        await asyncio.wait_for(self._task, 5)

    def result(self) -> dict[str, Any]:
        return {
            "flows": [flow.to_dict() for flow in self.pipeline.flows],
            "received": self.service.received,
            "dropped": self.service.dropped,
            "packets": self.pipeline.stats.packets,
        }


async def _main(argv: list[str]) -> int:
    iface, backend = argv[0], argv[1]
    bpf = argv[2] if len(argv) > 2 and argv[2] else None
    capture = LiveCapture(live_settings(iface, backend, bpf))
    await capture.start()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await capture.stop()
    print(json.dumps(capture.result()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
