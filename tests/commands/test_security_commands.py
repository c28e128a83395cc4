"""`packettracer alerts` and `packettracer blocklists`, run as the installed command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.report import analyze_file_async
from tests.conftest import DATA, packettracer_cmd


def pt(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PACKETTRACER_HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*packettracer_cmd(), *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_report_alerts_are_listed_by_the_alerts_command(tmp_path: Path) -> None:
    db = tmp_path / "pt.db"
    settings = Settings()
    settings.store.db_path = str(db)
    settings.security.blocklist_dir = str(tmp_path / "none")
    result = asyncio.run(analyze_file_async(str(DATA / "tcp_scan.pcapng"), settings))
    assert [a["kind"] for a in result.extra["alerts"]] == ["scan.vertical"]

    proc = pt("alerts", "--db", str(db), "--since", "2000-01-01", "--format", "json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (alert,) = json.loads(proc.stdout)["alerts"]
    assert alert["kind"] == "scan.vertical" and alert["evidence"]["scanner"] == "192.168.1.178"
    table = pt("alerts", "--db", str(db), "--since", "2000-01-01", home=tmp_path)
    assert "scan.vertical" in table.stdout and "medium" in table.stdout
    none = pt("alerts", "--db", str(db), "--since", "2000-01-01", "--state", "acked", home=tmp_path)
    assert none.returncode == 0 and "no alerts" in none.stderr
    high = pt(
        "alerts", "--db", str(db), "--since", "2000-01-01", "--severity", "high", home=tmp_path
    )
    assert "scan.vertical" not in high.stdout


def test_alerts_without_database_is_one_line(tmp_path: Path) -> None:
    proc = pt("alerts", "--db", str(tmp_path / "missing.db"), home=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no such file" in proc.stderr


@pytest.fixture
def list_server(tmp_path: Path) -> Iterator[str]:
    served = tmp_path / "www"
    served.mkdir()
    (served / "drop.txt").write_text(
        "; Spamhaus DROP\n1.10.16.0/20 ; SBL256894\n2.57.122.0/24 ; SBL1\n"
    )
    (served / "tor-exits").write_text("ExitNode X\nExitAddress 185.220.101.1 2024-01-01 11:02:42\n")
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_blocklists_update_and_list(tmp_path: Path, list_server: str) -> None:
    folder = tmp_path / "lists"
    proc = pt(
        "blocklists",
        "update",
        "--dir",
        str(folder),
        "--url",
        f"{list_server}/drop.txt",
        "--url",
        f"{list_server}/tor-exits",
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "drop.txt: 2 entries" in proc.stdout and "tor-exits: 1 entries" in proc.stdout
    assert (folder / "drop.txt").exists()
    listing = pt("blocklists", "--dir", str(folder), home=tmp_path)
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:2] == ["drop", "2"] and lines[1].split()[:2] == ["tor-exits", "1"]


def test_blocklists_update_offline_is_one_clear_line(tmp_path: Path) -> None:
    folder = str(tmp_path / "lists")
    # nothing listens on the discard port: what "offline" looks like
    proc = pt(
        "blocklists",
        "update",
        "--dir",
        folder,
        "--url",
        "http://127.0.0.1:9/drop.txt",
        home=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "could not fetch any list" in proc.stderr
    assert "offline?" in proc.stderr
    flag = pt(
        "blocklists", "update", "--offline", "--dir", folder, "--url", "http://x/y", home=tmp_path
    )
    assert flag.returncode == 1 and "offline mode" in flag.stderr
    none = pt("blocklists", "update", "--dir", folder, home=tmp_path)
    assert none.returncode == 2 and "no list URLs configured" in none.stderr


def test_bad_threshold_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[security]\nfailed_ratio = 1.5\n")
    proc = pt("report", "-r", str(DATA / "tcp_scan.pcapng"), "--config", str(config), home=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "failed_ratio must be between 0 and 1" in proc.stderr
