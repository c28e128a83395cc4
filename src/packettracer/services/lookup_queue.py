"""The worker loop shared by the address look-up services (reverse DNS, RDAP/WHOIS ownership):
addresses wait in an ordered queue and are resolved with bounded concurrency, off the UI and the
capture path."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any


class QueuedLookups:
    """Mixin for a service with `enabled`, `concurrency`, `in_flight`, `_queue` (address ->
    None, oldest first), `_wake` and an `async resolve(address)`; gives it `run()` and
    `drain()`."""

    enabled: bool
    concurrency: int
    in_flight: int
    _queue: OrderedDict[str, None]
    _wake: asyncio.Event
    # Addresses taken off the queue whose look-up has not finished: a task that has not started
    # yet has not counted itself in `in_flight`.
    _taken = 0

    async def resolve(self, address: str) -> Any:
        raise NotImplementedError

    async def run(self) -> None:
        if not self.enabled:
            return
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[Any]] = set()

        async def one(address: str) -> None:
            try:
                await self.resolve(address)
            finally:
                slots.release()

        def finished(task: asyncio.Task[Any]) -> None:
            # a done callback: it runs for a task cancelled before it started, too
            tasks.discard(task)
            self._taken -= 1

        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await slots.acquire()
                address, _ = self._queue.popitem(last=False)
                self._taken += 1
                task = asyncio.get_running_loop().create_task(one(address))
                tasks.add(task)
                task.add_done_callback(finished)
        finally:
            for task in tasks:
                task.cancel()

    async def drain(self, seconds: float = 5.0) -> None:
        """Wait (at most `seconds`) until nothing is queued or in flight."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (self._queue or self.in_flight or self._taken) and loop.time() < end:
            await asyncio.sleep(0.02)
