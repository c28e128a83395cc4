"""Route history: traceroute runs (`traces`) and their hops (`hops`, deleted with their run)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from packettracer.services.store.base import Repository, Row, from_json, to_json

_TRACE_FIELDS = (
    "id",
    "uid",
    "target",
    "target_ip",
    "method",
    "started_at",
    "finished_at",
    "reached",
    "details",
)
_HOP_KEYS = frozenset({"ttl", "ip", "rtt_ms", "name"})


class HopRepository(Repository):
    table = "hops"  # no time column: hops go with their trace (ON DELETE CASCADE)

    def insert_many(self, conn: sqlite3.Connection, trace_id: int, hops: Iterable[Row]) -> int:
        rows: list[tuple[Any, ...]] = []
        for hop in hops:
            extra = {k: v for k, v in hop.items() if k not in _HOP_KEYS}
            rows.append(
                (
                    trace_id,
                    hop["ttl"],
                    hop.get("ip"),
                    hop.get("rtt_ms"),
                    hop.get("name"),
                    to_json(extra) if extra else None,
                )
            )
        conn.executemany(
            "INSERT OR REPLACE INTO hops (trace_id, ttl, ip, rtt_ms, name, details) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def for_traces(self, conn: sqlite3.Connection, trace_ids: list[int]) -> dict[int, list[Row]]:
        out: dict[int, list[Row]] = {i: [] for i in trace_ids}
        # Bound parameter lists stay well under SQLite's variable limit.
        for start in range(0, len(trace_ids), 500):
            chunk = trace_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            cur = conn.execute(
                "SELECT trace_id, ttl, ip, rtt_ms, name, details FROM hops "
                f"WHERE trace_id IN ({marks}) ORDER BY trace_id, ttl",
                chunk,
            )
            for trace_id, ttl, ip, rtt_ms, name, details in cur:
                hop: Row = {"ttl": ttl, "ip": ip, "rtt_ms": rtt_ms, "name": name}
                extra = from_json(details)
                if isinstance(extra, dict):
                    hop.update(extra)
                out[trace_id].append(hop)
        return out


class TraceRepository(Repository):
    table = "traces"
    time_column = "started_at"

    def __init__(self) -> None:
        self.hops = HopRepository()

    def insert_many(self, conn: sqlite3.Connection, traces: Iterable[Row]) -> int:
        count = 0
        for trace in traces:
            cur = conn.execute(
                "INSERT OR IGNORE INTO traces (uid, target, target_ip, method, started_at, "
                "finished_at, reached, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trace.get("uid"),
                    trace["target"],
                    trace.get("target_ip"),
                    trace.get("method"),
                    trace["started_at"],
                    trace.get("finished_at"),
                    1 if trace.get("reached") else 0,
                    to_json(trace.get("details")),
                ),
            )
            if cur.rowcount != 1 or cur.lastrowid is None:
                continue  # already stored (same uid)
            self.hops.insert_many(conn, cur.lastrowid, trace.get("hops") or ())
            count += 1
        return count

    def history(
        self,
        conn: sqlite3.Connection,
        target: str | None = None,
        since: float = 0.0,
        limit: int = 100,
    ) -> list[Row]:
        """Runs, newest first, each with its hops in TTL order."""
        sql = f"SELECT {', '.join(_TRACE_FIELDS)} FROM traces WHERE started_at >= ?"
        params: list[Any] = [since]
        if target is not None:
            sql += " AND (target = ? OR target_ip = ?)"
            params += [target, target]
        sql += " ORDER BY started_at DESC LIMIT ?"
        params.append(limit)
        traces = []
        for row in conn.execute(sql, params):
            trace = dict(zip(_TRACE_FIELDS, row, strict=True))
            trace["details"] = from_json(trace["details"])
            trace["reached"] = bool(trace["reached"])
            traces.append(trace)
        hops = self.hops.for_traces(conn, [t["id"] for t in traces])
        for trace in traces:
            trace["hops"] = hops.get(trace["id"], [])
        return traces
