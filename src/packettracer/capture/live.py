"""Open the live packet source the settings ask for, or fail with one clear line.

Everything that can go wrong (no interface, unknown or down interface, bad filter, no permission)
is found here, before the dashboard starts, and raised as a PacketTracerError.
"""

from __future__ import annotations

import os
import sys

from packettracer.capture.bpf import compile_bpf
from packettracer.capture.interfaces import (
    ANY,
    default_interface,
    hardware_type,
    interface_names,
    is_up,
    link_type,
    printable,
)
from packettracer.capture.source import PacketSource
from packettracer.config import Settings
from packettracer.errors import CaptureError, UsageError

BACKENDS = ("auto", "afpacket", "scapy")


def choose_backend(requested: str) -> str:
    if requested not in BACKENDS:
        raise UsageError(
            f"unknown capture backend {requested!r} (choose one of: {', '.join(BACKENDS)})"
        )
    if requested == "auto":
        return "afpacket" if sys.platform.startswith("linux") else "scapy"
    if requested == "afpacket" and not sys.platform.startswith("linux"):
        raise UsageError("the afpacket capture backend needs Linux; use --capture-backend scapy")
    return requested


def choose_interface(requested: str | None) -> str:
    """The interface to capture on: the one asked for (checked), else the default route's."""
    if requested is None or requested == "":
        name = default_interface()
        if name is None:
            raise CaptureError(
                "no network interface to capture on (none is up besides loopback)",
                "name one with -i IFACE, or replay a file with -r FILE",
            )
        return name
    if requested == ANY:
        return ANY
    names = interface_names()
    if requested not in names:
        known = ", ".join(printable(n) for n in names) or "none"
        raise UsageError(
            f"unknown interface {requested!r} (known: {known}; see packettracer --list)"
        )
    if not is_up(requested):
        name = printable(requested)
        raise CaptureError(f"interface {name} is down", f"bring it up: ip link set {name} up")
    return requested


def open_live_source(settings: Settings) -> PacketSource:
    """The live source for `settings.capture`: backend, interface and kernel filter set up and
    checked. The socket is open when this returns; `start(queue)` begins delivering frames."""
    cap = settings.capture
    backend = choose_backend(cap.backend)
    interface = choose_interface(cap.interface)
    if cap.bpf_filter:
        # Check the filter before touching sockets, so a typo is reported as such even
        # without capture permission.
        linktype = link_type(hardware_type(interface))[0] if interface != ANY else 113
        compile_bpf(cap.bpf_filter, linktype)
    if backend == "afpacket":
        from packettracer.capture.afpacket import AfPacketSource

        return AfPacketSource(
            interface,
            bpf_filter=cap.bpf_filter,
            snaplen=cap.snaplen,
            promiscuous=cap.promiscuous,
            batch_size=cap.batch_size,
            ring_size_mb=cap.ring_size_mb,
        )
    from packettracer.capture.scapy_source import ScapySource

    return ScapySource(
        interface,
        bpf_filter=cap.bpf_filter,
        snaplen=cap.snaplen,
        promiscuous=cap.promiscuous,
        batch_size=cap.batch_size,
    )


def can_capture() -> bool:
    """True when this process may open packet sockets (root, or CAP_NET_RAW granted)."""
    if os.geteuid() == 0:
        return True
    try:
        import socket

        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except (PermissionError, AttributeError, OSError):
        return False
    return True
