"""The packet source protocol, the bounded hand-over queue, and the capture-file source."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from packettracer.capture.pcapfile import CaptureReader, Frame

Batch = list[Frame]


class BatchQueue:
    """Bounded queue of frame batches between a capture thread and the asyncio pipeline.

    Live sources use `offer` (never blocks; a full queue drops the batch and counts its frames).
    File sources use `put` (blocks while full: a replay must not lose packets).
    The consumer is woken once per batch through `notify`, never once per packet.
    """

    def __init__(self, max_batches: int) -> None:
        self.max_batches = max_batches
        self._items: deque[Batch] = deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self.notify: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, batch: Batch) -> bool:
        with self._cond:
            if len(self._items) >= self.max_batches:
                self.dropped += len(batch)
                return False
            self._items.append(batch)
        if self.notify is not None:
            self.notify()
        return True

    def put(self, batch: Batch, stop: threading.Event | None = None) -> bool:
        with self._cond:
            while len(self._items) >= self.max_batches:
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.1)
            self._items.append(batch)
        if self.notify is not None:
            self.notify()
        return True

    def drain(self, limit: int = 64) -> list[Batch]:
        out: list[Batch] = []
        with self._cond:
            items = self._items
            while items and len(out) < limit:
                out.append(items.popleft())
            self._cond.notify_all()
        return out


class PacketSource(Protocol):
    """Anything that produces frames: live interfaces, capture files, remote relays."""

    description: str
    """Shown in the status bar: the interface name or the file."""
    received: int
    """Frames handed to the queue."""
    kernel_dropped: int
    """Frames the kernel (or the capture library) dropped before we saw them."""
    finished: bool
    """True once a finite source (a file) has delivered everything."""
    error: str | None
    """Why the source stopped, when it stopped on its own."""
    live: bool
    """True for interfaces (time is the wall clock), False for files (time is packet time)."""

    def start(self, queue: BatchQueue) -> None: ...

    def stop(self) -> None: ...


class FileSource:
    """Replays a pcap/pcapng file in a thread: as fast as the pipeline takes it, or in real time."""

    def __init__(
        self, path: str, realtime: bool = False, loop: bool = False, batch_size: int = 512
    ) -> None:
        self.path = path
        self.description = path.rsplit("/", 1)[-1]
        self.live = False
        self.realtime = realtime
        self.loop = loop
        self.batch_size = batch_size
        self.received = 0
        self.kernel_dropped = 0
        self.finished = False
        self.error: str | None = None
        self.truncated_at: int | None = None
        # Validate now so a bad file is reported before the dashboard starts.
        CaptureReader(path).close()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, queue: BatchQueue) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(queue,), name="file-source", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self, queue: BatchQueue) -> None:
        try:
            while not self._stop.is_set():
                self._replay_once(queue)
                if not self.loop:
                    break
        except Exception as exc:  # a reader bug must not kill the dashboard silently
            self.error = f"{self.path}: {exc}"
        finally:
            self.finished = True
            if queue.notify is not None:
                queue.notify()

    def _replay_once(self, queue: BatchQueue) -> None:
        batch: Batch = []
        start_wall = time.monotonic()
        start_ts: float | None = None
        with CaptureReader(self.path) as reader:
            shift = 0.0
            if self.loop:
                # Shift timestamps so each loop looks like fresh traffic to the flow table.
                shift = time.time()
            for frame in reader:
                if self._stop.is_set():
                    return
                if shift:
                    if start_ts is None:
                        start_ts = frame[1]
                    frame = (frame[0], frame[1] - start_ts + shift, frame[2], frame[3])
                if self.realtime:
                    if start_ts is None:
                        start_ts = frame[1]
                    delay = (frame[1] - start_ts) - (time.monotonic() - start_wall)
                    if delay > 0.005:
                        if batch:
                            queue.put(batch, self._stop)
                            self.received += len(batch)
                            batch = []
                        self._stop.wait(min(delay, 1.0) if delay < 1.0 else delay)
                batch.append(frame)
                if len(batch) >= self.batch_size:
                    queue.put(batch, self._stop)
                    self.received += len(batch)
                    batch = []
            if batch:
                queue.put(batch, self._stop)
                self.received += len(batch)
            if reader.truncated:
                self.truncated_at = reader.truncated_at
