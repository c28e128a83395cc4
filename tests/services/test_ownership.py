"""RDAP and WHOIS against local servers replaying real registry responses (recorded by the
ipwhois project's test suite): bootstrap choice of the registry, parsed fields, WHOIS fallback,
caching and the refresh, and that nothing private is ever asked."""

import json
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.ownership import Bootstrap, OwnershipService, parse_rdap, parse_whois

from .replay_servers import http_server, whois_server

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "ownership"
RDAP = json.loads((DATA / "rdap.json").read_text())
WHOIS = json.loads((DATA / "whois.json").read_text())


@pytest.mark.parametrize(
    ("address", "registry"),
    [
        ("62.239.237.1", "ripe"),
        ("200.57.141.161", "lacnic"),
        ("74.125.225.229", "arin"),
        ("196.11.240.215", "afrinic"),
        ("210.107.73.73", "apnic"),
        ("2001:4860:4860::8888", "arin"),
        ("2a00:2381:ffff::1", "ripe"),
        ("2001:43f8:7b0::", "afrinic"),
        ("2801:10:c000::", "lacnic"),
        ("2001:240:10c:1::ca20:9d1d", "apnic"),
    ],
)
def test_bootstrap_picks_the_registry(address: str, registry: str) -> None:
    base = Bootstrap().base_for(address)
    assert base is not None and registry in base
    assert Bootstrap().base_for_asn(15169) is not None


def test_rdap_fields_of_real_answers() -> None:
    google = parse_rdap(RDAP["74.125.225.229"]["response"], "arin")
    assert google.network == "GOOGLE"
    assert google.cidr == "74.125.0.0/16"  # from ARIN's zero-padded start/end addresses
    assert google.org == "Google Inc."
    assert google.abuse == "arin-contact@google.com"
    assert google.registered == "2007-03-13"
    bt = parse_rdap(RDAP["62.239.237.1"]["response"])
    assert (bt.network, bt.country, bt.registry) == ("BT-CORPORATE", "GB", "ripe")
    assert bt.cidr == "62.239.237.0/24"
    lacnic = parse_rdap(RDAP["200.57.141.161"]["response"])
    assert lacnic.org == "Triara.com, S.A. de C.V." and lacnic.country == "MX"
    assert lacnic.abuse == "operacion.redes@TRIARA.COM"


def test_whois_fields_of_real_answers() -> None:
    ripe = parse_whois(WHOIS["62.239.237.1"]["response"], "ripe")
    assert (ripe.network, ripe.cidr, ripe.country) == ("BT-CORPORATE", "62.239.237.0/24", "GB")
    assert ripe.abuse == "protect@bt.com" and ripe.registered == "2008-08-14"
    arin = parse_whois(WHOIS["74.125.225.229"]["response"], "arin")
    assert (arin.network, arin.cidr, arin.org) == ("GOOGLE", "74.125.0.0/16", "Google Inc.")
    assert arin.abuse == "arin-contact@google.com" and arin.registered == "2007-03-13"


def settings_for(rdap_url: str, whois_port: int) -> Settings:
    settings = Settings()
    settings.ownership.rdap_base = rdap_url + "/{registry}/"
    settings.ownership.whois_servers = {r: f"127.0.0.1:{whois_port}" for r in ("arin", "ripe")}
    settings.ownership.timeout = 3.0
    return settings


async def test_rdap_first_then_whois_fallback_and_cache() -> None:
    def route(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        # /<registry>/ip/<address>; the RIPE server is "down" to force the WHOIS fallback
        parts = path.strip("/").split("/")
        registry, address = parts[0], parts[-1]
        if registry == "ripe" or address not in RDAP:
            return 503, {}, b"unavailable"
        return (
            200,
            {"Content-Type": "application/rdap+json"},
            json.dumps(RDAP[address]["response"]).encode(),
        )

    answers = {a: v["response"] for a, v in WHOIS.items()}
    now = [1_000_000.0]
    with http_server(route) as rdap, whois_server(answers) as whois:
        svc = OwnershipService(settings_for(rdap.url, whois.port), clock=lambda: now[0])
        google = await svc.resolve("74.125.225.229")
        bt = await svc.resolve("62.239.237.1")
        assert (google.source, google.registry, google.network) == ("rdap", "arin", "GOOGLE")
        assert (bt.source, bt.registry, bt.abuse) == ("whois", "ripe", "protect@bt.com")
        assert [p for _, p, _ in rdap.requests] == [
            "/arin/ip/74.125.225.229",
            "/ripe/ip/62.239.237.1",
        ]
        assert [line for _, line, _ in whois.requests] == ["62.239.237.1"]
        # cached: a lookup answers without asking again, until the refresh is due
        assert svc.lookup("74.125.225.229") is google and not svc._queue
        now[0] += 8 * 86400
        svc.lookup("74.125.225.229")
        assert list(svc._queue) == ["74.125.225.229"]
        await svc.close()


async def test_private_addresses_are_never_asked_and_offline_asks_nothing() -> None:
    def route(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 404, {}, b""

    with http_server(route) as rdap, whois_server({}) as whois:
        svc = OwnershipService(settings_for(rdap.url, whois.port))
        for address in ("192.168.1.1", "10.1.1.1", "100.64.0.9", "fe80::1", "192.0.2.3"):
            assert svc.lookup(address) is None
            result = await svc.resolve(address)
            assert result.error == "not a public address"
        assert not svc._queue
        settings = settings_for(rdap.url, whois.port)
        settings.resolve.offline = True
        assert not OwnershipService(settings).enabled
        settings = settings_for(rdap.url, whois.port)
        settings.resolve.enabled = False  # -n
        assert not OwnershipService(settings).enabled
        await svc.close()
    assert rdap.requests == [] and whois.requests == []


async def test_failures_are_cached_as_errors() -> None:
    def route(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 500, {}, b""

    with http_server(route) as rdap, whois_server({}) as whois:
        svc = OwnershipService(settings_for(rdap.url, whois.port))
        result = await svc.resolve("8.8.4.4")
        await svc.close()
    assert result.source == "whois" and result.network is None  # "No entries found"
    assert svc.peek("8.8.4.4") is result


async def test_background_service_answers_queued_lookups() -> None:
    import asyncio

    def route(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        address = path.rsplit("/", 1)[-1]
        if address not in RDAP:
            return 404, {}, b""
        return 200, {}, json.dumps(RDAP[address]["response"]).encode()

    with http_server(route) as rdap, whois_server({}) as whois:
        svc = OwnershipService(settings_for(rdap.url, whois.port))
        seen: list[str] = []
        svc.on_result.append(lambda address, owner: seen.append(address))
        task = asyncio.get_running_loop().create_task(svc.run())
        for address in ("200.57.141.161", "210.107.73.73", "196.11.240.215", "192.168.0.1"):
            assert svc.lookup(address) is None  # never waits
        await svc.drain(10.0)
        task.cancel()
        await svc.close()
    assert sorted(seen) == ["196.11.240.215", "200.57.141.161", "210.107.73.73"]
    assert svc.peek("210.107.73.73").registry == "apnic"
    assert svc.peek("196.11.240.215").country == "ZA"
    assert [p for _, p, _ in rdap.requests if "192.168" in p] == []
