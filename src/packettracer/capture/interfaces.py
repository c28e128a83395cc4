"""Network interfaces: what exists, which one carries the default route, and each one's link type.

Names, indexes, flags and hardware types come from /sys/class/net, addresses from psutil (which
asks the kernel over netlink), the default route from /proc/net/route and /proc/net/ipv6_route.
No subprocess is started.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SYS_NET = Path("/sys/class/net")
PROC_ROUTE = Path("/proc/net/route")
PROC_ROUTE6 = Path("/proc/net/ipv6_route")

IFF_UP = 0x1
IFF_LOOPBACK = 0x8

# ARPHRD_* hardware types (include/uapi/linux/if_arp.h) that matter for the link type.
ARPHRD_ETHER = 1
ARPHRD_IEEE802 = 6
ARPHRD_RAWIP = 519
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113

ANY = "any"
"""The pseudo-interface that captures on all interfaces at once (as tcpdump -i any)."""


@dataclass
class Interface:
    name: str
    index: int
    up: bool
    loopback: bool
    mac: str = ""
    hwtype: int = ARPHRD_ETHER
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)
    is_default: bool = False

    @property
    def state(self) -> str:
        return "up" if self.up else "down"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def _int(text: str, base: int = 10, default: int = 0) -> int:
    try:
        return int(text, base)
    except ValueError:
        return default


def interface_names() -> list[str]:
    """Every interface of this network namespace, in index order."""
    try:
        return [name for _, name in socket.if_nameindex()]
    except OSError:
        return sorted(p.name for p in SYS_NET.iterdir()) if SYS_NET.is_dir() else []


def hardware_type(name: str) -> int:
    if not SYS_NET.is_dir():  # not Linux: name the loopback, assume Ethernet for the rest
        return ARPHRD_LOOPBACK if _psutil_loopback(name) else ARPHRD_ETHER
    return _int(_read(SYS_NET / name / "type"), default=ARPHRD_ETHER)


def is_up(name: str) -> bool:
    if not SYS_NET.is_dir():
        stats = psutil.net_if_stats().get(name)
        return bool(stats and stats.isup)
    return bool(_int(_read(SYS_NET / name / "flags"), 16) & IFF_UP)


def is_loopback(name: str) -> bool:
    return hardware_type(name) == ARPHRD_LOOPBACK


def _psutil_loopback(name: str) -> bool:
    addrs = psutil.net_if_addrs().get(name, [])
    return any(a.address in ("127.0.0.1", "::1") for a in addrs)


def link_type(hwtype: int) -> tuple[int, bool]:
    """The pcap link type of frames read from an interface of this hardware type, and whether
    the socket must be "cooked" (SOCK_DGRAM, a Linux SLL header built by us) as libpcap does for
    hardware it does not know."""
    if hwtype in (ARPHRD_ETHER, ARPHRD_IEEE802, ARPHRD_LOOPBACK):
        # The loopback device hands out Ethernet frames with zeroed addresses.
        return LINKTYPE_ETHERNET, False
    if hwtype in (ARPHRD_NONE, ARPHRD_RAWIP):
        # tun devices and raw-IP modems: the frame starts at the IP header.
        return LINKTYPE_RAW, False
    return LINKTYPE_LINUX_SLL, True


def default_route_interfaces() -> list[str]:
    """Interfaces of the default routes, IPv4 first (lowest metric first), then IPv6."""
    found: list[tuple[int, int, str]] = []
    for line in _read(PROC_ROUTE).splitlines()[1:]:
        cols = line.split()
        # Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        if len(cols) >= 8 and cols[1] == "00000000" and cols[7] == "00000000":
            flags = _int(cols[3], 16)
            if flags & 0x1:  # RTF_UP
                found.append((0, _int(cols[6]), cols[0]))
    for line in _read(PROC_ROUTE6).splitlines():
        cols = line.split()
        # dest dest_plen src src_plen nexthop metric refcnt use flags iface
        if len(cols) >= 10 and cols[1] == "00" and set(cols[0]) == {"0"}:
            flags = _int(cols[8], 16)
            if flags & 0x1 and not flags & 0x200 and cols[9] != "lo":  # RTF_UP, not RTF_REJECT
                found.append((1, _int(cols[5], 16), cols[9]))
    out: list[str] = []
    for _, _, name in sorted(found):
        if name not in out:
            out.append(name)
    return out


def default_interface() -> str | None:
    """The interface of the default route (IPv4, then IPv6); else the first interface that is up
    and not loopback; None when there is none."""
    names = interface_names()
    for name in default_route_interfaces():
        if name in names:
            return name
    for name in names:
        if is_up(name) and not is_loopback(name):
            return name
    return None


def list_interfaces() -> list[Interface]:
    default = default_interface()
    try:
        addrs = psutil.net_if_addrs()
    except OSError:
        addrs = {}
    out: list[Interface] = []
    try:
        indexed = socket.if_nameindex()
    except OSError:
        indexed = []
    for index, name in indexed:
        flags = _int(_read(SYS_NET / name / "flags"), 16)
        hwtype = hardware_type(name)
        iface = Interface(
            name=name,
            index=index,
            up=is_up(name),
            loopback=bool(flags & IFF_LOOPBACK) or hwtype == ARPHRD_LOOPBACK,
            mac=_read(SYS_NET / name / "address"),
            hwtype=hwtype,
            is_default=name == default,
        )
        for snic in addrs.get(name, []):
            if snic.family == socket.AF_INET:
                iface.ipv4.append(_with_prefix(snic.address, snic.netmask))
            elif snic.family == socket.AF_INET6:
                iface.ipv6.append(_with_prefix(snic.address, snic.netmask))
        out.append(iface)
    return out


def _with_prefix(address: str, netmask: str | None) -> str:
    # The zone of a link-local address is the interface the row already names.
    address = address.split("%", 1)[0]
    if not netmask:
        return address
    import ipaddress

    try:
        prefix = ipaddress.ip_network(f"0.0.0.0/{netmask}").prefixlen if "." in netmask else None
        if prefix is None:
            prefix = bin(int(ipaddress.IPv6Address(netmask))).count("1")
    except ValueError:
        return address
    return f"{address}/{prefix}"


def printable(text: str) -> str:
    """Interface names may hold control characters (only '/', ':' and spaces are refused):
    never send those to the terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


def format_interface_list() -> str:
    """The table `packettracer --list` prints; the default interface is marked with '*'."""
    rows = list_interfaces()
    header = ("", "#", "INTERFACE", "STATE", "MAC", "ADDRESSES")
    table: list[tuple[str, ...]] = []
    for iface in rows:
        addresses = iface.ipv4 + iface.ipv6
        table.append(
            (
                "*" if iface.is_default else "",
                str(iface.index),
                printable(iface.name),
                iface.state,
                iface.mac or "-",
                addresses[0] if addresses else "-",
            )
        )
        for extra in addresses[1:]:
            table.append(("", "", "", "", "", extra))
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *table]:
        cells = [row[i].ljust(widths[i]) for i in range(len(widths))]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    default = next((i.name for i in rows if i.is_default), None)
    if default:
        lines.append(f"\n* default interface (used when -i is not given): {printable(default)}")
    else:
        lines.append("\nno default interface: give one with -i IFACE")
    lines.append("also: -i any captures on all interfaces")
    return "\n".join(lines) + "\n"
