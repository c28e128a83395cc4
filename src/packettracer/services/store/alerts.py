"""Security alerts with their acknowledgement state. An alert's `uid` is chosen by whoever
raises it, so it can be acknowledged later without waiting for the database's row id."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from packettracer.services.store.base import Repository, Row, from_json, to_json

_FIELDS = (
    "uid",
    "ts",
    "severity",
    "kind",
    "src",
    "dst",
    "message",
    "details",
    "acked",
    "acked_at",
)


class AlertRepository(Repository):
    table = "alerts"
    time_column = "ts"

    def insert_many(self, conn: sqlite3.Connection, alerts: Iterable[Row]) -> int:
        rows = [
            (
                a.get("uid"),
                a["ts"],
                a.get("severity", "info"),
                a["kind"],
                a.get("src"),
                a.get("dst"),
                a["message"],
                to_json(a.get("details")),
                1 if a.get("acked") else 0,
                a.get("acked_at"),
            )
            for a in alerts
        ]
        # The same uid twice (a replayed alert) keeps the first row and its ack state.
        conn.executemany(
            f"INSERT OR IGNORE INTO alerts ({', '.join(_FIELDS)}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def ack_many(self, conn: sqlite3.Connection, acks: Iterable[Row]) -> int:
        rows = [
            (1 if a.get("acked", True) else 0, a["acked_at"], a.get("acked_by"), a["uid"])
            for a in acks
        ]
        # Who acknowledged is kept inside the alert's details (JSON), next to the rest of it.
        conn.executemany(
            "UPDATE alerts SET acked = ?1, acked_at = ?2, details = CASE "
            "WHEN ?3 IS NOT NULL AND json_valid(details) "
            "THEN json_set(details, '$.acked_by', ?3) ELSE details END WHERE uid = ?4",
            rows,
        )
        return len(rows)

    def recent(
        self,
        conn: sqlite3.Connection,
        since: float,
        unacked_only: bool = False,
        limit: int = 1000,
    ) -> list[Row]:
        sql = f"SELECT {', '.join(_FIELDS)} FROM alerts WHERE ts >= ?"
        if unacked_only:
            sql += " AND acked = 0"
        sql += " ORDER BY ts DESC LIMIT ?"
        out = []
        for row in conn.execute(sql, (since, limit)):
            alert = dict(zip(_FIELDS, row, strict=True))
            alert["details"] = from_json(alert["details"])
            alert["acked"] = bool(alert["acked"])
            out.append(alert)
        return out
