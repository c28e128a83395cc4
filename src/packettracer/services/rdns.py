"""Reverse DNS (PTR) in the background: aiodns with a timeout, an LRU cache of `dns_cache_size`
(5,000) entries, at most `concurrency` queries in flight, failures cached briefly.

`lookup()` never waits: it answers from the cache, or queues the address and returns None; the
answer is in the cache for the panels' next refresh. Active: off with -n (resolve.enabled) and
with --offline (the system resolver would forward public PTR queries to the internet).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiodns

from packettracer.config import Settings
from packettracer.model.addresses import (
    BROADCAST,
    LOOPBACK,
    MULTICAST,
    UNSPECIFIED,
    classify,
    reverse_pointer,
)
from packettracer.services.lookup_queue import QueuedLookups

log = logging.getLogger(__name__)

MIN_TTL = 300.0
"""Names are kept at least this long (many servers answer PTR with TTL 0)."""
MAX_TTL = 86400.0
FAILURE_TTL = 60.0
"""A timeout or an error is remembered this long, then asked again (never a tight loop)."""
MAX_QUEUE = 10_000


@dataclass(slots=True)
class PtrResult:
    name: str | None
    """The PTR name, or None when there is none (NXDOMAIN, error, timeout)."""
    error: str | None
    expires: float


# Address kinds a PTR query cannot usefully answer (LAN addresses are asked: a local resolver
# often knows them).
NO_PTR = frozenset({LOOPBACK, MULTICAST, BROADCAST, UNSPECIFIED})


class ReverseDns(QueuedLookups):
    name = "rdns"

    def __init__(
        self,
        settings: Settings,
        nameservers: list[str] | None = None,
        timeout: float = 2.0,
        concurrency: int = 16,
        failure_ttl: float = FAILURE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        rs = settings.resolve
        self.enabled = rs.enabled and not rs.offline
        self.nameservers = nameservers or list(rs.nameservers) or None
        self.timeout = timeout
        self.concurrency = concurrency
        self.failure_ttl = failure_ttl
        self.clock = clock
        self.cache_size = rs.dns_cache_size
        self.cache: OrderedDict[str, PtrResult] = OrderedDict()
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._wake = asyncio.Event()
        self._resolver: aiodns.DNSResolver | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.queries = 0
        self.failures = 0
        self.dropped = 0
        self.on_result: list[Callable[[str, PtrResult], Any]] = []

    def _get_resolver(self) -> aiodns.DNSResolver:
        if self._resolver is None:
            kwargs: dict[str, Any] = {"timeout": self.timeout, "tries": 1}
            self._resolver = aiodns.DNSResolver(nameservers=self.nameservers, **kwargs)
        return self._resolver

    def _store(self, address: str, result: PtrResult) -> None:
        self.cache[address] = result
        self.cache.move_to_end(address)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def cached(self, address: str) -> PtrResult | None:
        result = self.cache.get(address)
        if result is None:
            return None
        if result.expires < self.clock():
            del self.cache[address]
            return None
        return result

    def lookup(self, address: str) -> str | None:
        """The cached PTR name of `address`; if unknown, queue a query and return None."""
        result = self.cached(address)
        if result is not None:
            self.cache.move_to_end(address)
            return result.name
        if self.enabled and address not in self._queue:
            if classify(address) in NO_PTR:
                return None  # no resolver has names for these; never ask
            if len(self._queue) >= MAX_QUEUE:
                self.dropped += 1
            else:
                self._queue[address] = None
                self._wake.set()
        return None

    def warm(self, address: str, name: str, ttl: float = MIN_TTL) -> None:
        self._store(address, PtrResult(name, None, self.clock() + ttl))

    async def resolve(self, address: str) -> PtrResult:
        """Ask now (bounded by the timeout) and cache the outcome."""
        pointer = reverse_pointer(address)
        if pointer is None:
            result = PtrResult(None, "not an address", self.clock() + MAX_TTL)
            self._store(address, result)
            return result
        self.queries += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            answer = await asyncio.wait_for(
                self._get_resolver().query_dns(pointer, "PTR"), self.timeout + 1.0
            )
            names = [
                (str(getattr(rr.data, "dname", "")).rstrip("."), rr.ttl)
                for rr in answer.answer
                if getattr(rr, "type", None) == 12
            ]
            if names:
                name, ttl = names[0]
                result = PtrResult(
                    name.lower(), None, self.clock() + min(MAX_TTL, max(MIN_TTL, float(ttl)))
                )
            else:
                result = PtrResult(None, "no PTR record", self.clock() + self.failure_ttl)
        except aiodns.error.DNSError as exc:
            self.failures += 1
            message = exc.args[1] if len(exc.args) > 1 else str(exc)
            result = PtrResult(None, str(message), self.clock() + self.failure_ttl)
        except TimeoutError:
            self.failures += 1
            result = PtrResult(None, "timeout", self.clock() + self.failure_ttl)
        finally:
            self.in_flight -= 1
        self._store(address, result)
        for listener in self.on_result:
            try:
                listener(address, result)
            except Exception:
                log.exception("PTR listener failed")
        return result

    async def close(self) -> None:
        if self._resolver is not None:
            try:
                result = self._resolver.close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                pass
            self._resolver = None
