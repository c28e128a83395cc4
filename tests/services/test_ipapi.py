"""ip-api.com client against a local server replaying real recorded batch answers: parsing,
the rate limiter on a fake clock, X-Rl/X-Ttl, backoff, and that no private address is sent."""

import json
from pathlib import Path

from packettracer.config import Settings
from packettracer.services.geo import GeoService, OfflineGeo
from packettracer.services.ipapi import IpApiClient, RateLimiter, parse_as

from .replay_servers import http_server

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "ipapi"
BATCH = (DATA / "batch_simple.json").read_bytes()
PART_ERR = (DATA / "batch_simple_with_part_err.json").read_bytes()


def recorded_answers(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """ip-api's batch endpoint: the recorded answers for the addresses asked."""
    asked = [item["query"] for item in json.loads(body)]
    answers = [a for a in json.loads(BATCH) if a["query"] in asked]
    return 200, {"X-Rl": "14", "X-Ttl": "60"}, json.dumps(answers).encode()


def online_settings(url: str) -> Settings:
    """Geo with ip-api.com enabled at the local replay server (no mmdb search)."""
    settings = Settings()
    settings.geo.search_default_dirs = False
    settings.geo.online = True
    settings.geo.ip_api_url = url + "/batch"
    return settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_rate_limiter_never_exceeds_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(45, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(200):
        await limiter.acquire()
        stamps.append(clock.now)
    # in any window of 60 seconds: at most 45 requests
    for i, t in enumerate(stamps):
        assert len([s for s in stamps[i:] if s < t + 60.0]) <= 45
    # and it does not crawl: 200 requests take just over 4 minutes
    assert stamps[-1] - stamps[0] < 4 * 60.0 + 1
    assert limiter.granted == 200


async def test_server_headers_hold_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(45, clock=clock, sleep=clock.sleep)
    limiter.server_says(remaining=0, ttl=30)
    start = clock.now
    await limiter.acquire()
    assert clock.now - start >= 30.0


async def test_batch_answers_are_parsed_and_headers_honoured() -> None:
    def route(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json", "X-Rl": "0", "X-Ttl": "42"}, BATCH

    clock = FakeClock()
    with http_server(route) as server:
        limiter = RateLimiter(15, clock=clock, sleep=clock.sleep)
        client = IpApiClient(server.url + "/batch", 15, limiter=limiter)
        out = await client.lookup(["208.80.152.201", "8.8.8.8", "24.48.0.1"])
        await client.close()
    assert out["8.8.8.8"]["as"] == "AS15169 Google LLC"
    assert out["24.48.0.1"]["city"] == "Montreal"
    assert out["208.80.152.201"]["countryCode"] == "US"  # no status field: still a success
    assert limiter.delay() >= 42.0  # X-Rl 0: wait out X-Ttl
    assert server.requests[0][1] == "/batch"


async def test_private_and_reserved_addresses_are_never_sent() -> None:
    def route(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {"X-Rl": "14", "X-Ttl": "60"}, PART_ERR

    with http_server(route) as server:
        client = IpApiClient(server.url + "/batch", 15)
        private = [
            "192.168.1.1",
            "10.0.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "224.0.0.251",
            "100.64.0.1",
            "192.0.2.1",
            "fe80::1",
            "fd00::1",
            "::1",
            "2001:db8::1",
        ]
        out = await client.lookup([*private, "208.80.152.201"])
        assert await client.lookup(private) == {}
        await client.close()
    assert list(out) == ["208.80.152.201"]
    assert client.refused_private == 2 * len(private)
    sent = [item["query"] for batch in server.json_bodies() for item in batch]
    assert sent == ["208.80.152.201"]
    assert len(server.requests) == 1


async def test_errors_back_off() -> None:
    def route(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 503, {}, b"busy"

    clock = FakeClock()
    with http_server(route) as server:
        limiter = RateLimiter(45, clock=clock, sleep=clock.sleep)
        client = IpApiClient(server.url + "/batch", 45, limiter=limiter)
        assert await client.lookup(["8.8.8.8"]) == {}
        first = limiter.delay()
        assert await client.lookup(["8.8.8.8"]) == {}
        second = limiter.delay()
        await client.close()
    assert first >= 2.0 and second >= 2 * first - 0.01
    assert client.failures == 2 and "503" in (client.last_error or "")


def test_as_field() -> None:
    assert parse_as("AS15169 Google LLC") == (15169, "Google LLC")
    assert parse_as("") == (None, None)
    assert parse_as("Something") == (None, "Something")


async def test_geo_service_online_enrichment_only_when_enabled() -> None:
    with http_server(recorded_answers) as server:
        settings = online_settings(server.url)
        geo = GeoService(settings, offline=OfflineGeo("off"))
        assert geo.lookup("8.8.8.8") is not None
        assert geo.lookup("192.168.0.1").label == "LAN"
        batch = list(geo._queue)
        answers = await geo.client.lookup(batch)
        for address, rec in answers.items():
            geo._apply(address, rec)
        await geo.close()
        info = geo.lookup("8.8.8.8")
        assert (info.city, info.asn, info.isp) == ("Ashburn", 15169, "Google LLC")
        assert batch == ["8.8.8.8"]
        # offline: the same settings never queue anything
        settings.resolve.offline = True
        quiet = GeoService(settings, offline=OfflineGeo("off"))
        quiet.lookup("24.48.0.1")
        assert not quiet.online and not quiet._queue
    assert all("192.168" not in body.decode() for _, _, body in server.requests)


async def test_geo_service_run_loop_fills_the_cache() -> None:
    import asyncio

    with http_server(recorded_answers) as server:
        settings = online_settings(server.url)
        geo = GeoService(settings, offline=OfflineGeo("off"))
        updates: list[str] = []
        geo.on_update.append(lambda address, info: updates.append(address))
        task = asyncio.get_running_loop().create_task(geo.run())
        for address in ("8.8.8.8", "24.48.0.1", "10.0.0.1", "fe80::1"):
            geo.lookup(address)
        await geo.drain(5.0)
        for _ in range(100):
            if len(updates) == 2:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        await geo.close()
    assert sorted(updates) == ["24.48.0.1", "8.8.8.8"]
    assert geo.peek("24.48.0.1").city == "Montreal"
    assert len(server.requests) == 1  # one batch for both
    sent = [item["query"] for batch in server.json_bodies() for item in batch]
    assert sorted(sent) == ["24.48.0.1", "8.8.8.8"]
