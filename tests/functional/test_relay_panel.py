"""Panel 7 with a real nats-server: agents' heartbeats and flows show up, Enter filters the
Traffic panel to that site, and --relay-only runs without any local capture."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from functional.dashboard_helpers import dashboard_settings, make_app

from packettracer.screens.relay import RelayPanel
from packettracer.screens.traffic import TrafficPanel
from packettracer.services.relay import messages as m
from packettracer.services.relay.server import NatsServer, find_nats_server, free_port

pytestmark = pytest.mark.skipif(find_nats_server() is None, reason="nats-server is not installed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    srv = NatsServer(port=free_port(), store_dir=str(tmp_path / "js"))
    srv.start()
    yield srv
    srv.stop()


def _flow(i: int) -> dict[str, object]:
    now = time.time()
    return {
        "id": i,
        "proto": "tcp",
        "src": f"192.0.2.{i}",
        "sport": 40000 + i,
        "dst": "198.51.100.7",
        "dport": 443,
        "packets_fwd": 3,
        "packets_rev": 2,
        "bytes_fwd": 300,
        "bytes_rev": 2000,
        "first_seen": now - 1,
        "last_seen": now,
        "tcp_state": "established",
    }


async def _publish(url: str, site: str, nflows: int) -> None:
    nc = await nats.connect(url)
    beat = {
        "ts": time.time(),
        "version": "9.9",
        "interval": 1.0,
        "host": f"{site}-host",
        "interface": "eth7",
        "pps": 12.0,
        "drops": 0,
        "flows": nflows,
    }
    await nc.publish(m.subject(site, "heartbeat"), m.encode("heartbeat", site, beat))
    body = {"ts": time.time(), "flows": [_flow(i) for i in range(1, nflows + 1)]}
    await nc.publish(m.subject(site, "flows.update"), m.encode("flows.update", site, body))
    await nc.flush()
    await nc.close()


async def _wait(pilot: object, predicate: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await pilot.pause(0.1)  # type: ignore[attr-defined]
    raise AssertionError("timed out")


async def test_relay_panel_lists_agents_and_filters_traffic_by_site(server: NatsServer) -> None:
    settings = dashboard_settings()
    settings.relay.url = server.url
    settings.relay.durable_name = "pilot"
    app = make_app(settings=settings, panel="7")
    async with app.run_test(size=(160, 40)) as pilot:
        panel = app.panels["7"]
        assert isinstance(panel, RelayPanel)
        collector = panel.collector
        await _wait(pilot, lambda: collector.connected)  # and subscribed
        await _publish(server.url, "paris", 3)
        await _publish(server.url, "tokyo", 2)
        await _wait(pilot, lambda: len(collector.flows) == 5)
        # heartbeats come on their own subscription: wait for both agents' too
        await _wait(pilot, lambda: {"paris", "tokyo"} <= set(collector.agents))
        app.refresh_now()
        await pilot.pause()
        assert panel.sites == ["paris", "tokyo"]
        agent = collector.agents["tokyo"]
        assert (agent.host, agent.interface, agent.version, agent.status) == (
            "tokyo-host",
            "eth7",
            "9.9",
            "live",
        )
        # the agents are kept in the database too
        store = app.runtime.features["store"]
        stored: list[dict[str, object]] = []
        for _ in range(50):
            stored = await asyncio.to_thread(store.agents)
            if len(stored) == 2:
                break
            await pilot.pause(0.1)
        assert {(a["name"], a["address"], a["version"]) for a in stored} == {
            ("paris", "paris-host", "9.9"),
            ("tokyo", "tokyo-host", "9.9"),
        }
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.current_key == "1"
        traffic = app.panels["1"]
        assert isinstance(traffic, TrafficPanel)
        assert traffic.view.site == "tokyo"
        traffic.invalidate()
        shown = traffic.shown
        assert len(shown) == 2 and all(f.site == "tokyo" for f in shown)


async def test_relay_only_has_no_local_capture(server: NatsServer) -> None:
    settings = dashboard_settings()
    settings.capture.read_file = None
    settings.relay.url = server.url
    settings.relay.only = True
    app = make_app(settings=settings, panel="7")
    assert app.runtime.capture is None
    async with app.run_test(size=(120, 30)) as pilot:
        collector = app.panels["7"].collector  # type: ignore[attr-defined]
        await _wait(pilot, lambda: collector.connected)  # and subscribed
        await _publish(server.url, "lyon", 4)
        await _wait(pilot, lambda: len(collector.flows) == 4)
        assert len(list(app.runtime.all_flows())) == 4
