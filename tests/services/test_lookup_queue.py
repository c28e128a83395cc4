"""The look-up worker loop shared by reverse DNS and ownership: `drain()` waits for every queued
address, including one taken off the queue whose look-up has not counted itself yet."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from packettracer.services.lookup_queue import QueuedLookups


class SlowToStart(QueuedLookups):
    """Each look-up counts itself in flight only after a pause, as the real services do after
    their first awaits (a cache check, a bootstrap lookup)."""

    def __init__(self, concurrency: int) -> None:
        self.enabled = True
        self.concurrency = concurrency
        self.in_flight = 0
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._wake = asyncio.Event()
        self.done: list[str] = []

    def lookup(self, address: str) -> None:
        self._queue[address] = None
        self._wake.set()

    async def resolve(self, address: str) -> None:
        await asyncio.sleep(0.1)
        self.in_flight += 1
        try:
            await asyncio.sleep(0.01)
            self.done.append(address)
        finally:
            self.in_flight -= 1


async def test_drain_waits_for_lookups_taken_but_not_yet_counted() -> None:
    svc = SlowToStart(concurrency=2)
    task = asyncio.get_running_loop().create_task(svc.run())
    try:
        for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            svc.lookup(address)
        await asyncio.sleep(0)  # the loop takes the first two off the queue
        await svc.drain(5.0)
        assert sorted(svc.done) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_lookups_cancelled_before_they_start_do_not_hold_up_drain() -> None:
    svc = SlowToStart(concurrency=4)
    task = asyncio.get_running_loop().create_task(svc.run())
    for address in ("192.0.2.1", "192.0.2.2"):
        svc.lookup(address)
    await asyncio.sleep(0)  # taken off the queue, not started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # the cancelled look-ups' done callbacks
    loop = asyncio.get_running_loop()
    start = loop.time()
    await svc.drain(5.0)
    assert loop.time() - start < 1.0 and svc.done == []
