"""Alerts raised at a remote site reach the collector: an agent (a real `packettracer agent`
process) replays tcp_scan.pcapng, its scan detector raises the alert, the relay carries it over a
real nats-server, and the collector's alert engine holds it with the site among its entities."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.alerts import AlertService
from packettracer.services.relay.collector import Collector
from packettracer.services.relay.server import NatsServer, find_nats_server, free_port
from packettracer.services.runtime import Runtime
from tests.conftest import DATA, agent_command

pytestmark = pytest.mark.skipif(find_nats_server() is None, reason="nats-server is not installed")


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(port=free_port(), store_dir=str(tmp_path / "js"))
    server.start()
    yield server
    server.stop()


async def test_agent_scan_alert_reaches_the_collector(nats: NatsServer, tmp_path: Path) -> None:
    settings = Settings()
    settings.relay.url = nats.url
    settings.relay.durable_name = "security-test"
    runtime = Runtime(settings)
    alerts = AlertService(settings.security)
    runtime.features["alerts"] = alerts
    collector = Collector(runtime, settings.relay)
    task = asyncio.ensure_future(collector.run())
    config = tmp_path / "agent.toml"
    config.write_text(f'[security]\nblocklist_dir = "{tmp_path / "none"}"\n')
    agent = subprocess.Popen(
        agent_command(
            "lab",
            nats.url,
            tmp_path / "spool",
            *("-r", str(DATA / "tcp_scan.pcapng"), "--config", str(config)),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not alerts.engine.alerts:
            await asyncio.sleep(0.1)
        found = list(alerts.engine.alerts.values())
        assert found, "no alert relayed from the agent"
        (alert,) = found
        assert alert.kind == "scan.vertical"
        assert alert.entities == {"scanner": "192.168.1.178", "site": "lab"}
        assert alert.evidence["technique"] == "TCP connect"
        assert alert.source == "lab:scan"
        assert collector.agents["lab"].alerts >= 1
    finally:
        if agent.poll() is None:
            agent.terminate()
        agent.communicate(timeout=20)
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        await collector.close()
