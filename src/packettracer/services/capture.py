"""The capture service: runs a packet source and pumps its batches into the pipeline.

The source fills a bounded `BatchQueue` from its own thread; this pump drains it on the asyncio
loop in slices, so the loop (and the dashboard on it) stays responsive at any packet rate.
"""

from __future__ import annotations

import asyncio
import time

from packettracer.capture.source import BatchQueue, PacketSource
from packettracer.services.pipeline import Pipeline

# Longest stretch the pump keeps the loop busy before yielding to the UI (seconds).
SLICE = 0.02


class CaptureService:
    name = "capture"

    def __init__(self, source: PacketSource, pipeline: Pipeline, max_batches: int = 256) -> None:
        self.source = source
        self.pipeline = pipeline
        self.queue = BatchQueue(max_batches)
        self.paused = False
        """While paused, packets are still received and counted but not analyzed."""
        self.paused_dropped = 0
        self.done = asyncio.Event()
        self._wake = asyncio.Event()
        self._started = False

    @property
    def dropped(self) -> int:
        """Every frame lost before analysis: in the kernel and in our queue."""
        return self.source.kernel_dropped + self.queue.dropped

    @property
    def received(self) -> int:
        return self.source.received

    @property
    def finished(self) -> bool:
        return self.done.is_set()

    def _notify_threadsafe(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._wake.is_set():
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # loop closed while the source thread was finishing
                pass

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.queue.notify = lambda: self._notify_threadsafe(loop)
        self.source.start(self.queue)
        self._started = True
        try:
            while True:
                self._wake.clear()
                await self._drain()
                if self.source.finished and not len(self.queue):
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=0.25)
                except TimeoutError:
                    pass
        finally:
            self.done.set()

    async def _drain(self) -> None:
        feed = self.pipeline.feed
        # The slice is measured across rounds and checked after every batch: a source that
        # refills the queue as fast as we drain it must still let the UI run every SLICE.
        start = time.monotonic()
        while True:
            batches = self.queue.drain(16)
            if not batches:
                return
            for batch in batches:
                if self.paused:
                    self.paused_dropped += len(batch)
                else:
                    feed(batch)
                if time.monotonic() - start > SLICE:
                    await asyncio.sleep(0)
                    start = time.monotonic()

    def stop(self) -> None:
        if self._started:
            self.source.stop()
