"""Geolocation with the MaxMind test databases (known answers from their source JSON), the
offline geoip2fast data, reserved ranges, and errors for unusable databases."""

import json
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.geo import GeoDbError, GeoService, MmdbGeo, OfflineGeo

ROOT = Path(__file__).resolve().parents[2]
MMDB = ROOT / "tests" / "data" / "mmdb"
SOURCE_JSON = ROOT.parent / "shared" / "corpus" / "mmdb" / "source-data"

_OFFLINE = OfflineGeo("asn")


def service(*dbs: str, offline: OfflineGeo | None = None) -> GeoService:
    settings = Settings()
    settings.geo.geoip_db = [str(MMDB / db) for db in dbs]
    settings.geo.search_default_dirs = False
    return GeoService(settings, offline=offline or OfflineGeo("off"))


def test_city_and_asn_databases_merge() -> None:
    geo = service("GeoIP2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb")
    london = geo.lookup("81.2.69.160")
    assert (london.country, london.city) == ("GB", "London")
    telstra = geo.lookup("1.128.0.0")
    assert (telstra.asn, telstra.as_org) == (1221, "Telstra Pty Ltd")
    assert telstra.sources == ["mmdb:GeoLite2-ASN-Test.mmdb"]


def test_isp_database() -> None:
    geo = service("GeoIP2-ISP-Test.mmdb")
    info = geo.lookup("1.128.0.0")
    assert info.isp == "Telstra Internet" and info.asn == 1221


def test_answers_match_the_source_json() -> None:
    """Every network with a city in the City test data's source answers with that city."""
    source = SOURCE_JSON / "GeoIP2-City-Test.json"
    if not source.exists():
        pytest.skip("../shared/corpus/mmdb/source-data is not present")
    import ipaddress

    geo = service("GeoIP2-City-Test.mmdb")
    checked = 0
    for record in json.loads(source.read_text()):
        for network, data in record.items():
            city = (data.get("city") or {}).get("names", {}).get("en")
            country = (data.get("country") or {}).get("iso_code")
            if not city:
                continue
            if network.startswith("::") and "." in network:
                # IPv4 networks sit in the IPv6 tree as ::a.b.c.d/(96 + prefix)
                first = network[2:].split("/")[0]
            else:
                first = str(ipaddress.ip_network(network).network_address)
            info = geo.lookup(first)
            assert info is not None and info.city == city and info.country == country, network
            checked += 1
    assert checked >= 10


def test_reserved_addresses_are_labelled_not_looked_up() -> None:
    geo = service("GeoIP2-City-Test.mmdb")
    assert geo.lookup("192.168.1.20").label == "LAN"
    assert geo.lookup("100.64.3.3").label == "CGNAT"
    assert geo.lookup("ff02::1").label == "multicast"
    assert geo.lookups == 0  # none of them reached a database


def test_offline_geoip2fast_answers_for_public_addresses() -> None:
    _OFFLINE.load()
    if _OFFLINE.error:
        pytest.skip(_OFFLINE.error)
    geo = service(offline=_OFFLINE)
    google = geo.lookup("8.8.8.8")
    assert (google.country, google.as_org) == ("US", "GOOGLE")
    assert google.city is None and google.asn is None  # the bundled data has neither
    v6 = geo.lookup("2001:4860:4860::8888")
    assert v6.country == "US"
    aaisp = geo.lookup("81.2.69.160")
    assert aaisp.country == "GB" and aaisp.as_org == "Andrews & Arnold Ltd"
    # the mmdb answer comes first, the offline data fills what it lacks
    both = service("GeoIP2-City-Test.mmdb", offline=_OFFLINE).lookup("81.2.69.160")
    assert (both.city, both.as_org) == ("London", "Andrews & Arnold Ltd")
    assert both.sources == ["mmdb:GeoIP2-City-Test.mmdb", "geoip2fast"]


def test_cache_is_bounded() -> None:
    geo = service("GeoIP2-City-Test.mmdb")
    geo.cache_size = 3
    for i in range(10):
        geo.lookup(f"81.2.69.{i}")
    assert len(geo.cache) == 3


def test_unusable_databases_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(GeoDbError, match="no such file"):
        MmdbGeo([str(tmp_path / "missing.mmdb")], default_dirs=False)
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"not a database")
    with pytest.raises(GeoDbError, match="not a usable .mmdb"):
        MmdbGeo([str(bogus)], default_dirs=False)


def test_broken_data_section_does_not_raise() -> None:
    geo = service("GeoIP2-City-Test-Broken-Double-Format.mmdb")
    info = geo.lookup("81.2.69.160")
    assert info is None or info.city is None or isinstance(info.city, str)


def test_offline_data_choice_is_checked() -> None:
    settings = Settings()
    settings.geo.offline_data = "everything"
    with pytest.raises(GeoDbError, match="expected asn, country or off"):
        GeoService(settings, offline=OfflineGeo("off"))
    country = OfflineGeo("country")
    country.load()
    if country.error:
        pytest.skip(country.error)
    info = country.lookup("8.8.8.8")
    assert info is not None and info.country == "US" and info.as_org is None
