"""The resolution feature inside the real report pipeline: flows get name, name_source,
country, city, asn, as_org; the summary gets the breakdowns and DNS figures; the database
(when there is one) receives host knowledge and warms the caches of the next run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.report import analyze_file, analyze_file_async
from packettracer.services.resolution_feature import ResolutionFeature
from packettracer.services.runtime import Runtime

from ..model.resolution_helpers import capture  # noqa: TID252

FIELDS = ("name", "name_source", "country", "city", "asn", "as_org")


def settings() -> Settings:
    s = Settings()
    s.geo.search_default_dirs = False
    return s


def flow_to(result, dst: str, dport: int) -> dict:
    return next(f for f in result.flows if f["dst"] == dst and f["dport"] == dport)


def test_http_and_dns_names_reach_the_flows() -> None:
    result = analyze_file(str(capture("http.pcap")), settings())
    for flow in result.flows:
        assert all(key in flow for key in FIELDS)
    web = flow_to(result, "65.208.228.223", 80)
    assert (web["name"], web["name_source"]) == ("www.ethereal.com", "http")
    ads = flow_to(result, "216.239.59.99", 80)
    assert ads["name"] == "pagead2.googlesyndication.com"
    summary = result.summary
    assert summary["dns"]["top_names"] == [{"name": "pagead2.googlesyndication.com", "queries": 1}]
    assert summary["dns"]["rcodes"] == {"NOERROR": 1}
    protocols = {row["protocol"] for row in summary["top_protocols"]}
    assert protocols >= {"tcp", "udp"} or protocols >= {"HTTP", "DNS"}
    assert abs(sum(r["share"] for r in summary["top_protocols"]) - 1.0) < 0.01


def test_sni_names_and_offline_geo() -> None:
    result = analyze_file(str(capture("443-curl.pcap")), settings())
    tls = flow_to(result, "178.62.197.130", 443)
    assert (tls["name"], tls["name_source"]) == ("www.ntop.org", "sni")
    if tls["country"] is None:
        pytest.skip("the geoip2fast data is not installed")
    assert tls["country"] == "NL" and tls["as_org"] == "DIGITALOCEAN-ASN"
    top = result.summary["top_countries"][0]
    assert top["country"] == "NL" and top["share"] == 1.0 and top["flows"] == 1
    talkers = result.summary["top_remote_talkers"]
    assert talkers[0]["address"] == "178.62.197.130"


def test_dns_answers_name_later_flows_and_mmdb_geo() -> None:
    """A DNS answer names the flows to its addresses; configured .mmdb files add the city."""
    s = settings()
    mmdb = Path(__file__).resolve().parents[2] / "tests" / "data" / "mmdb"
    s.geo.geoip_db = [str(mmdb / "GeoIP2-City-Test.mmdb")]
    result = analyze_file(str(capture("dns_tcp.pcap")), s)
    answered = result.summary["dns"]
    assert answered["top_names"][0]["name"] == "www.tcpdump.org"
    assert answered["responses"] >= 1


def test_no_resolve_keeps_passive_names() -> None:
    s = settings()
    s.resolve.enabled = False
    result = analyze_file(str(capture("http.pcap")), s)
    web = flow_to(result, "65.208.228.223", 80)
    assert web["name"] == "www.ethereal.com"


def test_report_mode_never_goes_online() -> None:
    s = settings()
    s.geo.online = True
    s.geo.ip_api_url = "http://127.0.0.1:9/batch"  # discard port: nothing listens
    runtime = Runtime(s)
    feature = ResolutionFeature(runtime, "report")
    assert not feature.geo.online and not feature.rdns.enabled and not feature.ownership.enabled


def test_store_gets_host_knowledge_and_warms_the_next_run(tmp_path: Path) -> None:
    store_feature = pytest.importorskip("packettracer.services.store_feature")
    s = settings()
    s.store.db_path = str(tmp_path / "hosts.db")
    analyze_file(str(capture("http.pcap")), s)
    runtime = Runtime(s)
    store = store_feature.create_store_feature(runtime, "report")
    assert store is not None
    hosts = {h["ip"]: h for h in store.load_hosts()}
    names = {n["name"]: n["source"] for n in hosts["65.208.228.223"]["names"]}
    assert names.get("www.ethereal.com") == "http"
    assert "pagead2.googlesyndication.com" in {
        n["name"] for h in hosts.values() for n in h["names"]
    }
    assert hosts["65.208.228.223"]["geo"] is None or hosts["65.208.228.223"]["geo"]["country"]
    # (DNS rows keep their packet time, so the store's retention may already have removed the
    # ones of this 2004 capture; the host facts are stamped with the time they were learned.)
    asyncio.run(store.close())
    # a new runtime with the same database knows the names before seeing any packet
    feature = ResolutionFeature(Runtime(s), "report")
    assert feature.warm(list(hosts.values())) == len(hosts)
    assert feature.names.best("65.208.228.223").name == "www.ethereal.com"


async def test_the_feature_is_installed_for_every_mode() -> None:
    result = await analyze_file_async(str(capture("dns.pcap")), settings())
    assert "top_countries" in result.summary and "dns" in result.summary


def test_report_cli_json_and_a_bad_geoip_db_is_one_line(tmp_path: Path) -> None:
    import json
    import subprocess

    from conftest import packettracer_cmd

    mmdb = Path(__file__).resolve().parents[2] / "tests" / "data" / "mmdb"
    base = [*packettracer_cmd(), "report", "-r", str(capture("http.pcap")), "-n", "--offline"]
    ok = subprocess.run(
        [*base, "--format", "json", "--geoip-db", str(mmdb / "GeoLite2-ASN-Test.mmdb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    web = next(f for f in data["flows"] if f["dst"] == "65.208.228.223")
    assert web["name"] == "www.ethereal.com" and web["name_source"] == "http"
    assert {"top_countries", "top_as", "top_protocols", "dns"} <= set(data["summary"])
    bad = subprocess.run(
        [*base, "--geoip-db", str(tmp_path / "missing.mmdb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.mmdb: no such file" in lines[0]
    assert "Traceback" not in bad.stderr


def test_a_client_hello_split_across_segments_still_names_the_flow() -> None:
    """Large ClientHellos (post-quantum key shares) span two TCP segments: the first part is
    kept until the rest arrives. Here curl's real hello is cut in two."""
    import copy

    from packettracer.model.flows import FlowTable
    from packettracer.model.hostnames import client_hello_sni, hello_incomplete

    from ..model.resolution_helpers import packets  # noqa: TID252

    feature = ResolutionFeature(Runtime(settings()), "report")
    table = FlowTable()
    hello_seen = False
    for pkt in packets("443-curl.pcap"):
        if not hello_seen and pkt.payload and client_hello_sni(pkt.payload):
            hello_seen = True
            first, second = copy.copy(pkt), copy.copy(pkt)
            cut = len(pkt.payload) // 2
            first.payload, second.payload = pkt.payload[:cut], pkt.payload[cut:]
            assert hello_incomplete(first.payload) and client_hello_sni(first.payload) is None
            for part in (first, second):
                flow = table.update(part)
                feature.analyzer.on_packet(part, flow, table.last_forward)
            assert flow.get("name") == "www.ntop.org" and flow.get("name_source") == "sni"
            assert not feature._hellos
            break
        flow = table.update(pkt)
        feature.analyzer.on_packet(pkt, flow, table.last_forward)
    assert hello_seen


@pytest.mark.parametrize("dpi", [True, False], ids=["names-from-dpi", "own-reading"])
def test_names_are_the_same_whoever_reads_the_first_packets(dpi: bool) -> None:
    """With the DPI on, it alone reads each flow's first packets and hands the SNI and Host names
    over; without it, the resolution feature reads them itself. The flows get the same names."""
    from packettracer.services.features import install_features
    from packettracer.services.resolution_feature import NAME_PACKETS

    s = settings()
    s.dpi.enabled = dpi
    runtime = Runtime(s)
    features = {f.name: f for f in install_features(runtime, "report")}
    resolution = features["resolution"]
    assert resolution.analyzer.inspect_packets == (0 if dpi else NAME_PACKETS)
    names = {}
    for name, dst, dport in (
        ("443-curl.pcap", "178.62.197.130", 443),
        ("http.pcap", "65.208.228.223", 80),
        ("quic-29.pcap", None, 443),
    ):
        result = analyze_file(str(capture(name)), s)
        flows = [f for f in result.flows if f["dport"] == dport and dst in (None, f["dst"])]
        names[name] = {(f["name"], f["name_source"]) for f in flows}
    assert names["443-curl.pcap"] == {("www.ntop.org", "sni")}
    assert names["http.pcap"] == {("www.ethereal.com", "http")}
    # QUIC's SNI is in its encrypted Initial: only the DPI decrypts it, so without the DPI
    # the flow stays unnamed.
    quic = names["quic-29.pcap"]
    assert all(src == "sni" for _, src in quic) if dpi else quic == {(None, None)}
