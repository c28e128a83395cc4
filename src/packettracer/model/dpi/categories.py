"""The traffic categories every flow falls into (18 plus `unknown`)."""

from __future__ import annotations

from typing import Final

CATEGORIES: tuple[str, ...] = (
    "web",
    "streaming",
    "email",
    "gaming",
    "voip",
    "p2p",
    "chat",
    "social",
    "file_transfer",
    "cloud",
    "remote_access",
    "vpn",
    "dns",
    "network",
    "software_update",
    "database",
    "iot",
    "malware",
)
UNKNOWN: Final = "unknown"
ALL_CATEGORIES: tuple[str, ...] = (*CATEGORIES, UNKNOWN)

# How sure a flow's application is, strongest first.
CONF_DPI: Final = "dpi"
"""A protocol parser recognized the payload (and, for TLS/QUIC/HTTP, a name in it)."""
CONF_NAME: Final = "name"
"""The application comes from a name only (DNS answer or resolver), not the flow's payload."""
CONF_PORT: Final = "port-guess"
"""Nothing but the port number: a guess."""
CONFIDENCES: tuple[str, ...] = (CONF_DPI, CONF_NAME, CONF_PORT)


def check_category(name: str) -> str:
    if name not in ALL_CATEGORIES:
        raise ValueError(f"unknown category {name!r}")
    return name
