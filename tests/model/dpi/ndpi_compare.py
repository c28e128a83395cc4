"""Shared by the agreement tests: run our report over the corpus captures and read the peers'
expected results (nDPI's per-flow lines, p0f's logs)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from packettracer.config import Settings
from packettracer.services.report import analyze_file

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT / ".." / "shared"
PCAPS = SHARED / "corpus" / "pcap"
NDPI = SHARED / "corpus" / "expected" / "ndpi-4.11-upstream"
P0F = SHARED / "corpus" / "expected" / "p0f"

_FLOW_RE = re.compile(r"^\s*\d+\s+(TCP|UDP)\s+(\S+)\s+<?->\s+(\S+)\s+\[proto: [\d.]+/([^\]]+)\]")


def split_endpoint(text: str) -> tuple[str, int]:
    if text.startswith("["):
        addr, _, port = text[1:].rpartition("]:")
        return addr, int(port)
    addr, _, port = text.rpartition(":")
    return addr, int(port)


def ndpi_flows(name: str) -> Iterator[tuple[str, tuple[str, int], tuple[str, int], str]]:
    """(proto, endpoint a, endpoint b, nDPI protocol name) of every flow nDPI listed."""
    text = (NDPI / f"{name}.out").read_bytes().decode("utf-8", "replace")
    for line in text.splitlines():
        m = _FLOW_RE.match(line)
        if m is None:
            continue
        proto, a, b, label = m.groups()
        yield proto.lower(), split_endpoint(a), split_endpoint(b), label


def offline_settings() -> Settings:
    settings = Settings()
    settings.resolve.enabled = False
    settings.resolve.offline = True
    settings.store.db_path = ":memory:"
    return settings


@cache
def our_report(name: str) -> dict[str, Any]:
    result = analyze_file(str(PCAPS / name), offline_settings())
    return result.to_json()


def flow_index(report: dict[str, Any]) -> dict[tuple[str, str, int, str, int], dict[str, Any]]:
    """Our flows by 5-tuple, both orientations (the first flow of a tuple wins)."""
    out: dict[tuple[str, str, int, str, int], dict[str, Any]] = {}
    for flow in report["flows"]:
        key = (flow["proto"], flow["src"], flow["sport"], flow["dst"], flow["dport"])
        rev = (flow["proto"], flow["dst"], flow["dport"], flow["src"], flow["sport"])
        out.setdefault(key, flow)
        out.setdefault(rev, flow)
    return out
