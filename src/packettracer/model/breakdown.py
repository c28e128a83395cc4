"""Traffic broken down by country, AS/organisation, protocol and host (top talkers).

Ended flows are added once (`add_ended`); a live view adds the active flows on top of those
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

    def _bucket(self, table: Table, key: str) -> Bucket:
        """A new key's bucket; past `max_keys` keys, the shared "(other)" one."""
        if len(table) >= self.max_keys:
            key = "(other)"
            bucket = table.get(key)
            if bucket is not None:
                return bucket
        bucket = table[key] = Bucket()
        return bucket

    def add(self, tables: dict[str, Table], flow: Flow, keys: FlowKeys) -> None:
        """Count `flow` into `tables` (a live view's copy)."""
        self._count(
            tables, flow, keys.country, keys.org, keys.protocol, is_local(flow.src),
            is_local(flow.dst),
        )  # fmt: skip

    def add_ended(
        self,
        flow: Flow,
        country: str,
        org: str,
        protocol: str,
        src_local: bool,
        dst_local: bool,
    ) -> None:
        """Count an ended flow into the totals, under keys the caller knows already (with the
        locality of both ends)."""
        self.flows += 1
        self.bytes += flow.bytes_fwd + flow.bytes_rev
        self._count(self.tables, flow, country, org, protocol, src_local, dst_local)

    def _count(
        self,
        tables: dict[str, Table],
        flow: Flow,
        country: str,
        org: str,
        protocol: str,
        src_local: bool,
        dst_local: bool,
    ) -> None:
        # Once per flow: the buckets that exist already (nearly all) are bumped inline.
        nbytes = flow.bytes_fwd + flow.bytes_rev
        packets = flow.packets_fwd + flow.packets_rev
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
                bucket = self._bucket(table, key)
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
