"""A routed test topology of network namespaces, for traceroute tests (needs root + iproute2).

Adapted from the shared netlab example (shared/netlab/topo.sh), in Python so that every test run
gets unique namespace names and is always torn down:

    A --- R1 ---[D: bridge, or the userspace delay line]--- R2 --- B
            \\                                              /
             `------------------- R3 ----------------------'

    A  eth0 10.201.1.2/24   fd01::2/64      gw R1
    R1 e-a 10.201.1.1   fd01::1   e-r2 10.201.12.1 fd12::1   e-r3 10.201.13.1 fd13::1
    R2 e-r1 10.201.12.2 fd12::2   e-b 10.201.2.1 fd02::1     e-r3 10.201.23.2 fd23::2
    R3 e-r1 10.201.13.3 fd13::3   e-r2 10.201.23.3 fd23::3
    B  eth0 10.201.2.2/24   fd02::2/64      gw R2

Routers answer from the interface a probe came in on (icmp_errors_use_inbound_ifaddr), so the
hop addresses along A -> B are 10.201.1.1, 10.201.12.2, 10.201.2.2 (via R2) and 10.201.1.1,
10.201.13.3, 10.201.23.2, 10.201.2.2 (via R3). R2 blackholes 10.201.3.0/24 and fd03::/64 (a
target that never answers).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
DELAYLINE = HERE / "delayline.py"
CLONE_NEWNET = 0x40000000
NODES = ("A", "R1", "R2", "R3", "B", "D")

A_V4, B_V4 = "10.201.1.2", "10.201.2.2"
A_V6, B_V6 = "fd01::2", "fd02::2"
PATH_VIA_R2 = ["10.201.1.1", "10.201.12.2", "10.201.2.2"]
PATH_VIA_R3 = ["10.201.1.1", "10.201.13.3", "10.201.23.2", "10.201.2.2"]
PATH_VIA_R2_V6 = ["fd01::1", "fd12::2", "fd02::2"]
BLACKHOLED_V4 = "10.201.3.5"
UNROUTED_V4 = "10.201.99.9"
"""R1 has no route for it: R1 answers network unreachable (!N)."""


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


class Topology:
    def __init__(self) -> None:
        self.prefix = "ptt" + uuid.uuid4().hex[:6]
        self._delay: subprocess.Popen[bytes] | None = None
        self._created: list[str] = []
        self._netns_etc: list[Path] = []

    def ns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def x(self, node: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", self.ns(node), *cmd, check=check)

    def _link(self, n1: str, if1: str, n2: str, if2: str) -> None:
        _run(
            "ip",
            "link",
            "add",
            if1,
            "netns",
            self.ns(n1),
            "type",
            "veth",
            "peer",
            "name",
            if2,
            "netns",
            self.ns(n2),
        )
        for node, ifname in ((n1, if1), (n2, if2)):
            # Offloads off: frames copied by the delay line must carry final checksums.
            self.x(
                node,
                "ethtool",
                "-K",
                ifname,
                "tx",
                "off",
                "tso",
                "off",
                "gso",
                "off",
                "gro",
                "off",
                check=False,
            )
            self.x(node, "ip", "link", "set", ifname, "up")

    def _addr(self, node: str, ifname: str, v4: str, v6: str) -> None:
        self.x(node, "ip", "addr", "add", v4, "dev", ifname)
        self.x(node, "ip", "-6", "addr", "add", v6, "dev", ifname, "nodad")

    def up(self) -> None:
        for node in NODES:
            _run("ip", "netns", "add", self.ns(node))
            self._created.append(node)
            self.x(node, "ip", "link", "set", "lo", "up")
            # Nothing listens on 127.0.0.1:53 inside: name lookups fail at once, and never
            # leave the namespaces (ip netns exec bind-mounts /etc/netns/NAME/resolv.conf).
            etc = Path("/etc/netns") / self.ns(node)
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            self._netns_etc.append(etc)
        self._link("A", "eth0", "R1", "e-a")
        self._link("R1", "e-r2", "D", "d1")
        self._link("D", "d2", "R2", "e-r1")
        self._link("R2", "e-b", "B", "eth0")
        self._link("R1", "e-r3", "R3", "e-r1")
        self._link("R3", "e-r2", "R2", "e-r3")
        self.x("D", "ip", "link", "add", "br0", "type", "bridge", "stp_state", "0")
        self.x("D", "ip", "link", "set", "d1", "master", "br0")
        self.x("D", "ip", "link", "set", "d2", "master", "br0")
        self.x("D", "ip", "link", "set", "br0", "up")
        self._addr("A", "eth0", "10.201.1.2/24", "fd01::2/64")
        self._addr("B", "eth0", "10.201.2.2/24", "fd02::2/64")
        self._addr("R1", "e-a", "10.201.1.1/24", "fd01::1/64")
        self._addr("R1", "e-r2", "10.201.12.1/24", "fd12::1/64")
        self._addr("R1", "e-r3", "10.201.13.1/24", "fd13::1/64")
        self._addr("R2", "e-r1", "10.201.12.2/24", "fd12::2/64")
        self._addr("R2", "e-b", "10.201.2.1/24", "fd02::1/64")
        self._addr("R2", "e-r3", "10.201.23.2/24", "fd23::2/64")
        self._addr("R3", "e-r1", "10.201.13.3/24", "fd13::3/64")
        self._addr("R3", "e-r2", "10.201.23.3/24", "fd23::3/64")
        self.x("A", "ip", "route", "add", "default", "via", "10.201.1.1")
        self.x("A", "ip", "-6", "route", "add", "default", "via", "fd01::1")
        self.x("B", "ip", "route", "add", "default", "via", "10.201.2.1")
        self.x("B", "ip", "-6", "route", "add", "default", "via", "fd02::1")
        for node in NODES:
            self.x(node, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
            self.x(node, "sysctl", "-qw", "net.ipv6.icmp.ratelimit=0")
        for router in ("R1", "R2", "R3"):
            for key in (
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                # Hop address = the interface the probe came in on, as on most real routers.
                "net.ipv4.icmp_errors_use_inbound_ifaddr=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ):
                self.x(router, "sysctl", "-qw", key)
            ifaces = self.x(router, "ls", "/sys/class/net").stdout.split()
            for ifname in ifaces:
                self.x(router, "sysctl", "-qw", f"net.ipv4.conf.{ifname}.rp_filter=0")
        routes = {
            "R1": [
                ("10.201.2.0/24", "10.201.12.2"),
                ("10.201.23.0/24", "10.201.13.3"),
                ("10.201.3.0/24", "10.201.12.2"),
                ("fd02::/64", "fd12::2"),
                ("fd23::/64", "fd13::3"),
                ("fd03::/64", "fd12::2"),
            ],
            "R2": [
                ("10.201.1.0/24", "10.201.12.1"),
                ("10.201.13.0/24", "10.201.23.3"),
                ("fd01::/64", "fd12::1"),
                ("fd13::/64", "fd23::3"),
            ],
            "R3": [
                ("10.201.1.0/24", "10.201.13.1"),
                ("10.201.2.0/24", "10.201.23.2"),
                ("10.201.12.0/24", "10.201.13.1"),
                ("fd01::/64", "fd13::1"),
                ("fd02::/64", "fd23::2"),
                ("fd12::/64", "fd13::1"),
            ],
        }
        for router, entries in routes.items():
            for prefix, via in entries:
                six = ["-6"] if ":" in prefix else []
                self.x(router, "ip", *six, "route", "add", prefix, "via", via)
        self.x("R2", "ip", "route", "add", "blackhole", "10.201.3.0/24")
        self.x("R2", "ip", "-6", "route", "add", "blackhole", "fd03::/64")

    def down(self) -> None:
        self.nodelay()
        for node in self._created:
            pids = _run("ip", "netns", "pids", self.ns(node), check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            _run("ip", "netns", "del", self.ns(node), check=False)
        self._created.clear()
        for etc in self._netns_etc:
            with contextlib.suppress(OSError):
                (etc / "resolv.conf").unlink()
                etc.rmdir()
        self._netns_etc.clear()

    # changes the tests make

    def delay(self, ms: float) -> None:
        """One-way delay on the R1 <-> R2 segment, both directions (RTT += 2 * ms)."""
        self.nodelay()
        for ifname in ("d1", "d2"):
            self.x("D", "ip", "link", "set", ifname, "nomaster")
            self.x("D", "ip", "link", "set", ifname, "promisc", "on")
        self._delay = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns("D"),
                sys.executable,
                str(DELAYLINE),
                "d1",
                "d2",
                str(ms),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        if self._delay.poll() is not None:
            raise RuntimeError("the delay line did not start")

    def nodelay(self) -> None:
        if self._delay is None:
            return
        self._delay.kill()
        self._delay.wait(5)
        self._delay = None
        for ifname in ("d1", "d2"):
            self.x("D", "ip", "link", "set", ifname, "master", "br0", check=False)

    def via_r3(self) -> None:
        self.x("R1", "ip", "route", "replace", "10.201.2.0/24", "via", "10.201.13.3")

    def via_r2(self) -> None:
        self.x("R1", "ip", "route", "replace", "10.201.2.0/24", "via", "10.201.12.2")

    def drop_icmp_errors(self, router: str) -> None:
        """`router` still forwards, but sends no ICMP errors (Time Exceeded, Unreachable)."""
        rules = (
            "table inet pt_silent {\n"
            "  chain out {\n"
            "    type filter hook output priority 0;\n"
            "    icmp type { time-exceeded, destination-unreachable } drop\n"
            "    icmpv6 type { time-exceeded, destination-unreachable } drop\n"
            "  }\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", self.ns(router), "nft", "-f", "-"],
            input=rules,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )

    @contextlib.contextmanager
    def inside(self, node: str) -> Iterator[None]:
        """Run the calling thread in `node`'s network namespace for the block. Sockets opened
        here stay in that namespace after the block."""
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{self.ns(node)}") as ns:
            if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
            try:
                yield
            finally:
                if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back failed")
