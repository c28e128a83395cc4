"""`packettracer --snapshot` end to end, as a subprocess with no terminal: the SVG it writes, and
every bad input ending as one line on stderr with the right exit status, never a traceback."""

from __future__ import annotations

import html
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "android.pcap"
EXE = ROOT / ".venv" / "bin" / "packettracer"


def run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if not EXE.exists():
        pytest.skip("the packettracer command is not installed in .venv (run make setup)")
    environ = dict(os.environ)
    # A home of its own: nothing read from or written to the user's ~/.packettracer.
    environ["HOME"] = str(tmp_path)
    environ["PACKETTRACER_HOME"] = str(tmp_path / ".packettracer")
    environ.update(env or {})
    proc = subprocess.run(
        [str(EXE), *args, "--db", ":memory:", "-n", "--offline"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def svg_text(path: Path) -> str:
    """The characters on the screen, row after row (SVG text nodes, unescaped)."""
    svg = path.read_text(encoding="utf-8")
    nodes = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    return html.unescape("".join(nodes)).replace("\xa0", " ")


def svg_lines(path: Path) -> list[str]:
    """The screen's rows, top to bottom."""
    rows: dict[float, list[str]] = {}
    svg = path.read_text(encoding="utf-8")
    for match in re.finditer(r'<text[^>]*\by="([\d.]+)"[^>]*>([^<]*)</text>', svg):
        rows.setdefault(float(match.group(1)), []).append(match.group(2))
    return [html.unescape("".join(rows[y])).replace("\xa0", " ") for y in sorted(rows)]


def one_line_error(proc: subprocess.CompletedProcess[str], status: int, words: str) -> None:
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert words in lines[0], lines[0]


def test_snapshot_of_the_traffic_panel_from_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out.svg"
    proc = run(
        tmp_path,
        "--snapshot",
        str(out),
        "-r",
        str(FIXTURE),
        "--panel",
        "1",
        "--size",
        "100x30",
        env={"PACKETTRACER_FIXED_CLOCK": "1700000000"},
    )
    assert proc.returncode == 0, proc.stderr
    svg = out.read_text(encoding="utf-8")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    text = svg_text(out)
    assert "android.pcap" in text and "done" in text
    assert "flows 65" in text and "pkts 500" in text and "00:00:00" in text
    # the biggest flow of the capture (13.8 KB) is the first row by the default sort (bytes);
    # the columns features add (names, countries, ...) come after the ports
    lines = svg_lines(out)
    header = next(i for i, line in enumerate(lines) if "Proto" in line)
    assert "Destination" in lines[header]
    first = lines[header + 1].split()
    assert first[:5] == ["tcp", "192.168.2.16", "32996", "216.239.38.120", "443"], first


def test_snapshot_by_panel_name_with_a_filter_and_a_theme(tmp_path: Path) -> None:
    out = tmp_path / "udp.svg"
    proc = run(
        tmp_path,
        "--snapshot",
        str(out),
        "-r",
        str(FIXTURE),
        "--panel",
        "Traffic",
        "-f",
        "udp",
        "--theme",
        "textual-light",
        "--size",
        "120x40",
    )
    assert proc.returncode == 0, proc.stderr
    text = svg_text(out)
    assert "filter udp" in text
    assert "flows 31" in text  # the report counts 31 UDP flows in this capture
    rows = [line for line in re.findall(r" (tcp|udp|icmp6|arp) {2,}", text)]
    assert rows and set(rows) == {"udp"}
    # textual-light paints a light background
    assert (
        "#e0e0e0" in out.read_text(encoding="utf-8").lower()
        or "#ffffff" in out.read_text(encoding="utf-8").lower()
    )


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        (["--panel", "bogus"], 2, "unknown panel 'bogus'"),
        (["--panel", "1", "--size", "100"], 2, "expected WIDTHxHEIGHT"),
        (["--size", "5x5"], 2, "width must be"),
        (["--theme", "no-such-theme"], 2, "unknown theme 'no-such-theme'"),
        (["-f", "tcp port"], 2, "invalid BPF filter"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], status: int, words: str) -> None:
    out = tmp_path / "x.svg"
    proc = run(tmp_path, "--snapshot", str(out), "-r", str(FIXTURE), *args)
    one_line_error(proc, status, words)
    assert not out.exists()


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "x.svg"
    proc = run(tmp_path, "--snapshot", str(out), "-r", str(tmp_path / "missing.pcap"))
    one_line_error(proc, 1, "missing.pcap")
    assert not out.exists()


def test_snapshot_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    proc = run(tmp_path, "--snapshot", str(tmp_path / "nope" / "x.svg"), "-r", str(FIXTURE))
    one_line_error(proc, 2, "does not exist")


def test_bad_dashboard_settings_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[ui]\nrefresh_interval = 0\n", encoding="utf-8")
    proc = run(
        tmp_path, "--snapshot", str(tmp_path / "x.svg"), "-r", str(FIXTURE), "--config", str(config)
    )
    one_line_error(proc, 2, "refresh_interval")
    config.write_text('[ui]\ntheme = "no-such-theme"\n', encoding="utf-8")
    proc = run(
        tmp_path, "--snapshot", str(tmp_path / "x.svg"), "-r", str(FIXTURE), "--config", str(config)
    )
    one_line_error(proc, 2, "unknown theme")


def test_bad_fixed_clock_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "x.svg"
    proc = run(
        tmp_path,
        "--snapshot",
        str(out),
        "-r",
        str(FIXTURE),
        env={"PACKETTRACER_FIXED_CLOCK": "noon"},
    )
    one_line_error(proc, 2, "PACKETTRACER_FIXED_CLOCK")


def test_snapshot_of_a_live_capture_on_loopback(tmp_path: Path) -> None:
    """Captures `lo` for --duration seconds while this test sends UDP datagrams to a port of its
    own; the screenshot shows that flow."""
    if os.geteuid() != 0:
        pytest.skip("live capture needs root (or CAP_NET_RAW)")
    if not EXE.exists():
        pytest.skip("the packettracer command is not installed in .venv (run make setup)")
    import socket
    import time

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out = tmp_path / "live.svg"
    environ = dict(os.environ, HOME=str(tmp_path), PACKETTRACER_HOME=str(tmp_path / ".pt"))
    proc = subprocess.Popen(
        [
            str(EXE),
            "--snapshot",
            str(out),
            "-i",
            "lo",
            "-f",
            f"udp port {port}",
            "--duration",
            "3",
            "--size",
            "140x30",
            "--db",
            ":memory:",
            "-n",
            "--offline",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=environ,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            sender.sendto(b"x" * 100, ("127.0.0.1", port))
            time.sleep(0.02)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        sender.close()
        receiver.close()
    assert "Traceback" not in stderr
    assert proc.returncode == 0, stderr
    text = svg_text(out)
    assert re.search(r"live\s*lo\b", text)  # styled words are separate SVG nodes
    assert f"filter udp port {port}" in text
    assert "127.0.0.1" in text and str(port) in text
    assert "flows 1" in text
