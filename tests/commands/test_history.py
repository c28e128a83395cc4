"""`packettracer history` against a database filled by `packettracer report --db`."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import DATA

from packettracer.cli import main
from packettracer.commands.history import parse_since
from packettracer.errors import UsageError

SCAN = DATA / "tcp_scan.pcapng"
DNS_TCP = DATA / "dns_tcp.pcap"


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    """Two captures analyzed into one database; returns the path and the printed flows."""
    db = str(tmp_path_factory.mktemp("history") / "data.db")
    printed: list[dict] = []
    for capture in (SCAN, DNS_TCP):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(
                ["report", "-r", str(capture), "--db", db, "-n", "--offline"] + ["--format", "json"]
            )
        assert code == 0
        printed += json.loads(out.getvalue())["flows"]
    return db, printed


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["history", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_lists_every_stored_flow_like_the_report(filled_db, capsys) -> None:
    db, printed = filled_db
    code, out, _ = run_cli(capsys, "--db", db, "--since", "2000-01-01", "--format", "json")
    assert code == 0
    flows = json.loads(out)["flows"]
    key = ("src", "sport", "dst", "dport", "packets_fwd", "bytes_rev", "tcp_state")
    assert sorted(tuple(f[k] for k in key) for f in flows) == sorted(
        tuple(f[k] for k in key) for f in printed
    )
    assert [f["first_seen"] for f in flows] == sorted(f["first_seen"] for f in flows)


def test_host_filter_and_csv(filled_db, capsys) -> None:
    db, printed = filled_db
    host = "209.87.249.18"  # the DNS server of dns_tcp.pcap
    code, out, _ = run_cli(
        capsys, "--db", db, "--since", "2000-01-01", "--host", host, "--format", "csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = [f for f in printed if host in (f["src"], f["dst"])]
    assert len(rows) == len(expected) == 1
    assert rows[0]["dport"] == "53" and rows[0]["tcp_state"] == "closed"


def test_table_shows_start_times_and_limit(filled_db, capsys) -> None:
    db, printed = filled_db
    code, out, _ = run_cli(capsys, "--db", db, "--since", "2000-01-01", "--limit", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["start", "proto", "src"]
    assert len(lines) == 3
    newest = max(f["first_seen"] for f in printed)
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest)) in lines[-1]


def test_since_window_uses_stored_packet_times(filled_db, capsys) -> None:
    db, _ = filled_db
    # The captures are years old: the default window (1 day) holds none of their flows.
    code, out, err = run_cli(capsys, "--db", db)
    assert code == 0 and len(out.splitlines()) == 1
    assert "no flows" in err


def test_relative_and_absolute_times() -> None:
    now = 1_700_000_000.0
    assert parse_since("1h", now) == now - 3600
    assert parse_since("2d", now) == now - 2 * 86400
    assert parse_since("30m", now) == now - 1800
    assert parse_since("1w", now) == now - 7 * 86400
    assert parse_since("2023-11-14") == time.mktime((2023, 11, 14, 0, 0, 0, 0, 0, -1))
    assert parse_since("2023-11-14 22:13") == time.mktime((2023, 11, 14, 22, 13, 0, 0, 0, -1))
    with pytest.raises(UsageError, match="cannot read time"):
        parse_since("last tuesday")


def test_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "--db", str(tmp_path / "none.db"))
    assert code == 1 and "no such file" in err and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()
    code, _, err = run_cli(capsys, "--db", str(tmp_path / "x.db"), "--since", "soon")
    assert code == 2 and "cannot read time" in err and err.count("\n") == 1
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    code, _, err = run_cli(capsys, "--db", str(newer))
    assert code == 1 and "newer" in err and err.count("\n") == 1
