"""Remote capture agents the relay has seen."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from packettracer.services.store.base import Repository, Row, from_json, to_json

_FIELDS = ("name", "address", "version", "first_seen", "last_seen", "details")


class AgentRepository(Repository):
    table = "agents"
    time_column = "last_seen"

    def upsert_many(self, conn: sqlite3.Connection, agents: Iterable[Row]) -> int:
        rows = [
            (
                a["name"],
                a.get("address"),
                a.get("version"),
                a["seen_at"],
                a["seen_at"],
                to_json(a.get("details")),
            )
            for a in agents
        ]
        conn.executemany(
            "INSERT INTO agents (name, address, version, first_seen, last_seen, details) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "address = coalesce(excluded.address, address), "
            "version = coalesce(excluded.version, version), "
            "first_seen = min(first_seen, excluded.first_seen), "
            "last_seen = max(last_seen, excluded.last_seen), "
            "details = coalesce(excluded.details, details)",
            rows,
        )
        return len(rows)

    def all(self, conn: sqlite3.Connection, since: float = 0.0) -> list[Row]:
        out = []
        cur = conn.execute(
            f"SELECT {', '.join(_FIELDS)} FROM agents WHERE last_seen >= ? ORDER BY last_seen DESC",
            (since,),
        )
        for row in cur:
            agent = dict(zip(_FIELDS, row, strict=True))
            agent["details"] = from_json(agent["details"])
            out.append(agent)
        return out
