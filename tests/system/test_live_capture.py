"""Live capture as root: real UDP and TCP traffic on `lo` and between two network namespaces,
captured by each backend through the real CaptureService and Pipeline.

UDP counts are exact by construction (every datagram waits for its echo); TCP counts must equal
what the client's own kernel counted (TCP_INFO segments sent and received).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import is_root, packettracer_cmd
from system import live_peer
from system.live_capture_run import LiveCapture, live_settings
from system.live_netns import namespace, ns_pair, python_env

HERE = Path(__file__).resolve().parent
COUNT = 5
BACKENDS = ["afpacket", "scapy"]

needs_root = pytest.mark.skipif(not is_root(), reason="live capture needs root (raw sockets)")


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_flow(flows: list[dict[str, Any]], proto: str, port: int) -> dict[str, Any]:
    found = [f for f in flows if f["proto"] == proto and port in (f["sport"], f["dport"])]
    assert len(found) == 1, f"expected one {proto} flow on port {port}, got {found}"
    return found[0]


def assert_udp_exact(flow: dict[str, Any], src: str, dst: str, dport: int) -> None:
    assert (flow["src"], flow["dst"], flow["dport"]) == (src, dst, dport)
    assert flow["packets_fwd"] == COUNT, flow
    assert flow["packets_rev"] == COUNT, flow


def assert_tcp_segments(flow: dict[str, Any], segments: tuple[int, int], src: str) -> None:
    """The client's kernel counted `segments` (sent, received): the flow has exactly those."""
    assert flow["src"] == src
    assert (flow["packets_fwd"], flow["packets_rev"]) == tuple(segments), (flow, segments)
    # handshake + COUNT request/echo pairs + close: at least this many, whatever the ACK timing
    assert flow["packets_fwd"] + flow["packets_rev"] >= 2 * COUNT + 5
    assert flow["tcp_state"] == "closed"


# -- loopback ------------------------------------------------------------------------------------


def start_servers(udp_port: int, tcp_port: int) -> threading.Thread:
    thread = threading.Thread(
        target=live_peer.serve, args=("127.0.0.1", udp_port, tcp_port, COUNT), daemon=True
    )
    thread.start()
    return thread


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
async def test_loopback_udp_and_tcp_counted_once(backend: str) -> None:
    udp_port, tcp_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    capture = LiveCapture(live_settings("lo", backend))
    await capture.start()
    server = start_servers(udp_port, tcp_port)
    await asyncio.sleep(0.1)
    segments = await asyncio.to_thread(live_peer.send, "127.0.0.1", udp_port, tcp_port, COUNT)
    server.join(5)
    await capture.stop(sentinel_port=free_port(socket.SOCK_DGRAM))
    result = capture.result()
    assert result["dropped"] == 0
    udp = one_flow(result["flows"], "udp", udp_port)
    assert_udp_exact(udp, "127.0.0.1", "127.0.0.1", udp_port)
    tcp = one_flow(result["flows"], "tcp", tcp_port)
    assert_tcp_segments(tcp, segments, "127.0.0.1")
    assert tcp["dport"] == tcp_port


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
async def test_loopback_kernel_filter_keeps_only_matching(backend: str) -> None:
    udp_port, tcp_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    other_udp = free_port(socket.SOCK_DGRAM)
    capture = LiveCapture(live_settings("lo", backend, f"udp port {udp_port}"))
    await capture.start()
    server = start_servers(udp_port, tcp_port)
    other = threading.Thread(
        target=live_peer.udp_echo, args=("127.0.0.1", other_udp, COUNT), daemon=True
    )
    other.start()
    await asyncio.sleep(0.1)
    await asyncio.to_thread(live_peer.send, "127.0.0.1", udp_port, tcp_port, COUNT)
    await asyncio.to_thread(live_peer.udp_send, "127.0.0.1", other_udp, COUNT)
    server.join(5)
    other.join(5)
    await capture.stop()
    result = capture.result()
    assert len(result["flows"]) == 1, result["flows"]
    assert_udp_exact(result["flows"][0], "127.0.0.1", "127.0.0.1", udp_port)
    # The kernel dropped the rest before it reached us: nothing else was received at all.
    assert result["received"] == 2 * COUNT
    assert result["packets"] == 2 * COUNT


@needs_root
async def test_any_interface_is_cooked_and_counts_loopback_once() -> None:
    udp_port, tcp_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    capture = LiveCapture(live_settings("any", "afpacket", f"udp port {udp_port}"))
    assert capture.source.description == "any"
    assert getattr(capture.source, "linktype", None) == 113  # Linux cooked (SLL)
    await capture.start()
    server = start_servers(udp_port, tcp_port)
    await asyncio.sleep(0.1)
    await asyncio.to_thread(live_peer.send, "127.0.0.1", udp_port, tcp_port, COUNT)
    server.join(5)
    await capture.stop()
    result = capture.result()
    # the filter ran on the cooked (Linux SLL) frames in the capture thread
    assert len(result["flows"]) == 1, result["flows"]
    assert_udp_exact(result["flows"][0], "127.0.0.1", "127.0.0.1", udp_port)
    assert result["received"] == 2 * COUNT


PROMISC = """
import sys
from pathlib import Path
from packettracer.capture.live import open_live_source
from packettracer.capture.source import BatchQueue
from packettracer.config import Settings

def promisc() -> bool:
    return bool(int(Path(f"/sys/class/net/{sys.argv[1]}/flags").read_text(), 16) & 0x100)

settings = Settings()
settings.capture.interface = sys.argv[1]
settings.capture.backend = sys.argv[2]
settings.capture.promiscuous = sys.argv[3] == "1"
before = promisc()
source = open_live_source(settings)
source.start(BatchQueue(8))
during = promisc()
source.stop()
print(before, during, promisc())
"""


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_promiscuous_mode_is_optional_and_undone(backend: str) -> None:
    with ns_pair() as pair:
        runs = [
            subprocess.run(
                ["ip", "netns", "exec", pair.b, sys.executable, "-c", PROMISC]
                + [pair.veth_b, backend, flag],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.split()
            for flag in ("1", "0")
        ]
    assert runs == [["False", "True", "False"], ["False", "False", "False"]]


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
async def test_nothing_is_buffered_before_start(backend: str) -> None:
    """The source is opened (and checked) before the dashboard starts, which can take seconds;
    the ring must not fill with what passes meanwhile (the kernel would then drop)."""
    port = free_port(socket.SOCK_DGRAM)
    capture = LiveCapture(live_settings("lo", backend, f"udp port {port}"))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(COUNT):
        sender.sendto(b"before", ("127.0.0.1", port))
    await asyncio.sleep(0.2)
    await capture.start()
    for _ in range(COUNT):
        sender.sendto(b"after", ("127.0.0.1", port))
    sender.close()
    await capture.stop()
    result = capture.result()
    assert (result["received"], result["dropped"]) == (COUNT, 0)


# -- two namespaces --------------------------------------------------------------------------


def ns_capture(ns: str, iface: str, backend: str, bpf: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, str(HERE / "live_capture_run.py")]
        + [iface, backend, bpf],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"capture did not start: {line!r} {err}")
    return proc


def ns_exchange(pair: Any, udp_port: int, tcp_port: int) -> tuple[int, int]:
    """Servers in namespace b, the client in namespace a."""
    peer = str(HERE / "live_peer.py")
    args = [pair.ip_b, str(udp_port), str(tcp_port), str(COUNT)]
    server = subprocess.Popen(
        ["ip", "netns", "exec", pair.b, sys.executable, peer, "serve", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    client = subprocess.run(
        ["ip", "netns", "exec", pair.a, sys.executable, peer, "send", *args],
        check=True,
        timeout=30,
        capture_output=True,
        text=True,
    )
    server.wait(timeout=10)
    out, back = json.loads(client.stdout.strip().splitlines()[-1])["tcp_segments"]
    return int(out), int(back)


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate("stop\n", timeout=20)
    assert proc.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_namespace_pair_udp_and_tcp(backend: str) -> None:
    udp_port, tcp_port = 40053, 40080
    with ns_pair() as pair:
        capture = ns_capture(pair.b, pair.veth_b, backend, "")
        segments = ns_exchange(pair, udp_port, tcp_port)
        result = finish(capture)
    assert result["dropped"] == 0
    udp = one_flow(result["flows"], "udp", udp_port)
    assert_udp_exact(udp, pair.ip_a, pair.ip_b, udp_port)
    tcp = one_flow(result["flows"], "tcp", tcp_port)
    assert_tcp_segments(tcp, segments, pair.ip_a)
    # a asked for b's MAC before the first datagram: ARP is on the link too
    assert any(f.get("proto_name") == "arp" for f in result["flows"]), result["flows"]


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_namespace_pair_with_filter(backend: str) -> None:
    udp_port, tcp_port = 40153, 40180
    with ns_pair() as pair:
        capture = ns_capture(pair.b, pair.veth_b, backend, f"tcp port {tcp_port}")
        segments = ns_exchange(pair, udp_port, tcp_port)
        result = finish(capture)
    assert [f["proto"] for f in result["flows"]] == ["tcp"], result["flows"]
    assert_tcp_segments(result["flows"][0], segments, pair.ip_a)
    assert result["packets"] == result["received"] == sum(segments)


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_vlan_tags_are_put_back(backend: str) -> None:
    """The receiving kernel moves 802.1Q tags into packet metadata; the frames we hand on carry
    them again, so flows know their VLAN."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether

    udp_port = 40253
    with ns_pair() as pair:
        frame = bytes(
            Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
            / Dot1Q(vlan=100)
            / IP(src=pair.ip_a, dst=pair.ip_b)
            / UDP(sport=40254, dport=udp_port)
            / b"tagged"
        )
        capture = ns_capture(pair.b, pair.veth_b, backend, "vlan 100 and udp")
        code = (
            "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
            f"s.bind(({pair.veth_a!r}, 0))\n"
            f"for i in range({COUNT}): s.send(bytes.fromhex({frame.hex()!r}))"
        )
        subprocess.run(["ip", "netns", "exec", pair.a, sys.executable, "-c", code], check=True)
        result = finish(capture)
    flow = one_flow(result["flows"], "udp", udp_port)
    assert flow.get("vlan") == 100, flow
    assert (flow["src"], flow["dst"]) == (pair.ip_a, pair.ip_b)
    assert (flow["packets_fwd"], flow["packets_rev"]) == (COUNT, 0)
    assert flow["bytes_fwd"] == COUNT * len(frame)


TUN = """
import asyncio, fcntl, json, os, struct, subprocess, sys
from system.live_capture_run import LiveCapture, live_settings

async def main(packet: bytes, count: int) -> None:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    # TUNSETIFF, IFF_TUN | IFF_NO_PI: frames are bare IP packets
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"pttun0", 0x0001 | 0x1000))
    subprocess.run(["ip", "addr", "add", "10.199.77.1/24", "dev", "pttun0"], check=True)
    subprocess.run(["ip", "link", "set", "pttun0", "up"], check=True)
    capture = LiveCapture(live_settings("pttun0", "afpacket", "udp"))
    await capture.start()
    for _ in range(count):
        os.write(fd, packet)
    await capture.stop()
    print(json.dumps({"linktype": capture.source.linktype, **capture.result()}))

asyncio.run(main(bytes.fromhex(sys.argv[1]), int(sys.argv[2])))
"""


@needs_root
def test_tun_device_gives_raw_ip() -> None:
    if not Path("/dev/net/tun").exists():
        pytest.skip("/dev/net/tun is not available")
    from scapy.layers.inet import IP, UDP

    packet = bytes(IP(src="10.199.77.2", dst="10.199.77.1") / UDP(sport=40401, dport=40400) / b"x")
    env = {**python_env(), "PYTHONPATH": str(HERE.parent)}
    with namespace() as ns:
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", TUN, packet.hex(), str(COUNT)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["linktype"] == 101  # raw IP: a tun frame starts at the IP header
    flow = one_flow(result["flows"], "udp", 40400)
    assert (flow["src"], flow["dst"], flow["packets_fwd"]) == ("10.199.77.2", "10.199.77.1", COUNT)
    assert flow["bytes_fwd"] == COUNT * len(packet)


WATCH = """
import sys, time
from packettracer.capture.afpacket import AfPacketSource
from packettracer.capture.source import BatchQueue
source = AfPacketSource(sys.argv[1], "udp")
source.start(BatchQueue(64))
print("ready", flush=True)
expected = int(sys.stdin.readline())
deadline = time.monotonic() + 10
while source.received < expected and time.monotonic() < deadline:
    time.sleep(0.02)
time.sleep(0.1)  # and nothing more than expected comes
print(source.received, flush=True)
sys.stdin.readline()
deadline = time.monotonic() + 10
while not source.finished and time.monotonic() < deadline:
    time.sleep(0.02)
print(source.finished, source.error, flush=True)
source.stop()
"""


def udp_blast(pair: Any, port: int) -> None:
    code = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for i in range({COUNT}): s.sendto(b'x', ('{pair.ip_b}', {port}))"
    )
    subprocess.run(["ip", "netns", "exec", pair.a, sys.executable, "-c", code], check=True)


@needs_root
def test_interface_down_up_then_removed() -> None:
    with ns_pair() as pair:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", pair.b, sys.executable, "-c", WATCH, pair.veth_b],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        # down and up again: the capture carries on, without spinning or failing
        subprocess.run(["ip", "-n", pair.b, "link", "set", pair.veth_b, "down"], check=True)
        time.sleep(0.3)
        subprocess.run(["ip", "-n", pair.b, "link", "set", pair.veth_b, "up"], check=True)
        time.sleep(0.3)
        udp_blast(pair, 40999)
        proc.stdin.write(f"{COUNT}\n")  # how many to wait for
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == str(COUNT)
        # deleted: the source stops and says why
        subprocess.run(["ip", "-n", pair.a, "link", "del", pair.veth_a], check=True)
        out, _ = proc.communicate("next\n", timeout=20)
    assert out.strip() == f"True interface {pair.veth_b} went away"


@needs_root
def test_snapshot_of_live_capture(tmp_path: Path) -> None:
    """End to end: the command line captures live on lo (kernel filter) and draws the flow."""
    port = free_port(socket.SOCK_DGRAM)
    out = tmp_path / "live.svg"
    stop = threading.Event()

    def chatter() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not stop.is_set():
                sock.sendto(b"live", ("127.0.0.1", port))
                stop.wait(0.02)

    thread = threading.Thread(target=chatter, daemon=True)
    thread.start()
    try:
        proc = cli(
            "-i", "lo", "-f", f"udp port {port}", "--snapshot", str(out), "--duration", "2",
            "--db", ":memory:", "-n", "--offline",
        )  # fmt: skip
    finally:
        stop.set()
        thread.join()
    assert proc.returncode == 0, proc.stderr
    # the flow's port is drawn in the Traffic panel
    assert str(port) in out.read_text(encoding="utf-8")


# -- errors, one line each ---------------------------------------------------------------------


def cli(*args: str, prefix: tuple[str, ...] = (), **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *packettracer_cmd(), *args], capture_output=True, text=True, timeout=60, **kw
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_interface(backend: str) -> None:
    proc = cli("-i", "nosuch0", "--capture-backend", backend)
    assert_one_line(proc, 2, "unknown interface 'nosuch0'", "known:", "lo")


@pytest.mark.parametrize(
    ("backend", "expression", "reason"),
    [
        ("afpacket", "tcp port banana", "unknown port 'banana'"),
        ("scapy", "tcp and and udp", "syntax error"),
    ],
)
def test_bad_filter_has_libpcap_message(backend: str, expression: str, reason: str) -> None:
    proc = cli("-i", "lo", "-f", expression, "--capture-backend", backend)
    # libpcap's own words
    assert_one_line(proc, 2, f"invalid BPF filter {expression!r}", reason)


@needs_root
def test_interface_down() -> None:
    with namespace() as ns:
        subprocess.run(
            ["ip", "-n", ns, "link", "add", "ptdown0", "type", "veth", "peer", "name", "ptdown1"],
            check=True,
        )
        proc = cli("-i", "ptdown0", prefix=("ip", "netns", "exec", ns))
    assert_one_line(proc, 1, "interface ptdown0 is down", "ip link set ptdown0 up")


@needs_root
@pytest.mark.parametrize("backend", BACKENDS)
def test_not_root_says_how_to_fix(backend: str) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    proc = cli(
        "-i",
        "lo",
        "--capture-backend",
        backend,
        prefix=("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"),
        env=env,
        cwd="/",
    )
    assert_one_line(proc, 1, "no permission to capture on lo", "sudo", "setcap cap_net_raw", "-r")


def test_list_marks_the_default() -> None:
    proc = cli("--list")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0][:2] == ["#", "INTERFACE"]
    table = [r[1:] if r[0] == "*" else r for r in rows[1:] if r and r[0].lstrip("*").isdigit()]
    table += [r[1:] for r in rows[1:] if len(r) > 1 and r[0] == "*" and r[1].isdigit()]
    listed = {r[1] for r in table}
    # every interface `ip` knows is listed
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    assert listed == {link["ifname"] for link in links}
    marked = [r for r in rows if len(r) > 2 and r[0] == "*" and r[1].isdigit()]
    routes = json.loads(
        subprocess.run(
            ["ip", "-j", "route", "show", "default"], capture_output=True, text=True
        ).stdout
        or "[]"
    )
    if routes:
        # the interface of the default route, as `ip route` says, is the one marked
        assert len(marked) == 1 and marked[0][2] == routes[0]["dev"], proc.stdout
        assert f"default interface (used when -i is not given): {routes[0]['dev']}" in proc.stdout
    elif not marked:
        assert "no default interface" in proc.stdout
