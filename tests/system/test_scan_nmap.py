"""Real nmap scans between two network namespaces this test creates; the target side captures
with tcpdump, and the capture goes through the full runtime (the same path as `report`)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.report import analyze_file
from tests.conftest import is_root

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)


class NsPair:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.a = f"ptscanA{tag}"
        self.b = f"ptscanB{tag}"
        self.veth_a = f"psa{tag}"
        self.veth_b = f"psb{tag}"
        n = int(tag[:2], 16) % 200 + 20
        self.addr_a = f"10.231.{n}.1"
        self.addr_b = f"10.231.{n}.2"
        # Sweep targets: a subnet routed through B, so A's probes reach B's capture.
        self.sweep_net = f"10.232.{n}.0/28"

    def up(self) -> None:
        _run("ip", "netns", "add", self.a)
        _run("ip", "netns", "add", self.b)
        _run(
            "ip",
            "link",
            "add",
            self.veth_a,
            "netns",
            self.a,
            "type",
            "veth",
            "peer",
            "name",
            self.veth_b,
            "netns",
            self.b,
        )
        for ns, dev, addr in (
            (self.a, self.veth_a, self.addr_a),
            (self.b, self.veth_b, self.addr_b),
        ):
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", self.a, "route", "add", self.sweep_net, "via", self.addr_b)

    def down(self) -> None:
        for ns in (self.a, self.b):
            _run("ip", "netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def nspair() -> Iterator[NsPair]:
    if not is_root():
        pytest.skip("needs root to create network namespaces")
    for tool in ("nmap", "tcpdump", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh test)")
    pair = NsPair()
    try:
        pair.up()
    except subprocess.CalledProcessError as exc:
        pair.down()
        pytest.skip(f"cannot create network namespaces: {exc.stderr.strip()}")
    # Two open ports on the target, so scans find something open.
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            pair.b,
            sys.executable,
            "-c",
            "import socket,time\n"
            "s=[socket.create_server(('0.0.0.0',p)) for p in (22,80)]\n"
            "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.bind(('0.0.0.0',53))\n"
            "print('ready',flush=True)\n"
            "time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    try:
        yield pair
    finally:
        server.kill()
        server.wait()
        pair.down()


def _capture(pair: NsPair, tmp: Path, nmap_args: list[str]) -> Path:
    pcap = tmp / "scan.pcap"
    dump = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            pair.b,
            "tcpdump",
            "--immediate-mode",
            "-B",
            "32768",
            "-i",
            pair.veth_b,
            "-n",
            "-U",
            "-w",
            str(pcap),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert dump.stderr is not None
        line = dump.stderr.readline()  # "listening on ..." once the capture runs
        assert "listening" in line, line
        time.sleep(0.5)
        proc = _run(
            "ip",
            "netns",
            "exec",
            pair.a,
            "nmap",
            "-n",
            "-T5",
            "--max-retries",
            "0",
            *nmap_args,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        # tcpdump writes each packet as it reads it (-U): stop once the file no longer grows.
        size, deadline = -1, time.monotonic() + 10
        while pcap.stat().st_size != size and time.monotonic() < deadline:
            size = pcap.stat().st_size
            time.sleep(0.3)
    finally:
        dump.send_signal(signal.SIGINT)
        _, err = dump.communicate(timeout=10)
    # A capture that lost packets would make the assertions below meaningless.
    assert "\n0 packets dropped by kernel" in err, err
    return pcap


SCANS = [
    ("syn", ["-Pn", "-sS", "-p", "1-100"], "TCP SYN", "vertical"),
    ("connect", ["-Pn", "-sT", "-p", "1-100"], "TCP connect", "vertical"),
    ("fin", ["-Pn", "-sF", "-p", "1-40"], "TCP FIN", "vertical"),
    ("null", ["-Pn", "-sN", "-p", "1-40"], "TCP NULL", "vertical"),
    ("xmas", ["-Pn", "-sX", "-p", "1-40"], "TCP XMAS", "vertical"),
    ("udp", ["-Pn", "-sU", "-p", "20-60"], "UDP", "vertical"),
]


@pytest.mark.parametrize(("name", "args", "technique", "shape"), SCANS, ids=[s[0] for s in SCANS])
def test_nmap_scan_detected(
    nspair: NsPair, tmp_path: Path, name: str, args: list[str], technique: str, shape: str
) -> None:
    pcap = _capture(nspair, tmp_path, [*args, nspair.addr_b])
    result = analyze_file(str(pcap), Settings())
    scans = [a for a in result.extra["alerts"] if a["kind"].startswith("scan.")]
    assert scans, f"no scan alert for nmap {name}"
    ev = scans[0]["evidence"]
    assert ev["scanner"] == nspair.addr_a
    assert ev["targets"] == [nspair.addr_b]
    assert ev["technique"] == technique
    assert ev["shape"] == shape
    assert scans[0]["kind"] == f"scan.{shape}"
    if name in ("syn", "connect"):
        assert {f"{nspair.addr_b}:22", f"{nspair.addr_b}:80"} <= set(ev["open_ports"])
        assert ev["port_count"] == 100 and ev["ports"] == "1-100"


def test_nmap_ping_sweep_detected(nspair: NsPair, tmp_path: Path) -> None:
    pcap = _capture(nspair, tmp_path, ["-sn", nspair.sweep_net])
    result = analyze_file(str(pcap), Settings())
    scans = [a for a in result.extra["alerts"] if a["kind"].startswith("scan.")]
    assert [a["kind"] for a in scans] == ["scan.sweep"]
    ev = scans[0]["evidence"]
    assert ev["technique"] == "ICMP sweep"
    assert ev["scanner"] == nspair.addr_a
    assert ev["target_count"] >= 14
