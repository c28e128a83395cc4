"""Traffic broken down by country, AS/organisation, protocol and host (top talkers).

Ended flows are added once (`add_flow`); a live view adds the active flows on top of those
totals (`snapshot`), so every figure covers the whole capture so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from packettracer.model.addresses import is_local
from packettracer.model.flows import Flow


@dataclass(slots=True)
class Bucket:
    bytes: int = 0
    packets: int = 0
    flows: int = 0

    def add(self, nbytes: int, packets: int, flows: int = 1) -> None:
        self.bytes += nbytes
        self.packets += packets
        self.flows += flows


Table = dict[str, Bucket]

DIMENSIONS = ("country", "as", "protocol", "local", "remote")


@dataclass(slots=True)
class FlowKeys:
    """What one flow is counted under."""

    country: str
    org: str
    protocol: str


def remote_address(flow: Flow) -> str:
    """The far end: the responder, unless only the initiator is outside the local network."""
    if is_local(flow.dst) and not is_local(flow.src):
        return flow.src
    return flow.dst


class Breakdown:
    def __init__(self, max_keys: int = 5000) -> None:
        self.max_keys = max_keys
        self.tables: dict[str, Table] = {d: {} for d in DIMENSIONS}
        self.flows = 0
        self.bytes = 0

    def _bump(self, table: Table, key: str, nbytes: int, packets: int) -> None:
        bucket = table.get(key)
        if bucket is None:
            if len(table) >= self.max_keys:
                key = "(other)"
                bucket = table.get(key)
            if bucket is None:
                bucket = table[key] = Bucket()
        bucket.bytes += nbytes
        bucket.packets += packets
        bucket.flows += 1

    def add(self, tables: dict[str, Table], flow: Flow, keys: FlowKeys) -> None:
        nbytes = flow.bytes_fwd + flow.bytes_rev
        packets = flow.packets_fwd + flow.packets_rev
        bump = self._bump
        bump(tables["country"], keys.country, nbytes, packets)
        bump(tables["as"], keys.org, nbytes, packets)
        bump(tables["protocol"], keys.protocol, nbytes, packets)
        local, remote = tables["local"], tables["remote"]
        bump(local if is_local(flow.src) else remote, flow.src, nbytes, packets)
        bump(local if is_local(flow.dst) else remote, flow.dst, nbytes, packets)

    def add_flow(self, flow: Flow, keys: FlowKeys) -> None:
        self.flows += 1
        self.bytes += flow.bytes_fwd + flow.bytes_rev
        self.add(self.tables, flow, keys)

    def add_ended(
        self,
        flow: Flow,
        country: str,
        org: str,
        protocol: str,
        src_local: bool,
        dst_local: bool,
    ) -> None:
        """`add_flow` for a caller that knows the keys and the locality of both ends already
        (once per ended flow, so the buckets are bumped inline)."""
        nbytes = flow.bytes_fwd + flow.bytes_rev
        packets = flow.packets_fwd + flow.packets_rev
        self.flows += 1
        self.bytes += nbytes
        tables = self.tables
        local, remote = tables["local"], tables["remote"]
        for table, key in (
            (tables["country"], country),
            (tables["as"], org),
            (tables["protocol"], protocol),
            (local if src_local else remote, flow.src),
            (local if dst_local else remote, flow.dst),
        ):
            bucket = table.get(key)
            if bucket is None:
                self._bump(table, key, nbytes, packets)
            else:
                bucket.bytes += nbytes
                bucket.packets += packets
                bucket.flows += 1

    def snapshot(
        self, active: Iterable[Flow], keys_of: Callable[[Flow], FlowKeys]
    ) -> dict[str, Table]:
        """Ended totals plus the active flows, as new tables (the stored ones stay as they are)."""
        out = {
            d: {k: Bucket(b.bytes, b.packets, b.flows) for k, b in t.items()}
            for d, t in self.tables.items()
        }
        for flow in active:
            self.add(out, flow, keys_of(flow))
        return out


def top(table: Table, n: int = 10, by: str = "bytes") -> list[dict[str, Any]]:
    """The `n` largest buckets with their share of the table's total (0..1)."""
    total = sum(getattr(b, by) for b in table.values()) or 1
    rows = sorted(table.items(), key=lambda kv: (-getattr(kv[1], by), kv[0]))[:n]
    return [
        {
            "key": key,
            "bytes": b.bytes,
            "packets": b.packets,
            "flows": b.flows,
            "share": round(getattr(b, by) / total, 4),
        }
        for key, b in rows
    ]
