"""The flow table's view logic on real flows (a fixture capture run through the pipeline)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from packettracer.capture.pcapfile import CaptureReader
from packettracer.model.flow_view import (
    PROTO_CYCLE,
    SORT_CYCLE,
    FlowView,
    IpFilter,
    PortFilter,
)
from packettracer.model.flows import Flow
from packettracer.services.pipeline import Pipeline

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "android.pcap"


@pytest.fixture(scope="module")
def flows() -> list[Flow]:
    pipeline = Pipeline()
    with CaptureReader(str(FIXTURE)) as reader:
        pipeline.feed(list(reader))
    result = list(pipeline.flows)
    assert len(result) == 65
    return result


def test_ip_filter_parsing() -> None:
    assert IpFilter.parse("") is None
    assert IpFilter.parse("   ") is None
    sub = IpFilter.parse(" 192.168 ")
    assert sub is not None and sub.network is None and sub.text == "192.168"
    net = IpFilter.parse("10.1.2.3/8")
    assert net is not None and net.network == ipaddress.ip_network("10.0.0.0/8")
    v6 = IpFilter.parse("fe80::/10")
    assert v6 is not None and v6.network is not None and v6.network.version == 6
    with pytest.raises(ValueError, match="not a network"):
        IpFilter.parse("10.0.0.0/33")
    with pytest.raises(ValueError):
        IpFilter.parse("example/24")


def test_port_filter_parsing() -> None:
    assert PortFilter.parse("") is None
    f = PortFilter.parse("80, 443,8000-8100")
    assert f is not None and f.ranges == ((80, 80), (443, 443), (8000, 8100))
    for bad in ("http", "70000", "100-50", "1-2-3", "-5"):
        with pytest.raises(ValueError, match="not a port"):
            PortFilter.parse(bad)


def test_substring_and_cidr_filters(flows: list[Flow]) -> None:
    view = FlowView()
    view.set_ip_filter("172.217.")
    got = {f.id for f in view.filter(flows)}
    assert got == {f.id for f in flows if "172.217." in f.src or "172.217." in f.dst}
    assert got
    view.set_ip_filter("fe80::/10")
    net = ipaddress.ip_network("fe80::/10")

    def inside(addr: str) -> bool:
        try:
            return ipaddress.ip_address(addr) in net
        except ValueError:
            return False

    got = {f.id for f in view.filter(flows)}
    assert got == {f.id for f in flows if inside(f.src) or inside(f.dst)} and got
    # a bad CIDR keeps the previous filter
    with pytest.raises(ValueError):
        view.set_ip_filter("fe80::/200")
    assert view.ip_filter is not None and view.ip_filter.text == "fe80::/10"
    view.set_ip_filter("")
    assert view.ip_filter is None and len(view.filter(flows)) == 65


def test_port_filter_matches_either_side_of_tcp_and_udp_only(flows: list[Flow]) -> None:
    view = FlowView()
    view.set_port_filter("443")
    got = view.filter(flows)
    assert got and all(443 in (f.sport, f.dport) for f in got)
    assert all(f.proto_name in ("tcp", "udp") for f in got)
    # ICMPv6 flows carry type 135 etc. in sport: never matched as ports
    view.set_port_filter("0-65535")
    assert {f.proto_name for f in view.filter(flows)} == {"tcp", "udp"}


def test_protocol_cycle_partitions_the_flows(flows: list[Flow]) -> None:
    view = FlowView()
    assert view.proto == PROTO_CYCLE[0] == "all"
    counts = {}
    for expected in PROTO_CYCLE[1:]:
        assert view.cycle_proto() == expected
        counts[expected] = len(view.filter(flows))
    assert view.cycle_proto() == "all"
    assert sum(counts.values()) == len(flows)
    assert counts == {"tcp": 28, "udp": 31, "icmp": 4, "other": 2}  # as `report` counts them


def test_sort_cycle_and_top(flows: list[Flow]) -> None:
    view = FlowView()
    assert view.sort == SORT_CYCLE[0] == "bytes"
    top = view.top(flows, 10)
    assert [f.bytes for f in top] == sorted((f.bytes for f in flows), reverse=True)[:10]
    for order, key in (
        ("packets", lambda f: f.packets),
        ("rate", lambda f: f.rate_bps),
        ("recent", lambda f: f.last_seen),
        ("duration", lambda f: f.duration),
    ):
        assert view.cycle_sort() == order
        top = view.top(flows, 20)
        assert len(top) == 20
        assert [key(f) for f in top] == sorted((key(f) for f in flows), reverse=True)[:20]
    assert view.cycle_sort() == "bytes"
    # ties broken by flow id: the same input gives the same order
    assert [f.id for f in view.top(flows, 65)] == [f.id for f in view.top(reversed(flows), 65)]


def test_destination_groups(flows: list[Flow]) -> None:
    view = FlowView()
    groups = view.groups(flows, 100)
    assert len(groups) == len({f.dst for f in flows})
    assert sum(len(g.flows) for g in groups) == len(flows)
    for group in groups:
        members = [f for f in flows if f.dst == group.address]
        assert {f.id for f in group.flows} == {f.id for f in members}
        assert group.bytes == sum(f.bytes for f in members)
        assert group.packets == sum(f.packets for f in members)
    assert [g.bytes for g in groups] == sorted((g.bytes for g in groups), reverse=True)
    # filters apply before grouping
    view.cycle_proto()  # tcp
    assert all(g.protos == {"tcp"} for g in view.groups(flows, 100))
    assert len(view.groups(flows, 3)) == 3


def test_selection(flows: list[Flow]) -> None:
    view = FlowView()
    view.toggle([flows[0].id])
    assert view.selected == {flows[0].id}
    view.toggle([flows[0].id, flows[1].id])  # not all selected: selects both
    assert view.selected == {flows[0].id, flows[1].id}
    view.toggle([flows[0].id, flows[1].id])  # all selected: deselects both
    assert view.selected == set()
    view.cycle_proto()  # tcp
    view.select_all(flows)
    assert view.selected == {f.id for f in flows if f.proto_name == "tcp"}
    view.prune_selection({f.id for f in flows[:5]})
    assert view.selected <= {f.id for f in flows[:5]}
    view.clear_selection()
    assert view.selected == set()


def test_describe_names_every_setting() -> None:
    view = FlowView()
    view.set_ip_filter("10.0.0.0/8")
    view.set_port_filter("53")
    view.cycle_proto()
    view.cycle_sort()
    view.toggle_grouped()
    text = view.describe()
    for part in ("sort: packets", "proto: tcp", "ip: 10.0.0.0/8", "port: 53", "destinations"):
        assert part in text


def test_bulk_filter_agrees_with_matches(flows: list[Flow]) -> None:
    """`filter()` (fast passes) and `matches()` (one flow) apply the same filters."""
    flows[0].site = "paris"
    try:
        for proto in PROTO_CYCLE:
            for ports in ("", "53", "80,443", "1-1000", "0-65535"):
                for ip in ("", "192.168.", "172.217.0.0/16", "fe80::/10"):
                    for site in (None, "local", "paris"):
                        view = FlowView()
                        view.proto = proto
                        view.set_port_filter(ports)
                        view.set_ip_filter(ip)
                        view.site = site
                        expected = [f for f in flows if view.matches(f)]
                        assert view.filter(flows) == expected, (proto, ports, ip, site)
    finally:
        flows[0].site = None
