"""The store feature on a real Runtime: flows of a real capture end up in the database, and
the API other features use writes and reads real rows."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.features import FEATURE_FACTORIES, install_features
from packettracer.services.report import analyze_file, analyze_file_async
from packettracer.services.runtime import Runtime
from packettracer.services.store import StoreError
from packettracer.services.store_feature import (
    StoreFeature,
    create_store_feature,
    destinations_history_line,
    stats_history_line,
)

DATA = Path(__file__).resolve().parents[2] / "data"
SCAN = DATA / "tcp_scan.pcapng"


def attached_store(runtime: Runtime, mode: str = "dashboard") -> StoreFeature:
    """The store feature made for `runtime`, attached and registered as install_features does."""
    feature = create_store_feature(runtime, mode)
    assert feature is not None
    feature.attach(runtime)
    runtime.features["store"] = feature
    return feature


def offline_settings() -> Settings:
    settings = Settings()
    settings.resolve.enabled = False
    settings.resolve.offline = True
    return settings


def test_store_is_the_first_feature() -> None:
    assert FEATURE_FACTORIES[0].endswith("store_feature:create_store_feature")


async def test_report_with_a_database_stores_every_flow_it_printed(tmp_path: Path) -> None:
    settings = offline_settings()
    settings.store.db_path = str(tmp_path / "report.db")
    result = await analyze_file_async(str(SCAN), settings)
    assert result.summary["stored_flows"] == len(result.flows) >= 5
    conn = sqlite3.connect(settings.store.db_path)
    stored = conn.execute(
        "SELECT src, sport, dst, dport, bytes_fwd, bytes_rev, ext FROM flows"
    ).fetchall()
    conn.close()
    printed = [
        (f["src"], f["sport"], f["dst"], f["dport"], f["bytes_fwd"], f["bytes_rev"])
        for f in result.flows
    ]
    assert sorted(row[:6] for row in stored) == sorted(printed)
    # The DPI's verdict as printed, also for the probes it could say nothing about (stored
    # with the runtime's flow defaults).
    verdicts = {
        row[:4]: (ext["app"], ext["category"], ext["anomaly_score"])
        for row in stored
        for ext in [json.loads(row[6])]
    }
    assert verdicts == {
        (f["src"], f["sport"], f["dst"], f["dport"]): (f["app"], f["category"], f["anomaly_score"])
        for f in result.flows
    }
    assert ("unknown" in {v[1] for v in verdicts.values()}) and len(verdicts) == len(printed)


def test_report_without_a_database_writes_nothing(tmp_path: Path) -> None:
    settings = offline_settings()  # the default path: report must not create it
    default = Path(settings.store.db_path)
    existed = default.exists()
    result = analyze_file(str(SCAN), settings)
    assert "stored_flows" not in result.summary
    assert default.exists() == existed


def test_dashboard_mode_always_stores_report_mode_only_when_asked(tmp_path: Path) -> None:
    settings = Settings()
    settings.store.db_path = ":memory:"
    assert create_store_feature(Runtime(settings), "report") is None
    feature = create_store_feature(Runtime(settings), "dashboard")
    assert isinstance(feature, StoreFeature)
    feature.writer.close_sync()


def test_unusable_path_fails_install_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings = Settings()
    settings.store.db_path = str(blocker / "data.db")
    with pytest.raises(StoreError, match="--db :memory:"):
        install_features(Runtime(settings), "dashboard")


async def test_write_and_read_api_through_a_running_runtime(tmp_path: Path) -> None:
    settings = Settings()
    settings.store.db_path = str(tmp_path / "live.db")
    runtime = Runtime(settings)
    feature = attached_store(runtime)
    runtime.start()
    try:
        now = time.time()
        feature.upsert_host("192.0.2.1", name="gw.example", source="ptr")
        feature.upsert_host("192.0.2.1", geo={"country": "NL"}, source="ip-api")
        feature.record_dns("gw.example", client="192.0.2.5", answers=["192.0.2.1"], qtype="A")
        uid = feature.record_alert("port-scan", "scan from 192.0.2.9", src="192.0.2.9")
        feature.ack_alert(uid)
        feature.record_trace("gw.example", [{"ttl": 1, "ip": "192.0.2.1", "rtt_ms": 0.3}])
        feature.record_agent("branch-1", address="192.0.2.77", version="1.0")
        feature.record_flow(
            {"proto": "udp", "src": "192.0.2.5", "sport": 5353, "dst": "192.0.2.1",
             "dport": 53, "first_seen": now - 1, "last_seen": now, "duration": 1.0,
             "app": "dns"}
        )  # fmt: skip
        assert feature.cached("top_destinations", now - 60) is None  # nothing cached yet
        await feature.finish()

        hosts = await asyncio.to_thread(feature.load_hosts)
        assert hosts[0]["ip"] == "192.0.2.1" and hosts[0]["geo"] == {"country": "NL"}
        assert hosts[0]["names"][0]["name"] == "gw.example"
        assert feature.recent_dns(now - 60)[0]["answers"] == ["192.0.2.1"]
        (alert,) = feature.recent_alerts(now - 60)
        assert alert["uid"] == uid and alert["acked"] is True
        assert feature.trace_history("gw.example")[0]["hops"][0]["ip"] == "192.0.2.1"
        assert feature.agents()[0]["address"] == "192.0.2.77"
        assert feature.query_flows(now - 60)[0]["app"] == "dns"
        summary = feature.history_summary(now - 60)
        assert summary["flows"] == 1 and summary["oldest"] == pytest.approx(now - 1)
        deadline = time.monotonic() + 5
        while not feature.cached("top_destinations", now - 60, max_age=0.0):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert feature.cached("top_destinations", now - 60)[0]["dst"] == "192.0.2.1"
        assert not runtime.status_warnings
    finally:
        await runtime.stop()
    assert feature.writer.lost == 0


async def test_memory_database_feeds_readers(tmp_path: Path) -> None:
    settings = Settings()
    settings.store.db_path = ":memory:"
    runtime = Runtime(settings)
    feature = attached_store(runtime, "agent")
    runtime.start()
    try:
        feature.upsert_host("192.0.2.3", name="m.example", source="dns")
        await feature.finish()
        assert feature.load_hosts()[0]["names"][0]["name"] == "m.example"
    finally:
        await runtime.stop()


async def test_rows_flushed_by_other_services_while_closing_are_written(tmp_path: Path) -> None:
    settings = offline_settings()
    settings.store.db_path = str(tmp_path / "order.db")
    runtime = Runtime(settings)
    feature = attached_store(runtime)

    class FlushesOnClose:
        """A later feature's service that hands its last rows over when it closes."""

        name = "late"

        async def run(self) -> None:
            await asyncio.Event().wait()

        async def close(self) -> None:
            feature.record_alert("shutdown", "written while closing", uid="last")

    runtime.add_service(FlushesOnClose())
    runtime.start()
    await asyncio.sleep(0.05)
    await runtime.stop()
    assert feature.writer.lost == 0
    conn = sqlite3.connect(settings.store.db_path)
    assert conn.execute("SELECT uid FROM alerts").fetchall() == [("last",)]
    conn.close()
    feature.record_alert("too late", "after the writer stopped")
    assert feature.writer.lost == 1


async def test_panel_lines_come_from_background_reads(tmp_path: Path) -> None:
    settings = offline_settings()
    settings.store.db_path = str(tmp_path / "lines.db")
    runtime = Runtime(settings)
    assert destinations_history_line(runtime) == stats_history_line(runtime) == ""  # no store
    feature = attached_store(runtime)
    runtime.start()
    try:
        now = time.time()
        for i, dst in enumerate(["198.51.100.1", "198.51.100.2", "198.51.100.2"]):
            feature.record_flow(
                {"proto": "tcp", "src": "192.0.2.1", "sport": 1000 + i, "dst": dst,
                 "dport": 443, "bytes_fwd": 1500, "bytes_rev": 500_000,
                 "first_seen": now - 40 * 86400 if i == 0 else now - 60, "last_seen": now - 50}
            )  # fmt: skip
        await feature.finish()
        deadline = time.monotonic() + 10
        # Two background queries (the summary, the top destination) answer in either order:
        # wait for the line that holds both.
        while not (
            "most bytes" in destinations_history_line(runtime) and stats_history_line(runtime)
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert destinations_history_line(runtime) == (
            "stored 24h: 2 destinations, 3 flows; most bytes: 198.51.100.2 (1.0 MB)"
        )
        day = time.strftime("%Y-%m-%d", time.localtime(now - 40 * 86400))
        assert stats_history_line(runtime) == (
            f"stored 24h: 3 flows, 1.5 MB, 1 sources, 2 destinations; history since {day}"
        )
    finally:
        await runtime.stop()


async def test_flows_still_active_at_exit_are_stored(tmp_path: Path) -> None:
    from packettracer.capture.pcapfile import CaptureReader

    settings = offline_settings()
    settings.store.db_path = str(tmp_path / "exit.db")
    runtime = Runtime(settings)
    attached_store(runtime)
    runtime.start()
    with CaptureReader(str(SCAN)) as reader:
        runtime.pipeline.feed(list(reader))  # a live capture, stopped while flows are active
    active = len(runtime.pipeline.flows)
    ended = runtime.pipeline.flows.ended
    assert active > 0
    await runtime.stop()
    conn = sqlite3.connect(settings.store.db_path)
    reasons = dict(conn.execute("SELECT end_reason, count(*) FROM flows GROUP BY 1").fetchall())
    conn.close()
    assert reasons.pop("exit") == active
    assert sum(reasons.values()) == ended
