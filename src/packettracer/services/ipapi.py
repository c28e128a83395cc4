"""ip-api.com batch client: online city/ISP/AS enrichment, used only when enabled and not offline.

Rules it keeps, whatever the caller does:
- never more requests than the rate limit in any minute (a sliding window over a clock that
  tests can replace);
- the server's own counters win: `X-Rl` (requests left in the window) at 0 means wait `X-Ttl`
  seconds (the window's remaining life) before the next request; HTTP 429 likewise;
- errors back off exponentially (2 s doubling to 5 minutes), never a tight retry loop;
- only public addresses are ever put in a request (`addresses.is_public`), checked again right
  before sending, so a private, loopback, link-local, multicast, CGNAT or documentation address
  cannot leave the machine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from packettracer.model.addresses import is_public

log = logging.getLogger(__name__)

BATCH_MAX = 100
FIELDS = "status,message,country,countryCode,city,isp,org,as,asname,query"
BACKOFF_START = 2.0
BACKOFF_MAX = 300.0


class RateLimiter:
    """At most `rate` requests in any window of `per` seconds (a sliding log of grant times,
    so no burst can exceed the rate), plus a hold-until set from server headers and backoff.
    `clock` and `sleep` are injectable so tests run on a fake clock."""

    def __init__(
        self,
        rate: int,
        per: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.rate = max(1, rate)
        self.per = per
        self.clock = clock
        self.sleep = sleep
        self.grants: deque[float] = deque()
        self.hold_until = 0.0
        self.granted = 0

    def delay(self) -> float:
        """Seconds until a request may go (0: now)."""
        now = self.clock()
        grants = self.grants
        while grants and grants[0] <= now - self.per:
            grants.popleft()
        wait = max(0.0, self.hold_until - now)
        if len(grants) >= self.rate:
            wait = max(wait, grants[0] + self.per - now)
        return wait if wait > 1e-9 else 0.0

    async def acquire(self) -> None:
        while True:
            wait = self.delay()
            if wait <= 0:
                self.grants.append(self.clock())
                self.granted += 1
                return
            await self.sleep(wait)

    def server_says(self, remaining: int | None, ttl: float | None) -> None:
        """Apply the server's X-Rl / X-Ttl: nothing left means wait out the window."""
        if remaining is not None and remaining <= 0 and ttl is not None:
            self.hold_until = max(self.hold_until, self.clock() + max(ttl, 0.0) + 1.0)

    def hold(self, seconds: float) -> None:
        self.hold_until = max(self.hold_until, self.clock() + seconds)


def _header_number(headers: httpx.Headers, name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def parse_as(text: str | None) -> tuple[int | None, str | None]:
    """ip-api's `as` field, "AS15169 Google LLC" -> (15169, "Google LLC")."""
    if not text:
        return None, None
    head, _, rest = text.partition(" ")
    if head.upper().startswith("AS") and head[2:].isdigit():
        return int(head[2:]), rest.strip() or None
    return None, text


class IpApiClient:
    """Sends batches to `url`; returns {address: record} for the successful answers."""

    def __init__(
        self,
        url: str,
        rate_per_minute: int,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.limiter = limiter or RateLimiter(rate_per_minute)
        self.timeout = timeout
        self._client = client
        self.backoff = 0.0
        self.requests = 0
        self.failures = 0
        self.refused_private = 0
        self.last_error: str | None = None

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def lookup(self, addresses: list[str]) -> dict[str, dict[str, Any]]:
        query = []
        for address in addresses[:BATCH_MAX]:
            if is_public(address):
                query.append(address)
            else:
                self.refused_private += 1  # never leaves the machine
        if not query:
            return {}
        await self.limiter.acquire()
        body = [{"query": a, "fields": FIELDS} for a in query]
        self.requests += 1
        try:
            client = await self._http()
            resp = await client.post(self.url, json=body)
        except (httpx.HTTPError, OSError) as exc:
            self._failed(f"ip-api: {type(exc).__name__}: {exc}")
            return {}
        remaining = _header_number(resp.headers, "X-Rl")
        ttl = _header_number(resp.headers, "X-Ttl")
        self.limiter.server_says(None if remaining is None else int(remaining), ttl)
        if resp.status_code == 429:
            self.limiter.hold(ttl if ttl is not None else 60.0)
            self._failed("ip-api: rate limited (429)")
            return {}
        if resp.status_code != 200:
            self._failed(f"ip-api: HTTP {resp.status_code}")
            return {}
        try:
            data = resp.json()
        except ValueError:
            self._failed("ip-api: answer is not JSON")
            return {}
        if not isinstance(data, list):
            self._failed("ip-api: unexpected answer")
            return {}
        self.backoff = 0.0
        self.last_error = None
        out: dict[str, dict[str, Any]] = {}
        for item in data:
            if not isinstance(item, dict):
                continue
            address = str(item.get("query"))
            if address in query and item.get("status", "success") == "success":
                out[address] = item
        return out

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        self.backoff = min(BACKOFF_MAX, max(BACKOFF_START, self.backoff * 2))
        self.limiter.hold(self.backoff)
        log.info("%s (backing off %.0f s)", message, self.backoff)
