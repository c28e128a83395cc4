"""Traceroute over a real routed topology of network namespaces (A - R1 - R2 - B, with R3 as
the other way from R1 to R2): hop addresses for each probe type, Paris-style constant flows,
RTT rise on a delayed link, a route change detected and stored, a silent router, and the clean
ends (unresolvable, unreachable, never answering). Needs root, iproute2 and nft."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import is_root, packettracer_cmd
from system.netlab.topology import (
    A_V4,
    B_V4,
    B_V6,
    BLACKHOLED_V4,
    HERE,
    PATH_VIA_R2,
    PATH_VIA_R2_V6,
    PATH_VIA_R3,
    UNROUTED_V4,
    Topology,
)

from packettracer.config import TraceSettings
from packettracer.services.alerts import AlertService
from packettracer.services.trace_session import TraceSession, options_from

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    if not is_root():
        pytest.skip("needs root (network namespaces, raw sockets)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh test)")
    t = Topology()
    try:
        t.up()
    except subprocess.CalledProcessError as exc:
        t.down()
        pytest.skip(f"cannot build the namespace topology: {exc.stderr.strip()}")
    yield t
    t.down()


def trace(topo: Topology, *args: str, node: str = "A") -> subprocess.CompletedProcess[str]:
    return topo.x(node, *packettracer_cmd(), "trace", "--no-history", *args, check=False)


def trace_json(topo: Topology, *args: str) -> dict[str, Any]:
    result = trace(topo, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)["targets"][0]
    return doc


@pytest.mark.parametrize("proto", ["icmp", "udp", "tcp"])
def test_hop_addresses_and_constant_flow(topo: Topology, proto: str) -> None:
    sniffer = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            topo.ns("R1"),
            sys.executable,
            str(HERE / "sniff.py"),
            "e-a",
            A_V4,
            B_V4,
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sniffer.stderr is not None
    sniffer.stderr.readline()  # "ready"
    doc = trace_json(
        topo, B_V4, "--proto", proto, "--rounds", "2", "--probes", "2", "--timeout", "0.5"
    )
    sniffer.terminate()  # it prints what it saw
    out, _ = sniffer.communicate(timeout=10)
    hops = doc["hops"]
    assert [h["address"] for h in hops] == PATH_VIA_R2
    assert hops[-1]["destination"] and not any(h["destination"] for h in hops[:-1])
    assert all(h["received"] == h["sent"] == 4 for h in hops)
    assert all(h["min_ms"] <= h["avg_ms"] <= h["max_ms"] for h in hops)
    assert doc["reached"] and doc["message"] is None
    # Paris traceroute: all probes share one flow identifier, only the probe number moves.
    probes = [p for p in json.loads(out) if p["proto"] == proto]
    assert len(probes) == 2 * 2 * 3
    assert len({tuple(p["flow"]) for p in probes}) == 1
    assert len({p["probe"] for p in probes}) == len(probes)
    assert sorted({p["ttl"] for p in probes}) == [1, 2, 3]
    if proto == "udp":
        assert probes[0]["flow"][1] == 33434


def test_ipv6_path(topo: Topology) -> None:
    # The first round may wait for neighbour discovery on the routers; two rounds settle it.
    doc = trace_json(topo, B_V6, "--rounds", "2", "--probes", "2", "--timeout", "1.0")
    assert [h["address"] for h in doc["hops"]] == PATH_VIA_R2_V6
    assert doc["reached"]


def test_router_without_icmp_errors_is_silent(topo: Topology) -> None:
    topo.drop_icmp_errors("R2")
    try:
        result = trace(topo, B_V4, "--rounds", "1", "--probes", "2", "--timeout", "0.4")
    finally:
        topo.x("R2", "nft", "delete", "table", "inet", "pt_silent")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["1", "10.201.1.1"] for line in lines)
    assert any(line.split() == ["2", "*"] for line in lines)
    assert any(line.split()[:3] == ["3", "10.201.2.2", "<"] for line in lines)


def test_unresolvable_target_ends_with_one_line(topo: Topology) -> None:
    result = trace(topo, "no-such-host.invalid")
    assert result.returncode == 1
    assert "cannot resolve 'no-such-host.invalid'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_unreachable_target_ends_with_message(topo: Topology) -> None:
    # Routers rate-limit Destination Unreachable (a token bucket the earlier tests drained):
    # a pause to refill it, and two rounds.
    time.sleep(1.0)
    result = trace(topo, UNROUTED_V4, "--rounds", "2", "--timeout", "0.5")
    assert result.returncode == 1
    assert f"{UNROUTED_V4} is unreachable: !N from 10.201.1.1 at hop 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_target_that_never_answers_ends_with_message(topo: Topology) -> None:
    result = trace(topo, BLACKHOLED_V4, "--rounds", "1", "--max-ttl", "4", "--timeout", "0.3")
    assert result.returncode == 1
    assert f"no answer from {BLACKHOLED_V4} within 4 hops" in result.stderr
    assert "Traceback" not in result.stderr


async def _session(topo: Topology, settings: TraceSettings, **kw: Any) -> TraceSession:
    session = TraceSession(settings, **kw)
    options = options_from(settings)
    with topo.inside("A"):  # the tracer's sockets live in A's namespace
        await session.add(B_V4, options)
    return session


async def test_rtt_rise_on_delayed_link(topo: Topology) -> None:
    settings = TraceSettings(probes=2, timeout=0.5)
    session = await _session(topo, settings)
    try:
        for _ in range(3):
            await session.round(B_V4)
        state = session.targets[B_V4]
        before = {h.ttl: h.avg_ms for h in state.hop_list()}
        assert max(before.values()) < 30.0
        topo.delay(40)  # one way, on R1 <-> R2: +80 ms RTT beyond R1 (margins for a busy CPU)
        try:
            for _ in range(2):
                path, change, shift = await session.round(B_V4)
                assert change is None  # slower, not another route
        finally:
            topo.nodelay()
        hops = state.hop_list()
        assert [h.address for h in hops] == PATH_VIA_R2
        assert hops[0].last_ms is not None and hops[0].last_ms < 30.0
        assert hops[1].last_ms is not None and hops[1].last_ms >= 75.0
        assert hops[2].last_ms is not None and hops[2].last_ms >= 75.0
        assert hops[2].max_ms is not None and hops[2].max_ms >= 75.0 > before[3]
        assert len(state.shifts) == 1
        shift = state.shifts[0]
        assert shift.baseline_ms < 30.0 and shift.current_ms >= 75.0
    finally:
        session.close()


async def test_route_change_detected_and_stored(topo: Topology, tmp_path: Any) -> None:
    store_mod = pytest.importorskip("packettracer.services.store", reason="store not present")
    _, conn = store_mod.open_database(str(tmp_path / "trace.db"))
    repo = store_mod.Repositories().traces
    alerts = AlertService()  # the real alert engine service, without outputs
    settings = TraceSettings(probes=2, timeout=0.5)
    session = await _session(
        topo,
        settings,
        record=lambda row: repo.insert_many(conn, [row]),
        history=lambda target: repo.history(conn, target=target),
        alerts=alerts,
    )
    try:
        path, change, _ = await session.round(B_V4)
        assert path.addresses() == PATH_VIA_R2 and change is None
        topo.via_r3()
        try:
            path, change, _ = await session.round(B_V4)
        finally:
            topo.via_r2()
    finally:
        session.close()
    assert path.addresses() == PATH_VIA_R3
    assert change is not None
    assert change.kinds == ["hop", "hop_count"]
    assert [(c.ttl, c.old, c.new) for c in change.hop_changes] == [
        (2, "10.201.12.2", "10.201.13.3"),
        (3, "10.201.2.2", "10.201.23.2"),
        (4, None, "10.201.2.2"),
    ]
    raised = alerts.engine.sorted()
    assert [a.kind for a in raised] == ["route.change"]
    assert raised[0].entities == {"target": B_V4, "dst": B_V4}
    assert raised[0].evidence["new_hop_count"] == 4
    rows = repo.history(conn, target=B_V4)
    conn.close()
    assert len(rows) == 2
    newest, oldest = rows
    assert [h["ip"] for h in oldest["hops"]] == PATH_VIA_R2
    assert [h["ip"] for h in newest["hops"]] == PATH_VIA_R3
    stored = newest["details"]["route_change"]
    assert stored["kinds"] == ["hop", "hop_count"]
    assert stored["hop_changes"][0] == {"ttl": 2, "old": "10.201.12.2", "new": "10.201.13.3"}
    assert (stored["old_hop_count"], stored["new_hop_count"]) == (3, 4)
    assert "route_change" not in (oldest["details"] or {})


def test_route_change_across_runs_via_the_database(topo: Topology, tmp_path: Any) -> None:
    pytest.importorskip("packettracer.services.store", reason="store not present")
    db = str(tmp_path / "history.db")
    base = [
        *packettracer_cmd(),
        "trace",
        "--db",
        db,
        B_V4,
        "--rounds",
        "1",
        "--format",
        "json",
        "--timeout",
        "0.5",
    ]
    first = topo.x("A", *base, check=False)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["targets"][0]["changes"] == []
    topo.via_r3()
    try:
        second = topo.x("A", *base, check=False)
    finally:
        topo.via_r2()
    assert second.returncode == 0, second.stderr
    changes = json.loads(second.stdout)["targets"][0]["changes"]
    assert len(changes) == 1 and changes[0]["new_hop_count"] == 4
    # Back via R2, with UDP: compared only with earlier UDP traces (none), not the ICMP ones.
    third = topo.x("A", *base, "--proto", "udp", check=False)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["targets"][0]["changes"] == []
