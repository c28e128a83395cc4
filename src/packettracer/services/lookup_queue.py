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

        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await slots.acquire()
                address, _ = self._queue.popitem(last=False)
                task = asyncio.get_running_loop().create_task(one(address))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()

    async def drain(self, seconds: float = 5.0) -> None:
        """Wait (at most `seconds`) until nothing is queued or in flight."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (self._queue or self.in_flight) and loop.time() < end:
            await asyncio.sleep(0.02)
