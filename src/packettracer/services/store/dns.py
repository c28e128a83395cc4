"""DNS queries and their answers, as the DNS panel and the resolver see them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from packettracer.services.store.base import Repository, Row, from_json, to_json

_FIELDS = ("ts", "client", "server", "qname", "qtype", "rcode", "answers", "ttl")


class DnsRepository(Repository):
    table = "dns"
    time_column = "ts"

    def insert_many(self, conn: sqlite3.Connection, records: Iterable[Row]) -> int:
        rows = [
            (
                r["ts"],
                r.get("client"),
                r.get("server"),
                r["qname"],
                r.get("qtype"),
                r.get("rcode"),
                to_json(r.get("answers")),
                r.get("ttl"),
            )
            for r in records
        ]
        conn.executemany(
            "INSERT INTO dns (ts, client, server, qname, qtype, rcode, answers, ttl) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def recent(
        self,
        conn: sqlite3.Connection,
        since: float,
        qname: str | None = None,
        limit: int = 1000,
    ) -> list[Row]:
        sql = f"SELECT {', '.join(_FIELDS)} FROM dns WHERE ts >= ?"
        params: list[object] = [since]
        if qname is not None:
            sql += " AND qname = ?"
            params.append(qname)
        sql += " ORDER BY ts DESC LIMIT ?"
        params.append(limit)
        out = []
        for row in conn.execute(sql, params):
            record = dict(zip(_FIELDS, row, strict=True))
            record["answers"] = from_json(record["answers"])
            out.append(record)
        return out
