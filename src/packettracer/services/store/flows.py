"""Ended flows: the report's columns, plus every later fact (app, names, geo, ...) in `ext`."""

from __future__ import annotations

import json
import operator
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from packettracer.model.flows import RECORD_FIELDS
from packettracer.services.store.base import Repository, Row, to_json

# Flow.to_dict()'s keys that every flow has (the times first: the table is read by time), then
# the two it has only when they apply.
_TIMES = ("first_seen", "last_seen")
COLUMNS = (*_TIMES, *(f for f in RECORD_FIELDS if f not in _TIMES), "end_reason", "site")
_COLUMN_SET = frozenset(COLUMNS)
_COUNTERS = ("packets_fwd", "packets_rev", "bytes_fwd", "bytes_rev")
_DEFAULTS = [(c, 0 if c in _COUNTERS else None) for c in COLUMNS]
_INSERT = (
    f"INSERT INTO flows ({', '.join(COLUMNS)}, ext, stored_at) "
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"
)
_SELECT = f"SELECT {', '.join(COLUMNS)}, ext FROM flows"


# Keys Flow.to_dict() always has, in COLUMNS order (the fast path of flow_values).
_ALWAYS_PRESENT = COLUMNS[: len(RECORD_FIELDS)]
_take_always = operator.itemgetter(*_ALWAYS_PRESENT)
_N_ALWAYS = len(_ALWAYS_PRESENT)


def flow_values(flow: Row, stored_at: float) -> tuple[Any, ...]:
    """A Flow.to_dict() as the row's values; keys beyond the columns go into `ext`.

    Runs once per stored flow (50,000/s and more), hence the itemgetter fast path.
    """
    get = flow.get
    try:
        values = [*_take_always(flow), get("end_reason"), get("site")]
        known = _N_ALWAYS + ("end_reason" in flow) + ("site" in flow)
    except KeyError:  # not from Flow.to_dict(): missing counters default to 0
        values = [get(c, d) for c, d in _DEFAULTS]
        known = 0
    if len(flow) > known:
        extra = flow.keys() - _COLUMN_SET
        values.append(to_json({k: flow[k] for k in extra}) if extra else None)
    else:
        values.append(None)
    values.append(stored_at)
    return tuple(values)


# Flow.to_dict()'s key order, so stored flows print like the report's.
_OUTPUT_ORDER = (*RECORD_FIELDS, "site", "end_reason")
_POSITION = {name: i for i, name in enumerate(COLUMNS)}
_ALWAYS = frozenset({"sport", "dport", "tcp_state"})


def _row_to_flow(row: tuple[Any, ...]) -> Row:
    out: Row = {}
    for name in _OUTPUT_ORDER:
        value = row[_POSITION[name]]
        if value is not None or name in _ALWAYS:
            out[name] = value
    ext = row[len(COLUMNS)]
    if ext:
        try:
            out.update(json.loads(ext))
        except ValueError:
            out["ext"] = ext
    return out


class FlowRepository(Repository):
    table = "flows"
    # Retention counts from when a flow was stored, not from its packet time: a capture from
    # years ago analyzed with `report --db` is kept retention_days like live traffic.
    time_column = "stored_at"

    def delete_older(self, conn: sqlite3.Connection, cutoff: float, limit: int) -> int:
        """Flows are stored in id order, so the oldest stored have the lowest ids: look at the
        first `limit` rows only (bounded, and no index on stored_at to keep up on every
        insert) and delete those stored before `cutoff`. Returns `limit` while there may be
        more; a clock set back only delays retention."""
        rows = conn.execute(
            "SELECT id, stored_at FROM flows ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        old = [flow_id for flow_id, stored_at in rows if stored_at < cutoff]
        if not old:
            return 0
        conn.execute(
            "DELETE FROM flows WHERE id BETWEEN ? AND ? AND stored_at < ?",
            (old[0], old[-1], cutoff),
        )
        return len(old) if len(old) == len(rows) == limit else min(len(old), limit - 1)

    def insert_many(self, conn: sqlite3.Connection, flows: Iterable[Row]) -> int:
        now = time.time()
        rows = [flow_values(f, now) for f in flows]
        conn.executemany(_INSERT, rows)
        return len(rows)

    def query(
        self,
        conn: sqlite3.Connection,
        since: float | None = None,
        until: float | None = None,
        host: str | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Flows that were active after `since` (and started before `until`), oldest first."""
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("last_seen >= ?")
            params.append(since)
        if until is not None:
            where.append("first_seen <= ?")
            params.append(until)
        if host is not None:
            where.append("(src = ? OR dst = ?)")
            params += [host, host]
        # Without a host, the time range picks the rows: walking the first_seen index for
        # the ORDER BY instead would visit the whole table when few rows are recent.
        hint = " INDEXED BY flows_last_seen" if since is not None and host is None else ""
        sql = _SELECT + hint + (" WHERE " + " AND ".join(where) if where else "")
        if limit is None:
            sql += " ORDER BY first_seen, id"
        else:
            # The newest `limit` flows, still returned oldest first.
            sql = (
                f"SELECT * FROM ({sql} ORDER BY first_seen DESC, id DESC LIMIT ?) "
                "ORDER BY first_seen"
            )
            params.append(limit)
        return [_row_to_flow(r) for r in conn.execute(sql, params)]

    def top_destinations(
        self, conn: sqlite3.Connection, since: float, limit: int = 50
    ) -> list[Row]:
        """Destinations by bytes over the flows seen since `since`. The time index is forced:
        the planner otherwise walks the whole `dst` index to group, which on a large table
        is a full scan (a second for 200,000 rows) instead of a short range."""
        cur = conn.execute(
            "SELECT dst, count(*), sum(packets_fwd + packets_rev), sum(bytes_fwd + bytes_rev), "
            "min(first_seen), max(last_seen) FROM flows INDEXED BY flows_last_seen "
            "WHERE last_seen >= ? GROUP BY dst ORDER BY 4 DESC LIMIT ?",
            (since, limit),
        )
        return [
            {
                "dst": dst,
                "flows": flows,
                "packets": packets or 0,
                "bytes": nbytes or 0,
                "first_seen": first,
                "last_seen": last,
            }
            for dst, flows, packets, nbytes, first, last in cur
        ]

    def summary(self, conn: sqlite3.Connection, since: float) -> Row:
        row = conn.execute(
            "SELECT count(*), sum(packets_fwd + packets_rev), sum(bytes_fwd + bytes_rev), "
            "count(DISTINCT src), count(DISTINCT dst), min(first_seen), max(last_seen) "
            "FROM flows INDEXED BY flows_last_seen WHERE last_seen >= ?",
            (since,),
        ).fetchone()
        return {
            "flows": row[0],
            "packets": row[1] or 0,
            "bytes": row[2] or 0,
            "sources": row[3],
            "destinations": row[4],
            "first_seen": row[5],
            "last_seen": row[6],
        }

    def oldest(self, conn: sqlite3.Connection) -> float | None:
        """Earliest stored activity; uses the index, so it is instant on any size."""
        row = conn.execute("SELECT min(first_seen) FROM flows").fetchone()
        return row[0] if row else None
