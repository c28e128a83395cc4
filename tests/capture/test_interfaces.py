"""Interface listing and default-interface choice, checked against iproute2's own view, and (as
root) inside network namespaces built for the purpose."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from conftest import is_root, packettracer_cmd

from packettracer.capture.interfaces import (
    ARPHRD_LOOPBACK,
    ARPHRD_NONE,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    default_interface,
    format_interface_list,
    hardware_type,
    link_type,
    list_interfaces,
)

needs_ip = pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed")
needs_root = pytest.mark.skipif(not is_root(), reason="network namespaces need root")


def ip_json(*args: str, netns: str | None = None) -> list[dict[str, object]]:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    out = subprocess.run([*prefix, "-j", *args], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out or "[]"))


@needs_ip
def test_list_matches_iproute2() -> None:
    ours = {iface.name: iface for iface in list_interfaces()}
    theirs = ip_json("addr")
    assert set(ours) == {str(link["ifname"]) for link in theirs}
    for link in theirs:
        iface = ours[str(link["ifname"])]
        assert iface.index == link["ifindex"]
        assert iface.up == ("UP" in link["flags"])  # type: ignore[operator]
        assert iface.mac == link.get("address", "")
        addrs = link["addr_info"]
        assert isinstance(addrs, list)
        v4 = {f"{a['local']}/{a['prefixlen']}" for a in addrs if a["family"] == "inet"}
        v6 = {f"{a['local']}/{a['prefixlen']}" for a in addrs if a["family"] == "inet6"}
        assert set(iface.ipv4) == v4
        assert set(iface.ipv6) == v6


@needs_ip
def test_default_is_the_default_route_interface() -> None:
    routes = ip_json("route", "show", "default") or ip_json("-6", "route", "show", "default")
    if not routes:
        pytest.skip("this machine has no default route")
    assert default_interface() == routes[0]["dev"]
    text = format_interface_list()
    marked = [line for line in text.splitlines() if line.startswith("* ") and line[2:3] != "d"]
    assert len(marked) == 1 and marked[0].split()[2] == routes[0]["dev"]


def test_link_types() -> None:
    assert hardware_type("lo") == ARPHRD_LOOPBACK
    # loopback delivers Ethernet frames with zeroed addresses
    assert link_type(ARPHRD_LOOPBACK) == (LINKTYPE_ETHERNET, False)
    assert link_type(1) == (LINKTYPE_ETHERNET, False)
    # tun: the frame starts at the IP header
    assert link_type(ARPHRD_NONE) == (LINKTYPE_RAW, False)
    # anything else (GRE, IPIP, ...) is read cooked, with a Linux SLL header
    assert link_type(778) == (LINKTYPE_LINUX_SLL, True)


# -- inside namespaces: the fallbacks ---------------------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    if not is_root():
        pytest.skip("network namespaces need root")
    name = f"ptif-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def default_in(ns: str) -> str:
    code = "from packettracer.capture.interfaces import default_interface as d; print(d())"
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@needs_ip
def test_default_route_then_first_up_then_none(netns: str) -> None:
    ns = netns
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    # nothing but loopback: there is no default, and the CLI says so in one line
    assert default_in(ns) == "None"
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *packettracer_cmd()], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "packettracer: error: no network interface to capture on (none is up besides loopback)"
        " (name one with -i IFACE, or replay a file with -r FILE)"
    ]
    for a, b in (("pta0", "ptb0"), ("pta1", "ptb1")):
        sh("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "-n", ns, "link", "set", a, "up")
        sh("ip", "-n", ns, "link", "set", b, "up")
    # no default route: the first interface (by index) that is up and not loopback
    links = [link for link in ip_json("link", netns=ns) if link["ifname"] != "lo"]
    first = min(links, key=lambda link: int(str(link["ifindex"])))["ifname"]
    assert default_in(ns) == first
    sh("ip", "-n", ns, "link", "set", str(first), "down")
    assert default_in(ns) != first
    sh("ip", "-n", ns, "link", "set", str(first), "up")
    # an IPv6 default route decides when there is no IPv4 one
    sh("ip", "-n", ns, "addr", "add", "fd99:1::1/64", "dev", "pta1", "nodad")
    sh("ip", "-n", ns, "-6", "route", "add", "default", "via", "fd99:1::2", "dev", "pta1")
    assert default_in(ns) == "pta1"
    # and an IPv4 default route comes first
    sh("ip", "-n", ns, "addr", "add", "10.199.250.1/24", "dev", "ptb0")
    sh("ip", "-n", ns, "route", "add", "default", "via", "10.199.250.2", "dev", "ptb0")
    assert default_in(ns) == "ptb0"


@needs_ip
def test_list_never_prints_control_characters(netns: str) -> None:
    # Linux refuses only '/', ':' and spaces in interface names; an escape sequence is allowed.
    sh("ip", "-n", netns, "link", "add", "pt\x1b[31mred", "type", "veth", "peer", "name", "ptp0")
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, *packettracer_cmd(), "--list"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout
    assert "pt?[31mred" in proc.stdout
