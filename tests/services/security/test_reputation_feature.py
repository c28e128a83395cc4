"""Blocklists from a folder: loading, reload on change, and matches raised as alerts (and flows
marked) when a capture goes through the runtime."""

from __future__ import annotations

import os
from pathlib import Path

from packettracer.config import Settings
from packettracer.services.blocklists import BlocklistService
from packettracer.services.report import analyze_file
from tests.conftest import DATA


def test_folder_load_reload_and_removal(tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    service = BlocklistService(str(folder))
    assert service.scan() == [] and len(service.db) == 0  # no folder: no lists, no error
    folder.mkdir()
    (folder / "firehol_level1.netset").write_text("# FireHOL\n5.188.10.0/23\n")
    (folder / ".hidden").write_text("1.1.1.1\n")
    assert service.scan() == ["firehol_level1"]
    assert service.db.lookup("5.188.11.1") is not None
    assert service.scan() == []  # unchanged: not read again
    path = folder / "firehol_level1.netset"
    path.write_text("# FireHOL\n5.188.10.0/23\n9.9.9.9\n")
    os.utime(path, (1, 1))
    assert service.scan() == ["firehol_level1"]
    assert service.db.lookup("9.9.9.9") is not None
    path.unlink()
    assert service.scan() == ["firehol_level1"]
    assert service.db.lookup("9.9.9.9") is None


def test_listed_host_raises_alert_and_marks_flows(tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "drop.txt").write_text("; Spamhaus DROP\n192.168.1.0/30 ; SBL999\n")
    settings = Settings()
    settings.security.blocklist_dir = str(folder)
    result = analyze_file(str(DATA / "tcp_scan.pcapng"), settings)
    hits = [a for a in result.extra["alerts"] if a["kind"] == "reputation.blocklist"]
    assert len(hits) == 1
    hit = hits[0]
    assert hit["entities"] == {"host": "192.168.1.2", "list": "drop"}
    assert hit["severity"] == "high" and hit["evidence"]["note"] == "SBL999"
    assert hit["evidence"]["network"] == "192.168.1.0/30"
    assert hit["count"] >= 7  # one per new flow to the host, deduplicated into one alert
    marked = [f for f in result.flows if f.get("threat") == "drop"]
    assert marked and all("192.168.1.2" in (f["src"], f["dst"]) for f in marked)
