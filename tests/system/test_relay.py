"""Distributed capture end to end: a real nats-server with JetStream, agents as separate processes
capturing real traffic from network namespaces this test creates, and a collector.

Each site is a namespace joined to the host by a veth pair; the agent captures on the host side,
a sender inside the namespace makes UDP flows with known packet counts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, agent_command, is_root

from packettracer.config import Settings
from packettracer.model.flows import Flow
from packettracer.services.alerts import AlertService
from packettracer.services.relay import messages as m
from packettracer.services.relay.collector import Collector
from packettracer.services.relay.server import NatsServer, find_nats_server, free_port
from packettracer.services.runtime import Runtime

pytestmark = [
    pytest.mark.skipif(not is_root(), reason="needs root to create network namespaces"),
    pytest.mark.skipif(find_nats_server() is None, reason="nats-server is not installed"),
]

SENDER = """
import socket, sys, time
dst, nflows, npackets, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(nflows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", base + i))
    for _ in range(npackets):
        s.sendto(b"x" * 100, (dst, 9))
        time.sleep(0.002)
    s.close()
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def site_namespace(tag: str, octet: int) -> Iterator[tuple[str, str, str]]:
    """A namespace with a veth to the host; yields (namespace, host interface, host address)."""
    suffix = f"{os.getpid() % 10000}"
    ns = f"ptrelay-{tag}-{suffix}"
    host_if = f"prl{tag}{suffix}"[:15]
    host_ip, ns_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("addr", "add", f"{host_ip}/24", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{ns_ip}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns, host_if, host_ip
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def send_flows(ns: str, dst: str, nflows: int, npackets: int, base_port: int) -> None:
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-c",
            SENDER,
            dst,
            str(nflows),
            str(npackets),
            str(base_port),
        ],
        check=True,
        timeout=30,
    )


class Agent:
    def __init__(self, site: str, url: str, iface: str, workdir: Path, *extra: str) -> None:
        config = workdir / f"{site}.toml"
        config.write_text("[flows]\nidle_timeout = 1.0\n")
        self.stderr = workdir / f"{site}.err"
        self.proc = subprocess.Popen(
            agent_command(
                site,
                url,
                workdir / "spool",
                *("-i", iface, "-f", "udp", "--heartbeat", "0.2", "--config", str(config)),
                *extra,
            ),
            stdout=subprocess.DEVNULL,
            stderr=self.stderr.open("wb"),
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class CollectorHandle:
    def __init__(self, url: str, durable: str = "test-collector") -> None:
        self.settings = Settings()
        self.settings.relay.url = url
        self.settings.relay.durable_name = durable
        self.settings.relay.late_after = 3
        self.settings.relay.lost_after = 8
        self.runtime = Runtime(self.settings)
        # the real alert engine, so agent loss is checked as the dashboard would see it
        self.alerts = AlertService()
        self.runtime.features["alerts"] = self.alerts
        self.collector = Collector(self.runtime, self.settings.relay)
        self.ended: list[Flow] = []
        self.runtime.pipeline.on_flow_end(self.ended.append)
        self.task = asyncio.ensure_future(self.collector.run())

    async def close(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):
            pass
        await self.collector.close()

    def flows_of(self, site: str) -> list[Flow]:
        return [f for f in self.ended if f.site == site]


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(port=free_port(), store_dir=str(tmp_path / "js"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def two_sites(tmp_path: Path, nats: NatsServer) -> AsyncIterator[dict[str, object]]:
    with site_namespace("a", 11) as site_a, site_namespace("b", 12) as site_b:
        agents = {
            "a": Agent("site-a", nats.url, site_a[1], tmp_path),
            "b": Agent("site-b", nats.url, site_b[1], tmp_path),
        }
        try:
            yield {"nats": nats, "a": site_a, "b": site_b, "agents": agents, "tmp": tmp_path}
        finally:
            for agent in agents.values():
                agent.stop()


async def _agents_ready(col: CollectorHandle) -> None:
    await wait_for(
        lambda: {"site-a", "site-b"} <= set(col.collector.agents), 20, "both agents' heartbeats"
    )


def _ports(flows: list[Flow]) -> list[int]:
    return sorted(f.sport for f in flows)


async def test_two_sites_flows_and_stats(two_sites: dict) -> None:
    col = CollectorHandle(two_sites["nats"].url)
    try:
        await _agents_ready(col)
        ns_a, _, ip_a = two_sites["a"]
        ns_b, _, ip_b = two_sites["b"]
        await asyncio.to_thread(send_flows, ns_a, ip_a, 5, 3, 20000)
        await asyncio.to_thread(send_flows, ns_b, ip_b, 7, 2, 21000)
        await wait_for(
            lambda: len(col.flows_of("site-a")) >= 5 and len(col.flows_of("site-b")) >= 7,
            20,
            "ended flows from both sites",
        )
        await asyncio.sleep(0.5)
        flows_a, flows_b = col.flows_of("site-a"), col.flows_of("site-b")
        assert _ports(flows_a) == list(range(20000, 20005))
        assert _ports(flows_b) == list(range(21000, 21007))
        assert all(f.packets_fwd == 3 and f.dst == ip_a and f.dport == 9 for f in flows_a)
        assert all(f.packets_fwd == 2 and f.dst == ip_b for f in flows_b)
        agent_a = col.collector.agents["site-a"]
        assert agent_a.status == "live" and agent_a.interface == two_sites["a"][1]
        assert agent_a.flows_ended == 5 and col.collector.agents["site-b"].flows_ended == 7
        await wait_for(lambda: agent_a.packets >= 15, 5, "site-a statistics")
        assert agent_a.version and agent_a.host != "-"
    finally:
        await col.close()


async def test_collector_away_loses_nothing(two_sites: dict) -> None:
    url = two_sites["nats"].url
    col = CollectorHandle(url, durable="restarting")
    await _agents_ready(col)
    await col.close()
    ns_a, _, ip_a = two_sites["a"]
    ns_b, _, ip_b = two_sites["b"]
    await asyncio.to_thread(send_flows, ns_a, ip_a, 6, 2, 22000)
    await asyncio.to_thread(send_flows, ns_b, ip_b, 4, 2, 23000)
    await asyncio.sleep(3)  # the flows end (idle 1 s) and are published while nobody listens
    col = CollectorHandle(url, durable="restarting")
    try:
        await wait_for(
            lambda: len(col.flows_of("site-a")) >= 6 and len(col.flows_of("site-b")) >= 4,
            20,
            "flows published while the collector was away",
        )
        await asyncio.sleep(1)
        assert _ports(col.flows_of("site-a")) == list(range(22000, 22006))  # none lost or doubled
        assert _ports(col.flows_of("site-b")) == list(range(23000, 23004))
    finally:
        await col.close()


async def test_nats_outage_is_spooled_and_replayed(two_sites: dict) -> None:
    server: NatsServer = two_sites["nats"]
    col = CollectorHandle(server.url)
    try:
        await _agents_ready(col)
        server.stop()
        ns_a, _, ip_a = two_sites["a"]
        await asyncio.to_thread(send_flows, ns_a, ip_a, 8, 2, 24000)
        await asyncio.sleep(4)  # flows end while the server is down: they go to the spool
        assert not col.flows_of("site-a")
        server.start()
        await wait_for(lambda: len(col.flows_of("site-a")) >= 8, 30, "spooled flows")
        await asyncio.sleep(1)
        assert _ports(col.flows_of("site-a")) == list(range(24000, 24008))
    finally:
        await col.close()


async def test_killed_agent_goes_late_then_lost(two_sites: dict) -> None:
    col = CollectorHandle(two_sites["nats"].url)
    try:
        await _agents_ready(col)
        two_sites["agents"]["a"].stop(signal.SIGKILL)
        agent = col.collector.agents["site-a"]
        await wait_for(lambda: agent.status == "late", 10, "site-a marked late")
        await wait_for(lambda: agent.status == "lost", 10, "site-a marked lost")
        raised = [a for a in col.alerts.engine.sorted() if a.kind == "relay.agent_lost"]
        assert len(raised) == 1 and raised[0].entities["site"] == "site-a"
        assert raised[0].severity == "high"
        assert col.collector.agents["site-b"].status == "live"
    finally:
        await col.close()


async def test_connected_means_subscribed(
    nats: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat sent the moment the collector says it is connected arrives (no stored copy
    of heartbeats exists: one sent before the subscriptions would be lost), even when
    subscribing is slow."""
    import nats as nats_client

    subscribe = Collector._subscribe

    async def slow_subscribe(self: Collector, nc: Any) -> None:
        await asyncio.sleep(0.5)
        await subscribe(self, nc)

    monkeypatch.setattr(Collector, "_subscribe", slow_subscribe)
    nc = await nats_client.connect(nats.url)
    col = CollectorHandle(nats.url)
    try:
        await wait_for(lambda: col.collector.connected, 10, "collector connected")
        beat = m.encode("heartbeat", "early", {"ts": time.time(), "version": "x", "interval": 1})
        await nc.publish("packettracer.early.heartbeat", beat)
        await nc.flush()
        await wait_for(lambda: "early" in col.collector.agents, 5, "the first heartbeat")
    finally:
        await nc.close()
        await col.close()


async def test_garbage_on_the_subjects_is_counted_and_dropped(nats: NatsServer) -> None:
    import nats as nats_client

    col = CollectorHandle(nats.url)
    try:
        await wait_for(lambda: col.collector.connected, 10, "collector connected")
        nc = await nats_client.connect(nats.url)
        await nc.publish("packettracer.evil.stats", b"\x00\x01 not json")
        await nc.publish("packettracer.evil.heartbeat", b'{"v": 1, "kind": "heartbeat"}')
        await nc.publish("packettracer.evil.stats", b"[" + b"1," * m.MAX_MESSAGE_BYTES + b"1]")
        js = nc.jetstream()
        await js.publish("packettracer.evil.flows.ended", b"{broken")
        beat = m.encode("heartbeat", "good", {"ts": time.time(), "version": "x", "interval": 1})
        await nc.publish("packettracer.good.heartbeat", beat)
        await nc.flush()
        await wait_for(lambda: "good" in col.collector.agents, 10, "the valid heartbeat")
        await wait_for(
            lambda: col.collector.malformed >= 3 and col.collector.oversized >= 1,
            10,
            "bad messages counted",
        )
        assert "evil" not in col.collector.agents
        await nc.close()
    finally:
        await col.close()


def test_wrong_credentials_refused_with_a_clear_message(tmp_path: Path) -> None:
    server = NatsServer(port=free_port(), store_dir=str(tmp_path / "js"), token="s3cret")
    server.start()
    try:
        result = subprocess.run(
            agent_command(
                "x",
                server.url,
                tmp_path / "spool",
                *("--token", "wrong", "-r", str(DATA / "relay-sample.pcap")),
            ),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.stop()
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "refused the credentials" in lines[0] and "Traceback" not in result.stderr
