"""`packettracer trace` as a subprocess: usage errors, the raw-socket permission message, and a
real trace over loopback (IPv4 and IPv6)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import is_root, packettracer_cmd


def run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    # -n: in the host's namespace no reverse lookups may leave the machine.
    return subprocess.run(
        [*prefix, *packettracer_cmd(), "trace", "--no-history", "-n", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.1", "--proto", "sctp"], "invalid choice: 'sctp'"),
        (["127.0.0.1", "--rounds", "0"], "--rounds must be at least 1"),
        (["127.0.0.1", "--max-ttl", "300"], "max TTL must be 1..255"),
        (["127.0.0.1", "--proto", "tcp", "--port", "70000"], "port must be 1..65535"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_raw_socket_permission_says_so() -> None:
    if not is_root():
        pytest.skip("needs root to drop to an unprivileged user")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    nobody = (
        setpriv,
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    )
    result = run("127.0.0.1", prefix=nobody)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "packettracer: error: tracing needs raw sockets: run as root or grant CAP_NET_RAW"
    )


def test_dashboard_without_permission_keeps_working(data_dir: Path) -> None:
    if not is_root():
        pytest.skip("needs root to drop to an unprivileged user")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    # pytest's tmp_path is private to root: the unprivileged user writes here instead.
    with tempfile.TemporaryDirectory(prefix="pt-trace-") as tmp:
        Path(tmp).chmod(0o777)
        result, svg = _snapshot_as_nobody(setpriv, Path(tmp), data_dir)
    assert result.returncode == 0, result.stderr
    assert "tracing needs raw sockets: run as root or grant CAP_NET_RAW" in svg
    assert "Traceback" not in result.stderr


def _snapshot_as_nobody(
    setpriv: str, tmp_path: Path, data_dir: Path
) -> tuple[subprocess.CompletedProcess[str], str]:
    out = tmp_path / "paths.svg"
    result = subprocess.run(
        [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            *packettracer_cmd(),
            "--snapshot",
            str(out),
            "--panel",
            "2",
            "-t",
            "127.0.0.1",
            "-r",
            str(data_dir / "5-pings.pcap"),
            "--db",
            ":memory:",
            "-n",
            "--offline",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path), "PACKETTRACER_HOME": str(tmp_path / "home")},
    )
    svg = out.read_text().replace("&#160;", " ") if out.exists() else ""
    return result, svg


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("proto", ["icmp", "udp", "tcp"])
def test_loopback_trace(target: str, proto: str) -> None:
    if not is_root():
        pytest.skip("needs root (raw sockets)")
    result = run(target, "--proto", proto, "--rounds", "2", "--format", "json", "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)["targets"][0]
    assert [h["address"] for h in doc["hops"]] == [target]
    hop = doc["hops"][0]
    assert hop["destination"] and hop["received"] == hop["sent"] == 6
    assert doc["rounds"] == 2 and doc["reached"]


def test_ipv6_icmp_probes_keep_identifier_and_checksum() -> None:
    """Paris over IPv6: the kernel computes the ICMPv6 checksum, and the two payload bytes the
    tracer chose keep it constant from probe to probe."""
    if not is_root():
        pytest.skip("needs root (raw sockets)")
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x86DD))
    sniffer.bind(("lo", 0x86DD))
    sniffer.settimeout(0.05)
    result = run("::1", "--rounds", "2", "--probes", "3", "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    echoes: set[tuple[int, int, int]] = set()
    while True:
        try:
            frame = sniffer.recv(65535)
        except TimeoutError:
            break
        if frame[6] == 58 and frame[40] == 128:  # ICMPv6 echo request
            _, _, csum, ident, seq = struct.unpack_from("!BBHHH", frame, 40)
            echoes.add((ident, csum, seq))  # a set: lo may show a packet leaving and arriving
    sniffer.close()
    assert len(echoes) == 6
    assert len({(ident, csum) for ident, csum, _ in echoes}) == 1
    assert len({seq for _, _, seq in echoes}) == 6
