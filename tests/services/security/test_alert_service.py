"""The alert engine service: persistence of alerts and acknowledgements across a restart (the
real SQLite store), the JSON-lines file, and the webhook with retry (a local HTTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.alerts import AlertService, load_alert_rows
from packettracer.services.runtime import Runtime
from packettracer.services.security_feature import SecurityFeature


def make_runtime(db: Path, tmp: Path) -> tuple[Runtime, SecurityFeature]:
    store_feature = pytest.importorskip("packettracer.services.store_feature")
    settings = Settings()
    settings.store.db_path = str(db)
    settings.security.blocklist_dir = str(tmp / "lists")
    runtime = Runtime(settings)
    for feature in (store_feature.create_store_feature(runtime, "dashboard"),):
        feature.attach(runtime)
        runtime.features[feature.name] = feature
    security = SecurityFeature(runtime, "dashboard")
    security.attach(runtime)
    runtime.features[security.name] = security
    return runtime, security


async def test_alerts_and_acks_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    runtime, sec = make_runtime(db, tmp_path)
    assert runtime.features["alerts"] is sec.alerts
    runtime.start()
    alerts = sec.alerts
    a = alerts.raise_alert(
        "scan.vertical", "high", "scan from 10.0.0.1", {"scanner": "10.0.0.1"}, {"ports": "1-100"}
    )
    b = alerts.raise_alert("route.change", "medium", "route changed", {"target": "10.9.9.9"})
    c = alerts.raise_alert("agent.lost", "critical", "agent lost", {"agent": "site-a"})
    assert a and b and c
    assert alerts.unacknowledged_count() == 3
    assert alerts.take_bell() and not alerts.take_bell()
    assert alerts.ack(a.id, who="alice")
    await runtime.stop()

    runtime2, sec2 = make_runtime(db, tmp_path)
    restored = {x.id: x for x in sec2.alerts.engine.sorted()}
    assert set(restored) == {a.id, b.id, c.id}
    assert restored[a.id].acked and restored[a.id].acked_at == pytest.approx(a.acked_at)
    assert restored[a.id].acked_by == "alice"  # who, not only when
    assert restored[a.id].evidence == {"ports": "1-100"}
    assert not restored[b.id].acked
    assert sec2.alerts.unacknowledged_count() == 2
    # an ack after the restart is stored too
    runtime2.start()
    assert sec2.alerts.ack_many([b.id, c.id], who="bob") == 2
    await runtime2.stop()
    rows = load_alert_rows(str(db), 0)
    assert sorted(r["acked"] for r in rows) == [True, True, True]
    assert {r["details"]["acked_by"] for r in rows if r["uid"] in (b.id, c.id)} == {"bob"}
    # dedup after restart: the same kind and entities update the restored alert
    runtime3, sec3 = make_runtime(db, tmp_path)
    again = sec3.alerts.raise_alert("route.change", "medium", "x", {"target": "10.9.9.9"})
    assert again is not None and again.id == b.id and again.count == 2
    await runtime3.stop()


async def test_no_store_is_fine(tmp_path: Path) -> None:
    service = AlertService()
    assert service.restore() == 0
    assert service.raise_alert("x.y", "info", "t", {"host": "10.0.0.1"}) is not None
    await service.flush()
    await service.close()


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    fail_first = 1

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Hook.received = []
    _Hook.fail_first = 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def read_jsonl(path: str) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


async def test_jsonl_and_webhook_with_retry(tmp_path: Path, webhook: str) -> None:
    settings = Settings().security
    settings.jsonl_file = str(tmp_path / "out" / "alerts.jsonl")
    settings.webhook_url = webhook
    service = AlertService(settings)
    a = service.raise_alert("scan.sweep", "low", "sweep", {"scanner": "10.0.0.1"}, {"n": 1})
    service.raise_alert("scan.sweep", "low", "sweep", {"scanner": "10.0.0.1"}, {"n": 2})
    assert a is not None
    service.ack(a.id, who="carol")
    await service.close()
    lines = read_jsonl(settings.jsonl_file)
    assert [x["event"] for x in lines] == ["alert", "update", "ack"]
    assert lines[2]["acked_by"] == "carol" and lines[1]["count"] == 2
    # one new alert: posted twice (503, then accepted)
    assert len(_Hook.received) == 2 and _Hook.received[1]["id"] == a.id
    assert service.webhook_sent == 1 and service.webhook_failed == 0


async def test_webhook_unreachable_is_counted(tmp_path: Path) -> None:
    settings = Settings().security
    settings.webhook_url = "http://127.0.0.1:9/unreachable"  # discard port: nothing listens
    settings.webhook_retries = 1
    service = AlertService(settings)
    service.raise_alert("x.y", "high", "t", {"host": "10.0.0.1"})
    await service.flush()
    assert service.webhook_failed == 1 and service.errors


async def test_relay_hooks_subscribe_ingest_remote_and_summary_alias() -> None:
    agent_side = AlertService()
    forwarded: list[dict] = []
    agent_side.subscribe(lambda a: forwarded.append(a.to_dict()))
    agent_side.raise_alert(
        kind="scan.sweep",
        severity="low",
        summary="sweep from 10.0.0.5",
        entities={"scanner": "10.0.0.5"},
        evidence={"target_count": 30},
    )
    agent_side.raise_alert("scan.sweep", "low", "again", {"scanner": "10.0.0.5"})  # an update
    assert len(forwarded) == 1 and agent_side.total_count() == 1
    assert forwarded[0]["title"] == "sweep from 10.0.0.5"

    collector_side = AlertService()
    a = collector_side.ingest_remote("paris", forwarded[0])
    b = collector_side.ingest_remote("tokyo", forwarded[0])
    assert a is not None and b is not None and a.id != b.id
    assert a.entities == {"scanner": "10.0.0.5", "site": "paris"}
    assert a.source == "paris:agent" and a.kind == "scan.sweep"
    assert a.evidence == {"target_count": 30}
    assert collector_side.ingest_remote("paris", forwarded[0]) is a  # deduplicated
    assert a.count == 2
