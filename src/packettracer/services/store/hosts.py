"""Per-host knowledge: geo and ownership (table `hosts`) and names (table `host_names`), each
with its source and the time it was learned, so caches can warm up on the next start."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from packettracer.services.store.base import Repository, Row, from_json, to_json


class HostRepository(Repository):
    """One row per address: the latest geo and ownership facts."""

    table = "hosts"
    time_column = "updated_at"

    def upsert_many(self, conn: sqlite3.Connection, facts: Iterable[Row]) -> int:
        touch: list[tuple[Any, ...]] = []
        geo: list[tuple[Any, ...]] = []
        owner: list[tuple[Any, ...]] = []
        for fact in facts:
            ip, at = fact["ip"], fact["learned_at"]
            touch.append((ip, at))
            if fact.get("geo") is not None:
                geo.append((to_json(fact["geo"]), fact.get("source"), at, ip))
            if fact.get("owner") is not None:
                owner.append((to_json(fact["owner"]), fact.get("source"), at, ip))
        conn.executemany(
            "INSERT INTO hosts (ip, updated_at) VALUES (?, ?) ON CONFLICT(ip) DO UPDATE SET "
            "updated_at = max(updated_at, excluded.updated_at)",
            touch,
        )
        conn.executemany(
            "UPDATE hosts SET geo = ?, geo_source = ?, geo_at = ? WHERE ip = ?",
            geo,
        )
        conn.executemany(
            "UPDATE hosts SET owner = ?, owner_source = ?, owner_at = ? WHERE ip = ?",
            owner,
        )
        return len(touch)

    def recent(self, conn: sqlite3.Connection, since: float, limit: int) -> list[Row]:
        cur = conn.execute(
            "SELECT ip, geo, geo_source, geo_at, owner, owner_source, owner_at, updated_at "
            "FROM hosts WHERE updated_at >= ? ORDER BY updated_at DESC LIMIT ?",
            (since, limit),
        )
        return [
            {
                "ip": ip,
                "geo": from_json(geo),
                "geo_source": geo_source,
                "geo_at": geo_at,
                "owner": from_json(owner),
                "owner_source": owner_source,
                "owner_at": owner_at,
                "updated_at": updated_at,
                "names": [],
            }
            for ip, geo, geo_source, geo_at, owner, owner_source, owner_at, updated_at in cur
        ]


class HostNameRepository(Repository):
    """Names of an address, one row per (address, name, source): 'dns' (seen in an answer),
    'ptr' (reverse lookup), 'sni', 'mdns', ... whatever the resolver calls its sources."""

    table = "host_names"
    time_column = "learned_at"

    def upsert_many(self, conn: sqlite3.Connection, facts: Iterable[Row]) -> int:
        rows = [
            (f["ip"], f["name"], f.get("source") or "unknown", f["learned_at"])
            for f in facts
            if f.get("name")
        ]
        conn.executemany(
            "INSERT INTO host_names (ip, name, source, learned_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(ip, name, source) DO UPDATE SET "
            "learned_at = max(learned_at, excluded.learned_at)",
            rows,
        )
        return len(rows)

    def recent(self, conn: sqlite3.Connection, since: float, limit: int) -> list[Row]:
        cur = conn.execute(
            "SELECT ip, name, source, learned_at FROM host_names WHERE learned_at >= ? "
            "ORDER BY learned_at DESC LIMIT ?",
            (since, limit),
        )
        return [
            {"ip": ip, "name": name, "source": source, "learned_at": at}
            for ip, name, source, at in cur
        ]


def merge_hosts(hosts: list[Row], names: list[Row]) -> list[Row]:
    """Host rows with their names attached (newest name first), most recently updated first."""
    by_ip = {h["ip"]: h for h in hosts}
    for name in names:
        host = by_ip.get(name["ip"])
        if host is None:
            host = {
                "ip": name["ip"],
                "geo": None,
                "geo_source": None,
                "geo_at": None,
                "owner": None,
                "owner_source": None,
                "owner_at": None,
                "updated_at": name["learned_at"],
                "names": [],
            }
            by_ip[name["ip"]] = host
        host["names"].append(
            {"name": name["name"], "source": name["source"], "learned_at": name["learned_at"]}
        )
    return sorted(by_ip.values(), key=lambda h: h["updated_at"], reverse=True)
