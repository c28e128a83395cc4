"""`packettracer report` end to end, as a subprocess of the installed command: output formats and
their fields, BPF filters, and every bad input ending as one line and the right exit status,
never a traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
EXE = ROOT / ".venv" / "bin" / "packettracer"


def run(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not EXE.exists():
        pytest.skip("the packettracer command is not installed in .venv (run make setup)")
    env = dict(os.environ)
    if home is not None:
        env["HOME"] = str(home)
        env["PACKETTRACER_HOME"] = str(home / ".packettracer")
    proc = subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert "Traceback" not in proc.stderr
    return proc


def report_json(*args: str) -> dict[str, Any]:
    proc = run("report", *args, "--format", "json", "-n", "--offline")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def one_line(proc: subprocess.CompletedProcess[str], status: int) -> str:
    assert proc.returncode == status
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("packettracer")
    return lines[0]


FLOW_TYPES: dict[str, type | tuple[type, ...]] = {
    "proto": str,
    "src": str,
    "sport": int,
    "dst": str,
    "dport": int,
    "packets_fwd": int,
    "packets_rev": int,
    "bytes_fwd": int,
    "bytes_rev": int,
    "first_seen": float,
    "last_seen": float,
    "tcp_state": (str, type(None)),
}
SUMMARY_TYPES: dict[str, type | tuple[type, ...]] = {
    "packets": int,
    "bytes": int,
    "flows": int,
    "malformed": int,
    "skipped_linktype": int,
    "duration": (int, float),
}


def test_json_shape_fields_and_types() -> None:
    data = report_json("-r", str(DATA / "dns_tcp.pcap"))
    assert set(data) >= {"summary", "flows"}
    summary, flows = data["summary"], data["flows"]
    for key, kind in SUMMARY_TYPES.items():
        assert isinstance(summary[key], kind), key
    for flow in flows:
        for key, kind in FLOW_TYPES.items():
            assert isinstance(flow[key], kind), key
        assert flow["proto"] in ("tcp", "udp", "icmp", "icmp6", "other")
        assert flow["first_seen"] <= flow["last_seen"]
        assert flow["first_seen"] > 1e9  # epoch seconds, not relative time
    # tshark: 11 frames, one TCP conversation from 127.0.0.1:41138 (the SYN sender)
    assert (summary["packets"], summary["flows"], summary["malformed"]) == (11, 1, 0)
    (flow,) = flows
    assert (flow["proto"], flow["dport"], flow["tcp_state"]) == ("tcp", 53, "closed")
    assert flow["packets_fwd"] + flow["packets_rev"] == 11
    assert summary["bytes"] == flow["bytes_fwd"] + flow["bytes_rev"]


def test_csv_and_table_carry_the_same_flows() -> None:
    proc = run("report", "-r", str(DATA / "dns_fragmented.pcap"), "--format", "csv", "-n")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    # tshark: 19 UDP and 2 TCP conversations
    assert sorted(r["proto"] for r in rows) == ["tcp"] * 2 + ["udp"] * 19
    assert list(rows[0])[:5] == ["proto", "src", "sport", "dst", "dport"]
    table = run("report", "-r", str(DATA / "dns_fragmented.pcap"), "--format", "table", "-n")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["proto", "src", "sport", "dst", "dport"]
    assert sum(1 for line in lines if line.startswith(("udp ", "tcp "))) == 21
    assert any(line.split(":")[0].strip() == "flows" for line in lines)


def test_bpf_filter_keeps_only_matching_packets() -> None:
    icmp = report_json("-r", str(DATA / "icmp_dot1q.pcap"), "-f", "vlan and icmp")
    # tshark: 15 frames, 9 of them ICMP echo requests and replies; the ARP frames are filtered.
    assert icmp["summary"]["packets"] == 9
    assert icmp["summary"]["filtered"] == 6
    assert {f["proto"] for f in icmp["flows"]} == {"icmp"}
    udp = report_json("-r", str(DATA / "dns.pcap"), "-f", "udp port 53 and host 192.168.170.8")
    assert [(f["src"], f["dst"]) for f in udp["flows"]] == [("192.168.170.20", "192.168.170.8")]


def test_bad_bpf_is_one_line_exit_2() -> None:
    proc = run("report", "-r", str(DATA / "dns.pcap"), "-f", "port 53 and")
    assert "BPF" in one_line(proc, 2)
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("missing.pcap", "no such file"),
        ("README.md", "not a pcap or pcapng capture"),
    ],
)
def test_unusable_file_is_one_line_exit_1(target: str, words: str) -> None:
    proc = run("report", "-r", target)
    assert words in one_line(proc, 1)
    assert proc.stdout == ""


def test_empty_and_unreadable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert "empty file" in one_line(run("report", "-r", str(empty)), 1)
    if os.geteuid() == 0:
        return  # root reads any file; the unit tests cover permission errors as a user
    locked = tmp_path / "locked.pcap"
    locked.write_bytes((DATA / "dns.pcap").read_bytes())
    locked.chmod(0)
    assert "permission denied" in one_line(run("report", "-r", str(locked)), 1)


def test_truncated_capture_warns_and_reports_the_packets_before_the_break() -> None:
    proc = run("report", "-r", str(DATA / "truncated_dns_2.pcap"), "--format", "json", "-n")
    assert proc.returncode == 0
    warning = one_line(proc, 0)
    assert "warning" in warning and "byte 240" in warning and "after 1 packets" in warning
    data = json.loads(proc.stdout)
    assert data["summary"]["packets"] == 1 and data["summary"]["truncated_at"] == 240
    assert len(data["flows"]) == 1


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[flows]\nmax_flow = 3\n", "unknown key 'max_flow'"),
        ("[flows\n", "config file"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path: Path, content: str, words: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    proc = run("report", "-r", str(DATA / "dns.pcap"), "--config", str(config))
    assert words in one_line(proc, 2)


def test_config_file_settings_apply(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[flows]\nmax_flows = 2\n")
    proc = run(
        "report",
        "-r",
        str(DATA / "dns_fragmented.pcap"),
        "--config",
        str(config),
        "--format",
        "json",
        "-n",
    )
    assert proc.returncode == 0
    summary = json.loads(proc.stdout)["summary"]
    assert summary["flows"] == 21 and summary["flows_evicted"] >= 10


def test_usage_errors_exit_2() -> None:
    assert "invalid choice" in one_line(run("report", "-r", "x", "--format", "xml"), 2)


def test_version_and_help() -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("packettracer ")
    helptext = run("report", "--help")
    assert helptext.returncode == 0
    for option in ("-r FILE", "--format", "-f BPF", "--config"):
        assert option in helptext.stdout
