"""The database schema as forward migrations, versioned with `PRAGMA user_version`.

Migration N brings a database from version N-1 to N; each runs in its own transaction at start.
A database newer than this program is refused (never overwritten). Tables never change for new
flow facts: ended flows keep everything beyond the report's columns in the JSON column `ext`.
"""

from __future__ import annotations

import sqlite3

from packettracer.services.store.db import Location, StoreError, unusable

MIGRATIONS: list[str] = [
    # 1: flows, hosts and their names, DNS, alerts
    """
    CREATE TABLE flows (
        id INTEGER PRIMARY KEY,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        proto TEXT NOT NULL,
        src TEXT NOT NULL,
        sport INTEGER,
        dst TEXT NOT NULL,
        dport INTEGER,
        packets_fwd INTEGER NOT NULL DEFAULT 0,
        packets_rev INTEGER NOT NULL DEFAULT 0,
        bytes_fwd INTEGER NOT NULL DEFAULT 0,
        bytes_rev INTEGER NOT NULL DEFAULT 0,
        duration REAL,
        tcp_state TEXT,
        end_reason TEXT,
        site TEXT,
        ext TEXT,
        stored_at REAL NOT NULL
    );
    CREATE INDEX flows_first_seen ON flows(first_seen);
    CREATE INDEX flows_last_seen ON flows(last_seen);
    CREATE INDEX flows_src ON flows(src);
    CREATE INDEX flows_dst ON flows(dst);

    CREATE TABLE hosts (
        ip TEXT PRIMARY KEY,
        geo TEXT,
        geo_source TEXT,
        geo_at REAL,
        owner TEXT,
        owner_source TEXT,
        owner_at REAL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX hosts_updated_at ON hosts(updated_at);

    CREATE TABLE host_names (
        ip TEXT NOT NULL,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        learned_at REAL NOT NULL,
        PRIMARY KEY (ip, name, source)
    );
    CREATE INDEX host_names_learned_at ON host_names(learned_at);

    CREATE TABLE dns (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        client TEXT,
        server TEXT,
        qname TEXT NOT NULL,
        qtype TEXT,
        rcode TEXT,
        answers TEXT,
        ttl INTEGER
    );
    CREATE INDEX dns_ts ON dns(ts);
    CREATE INDEX dns_qname ON dns(qname);

    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        uid TEXT UNIQUE,
        ts REAL NOT NULL,
        severity TEXT NOT NULL,
        kind TEXT NOT NULL,
        src TEXT,
        dst TEXT,
        message TEXT NOT NULL,
        details TEXT,
        acked INTEGER NOT NULL DEFAULT 0,
        acked_at REAL
    );
    CREATE INDEX alerts_ts ON alerts(ts);
    """,
    # 2: route history (traceroute runs and their hops) and remote agents
    """
    CREATE TABLE traces (
        id INTEGER PRIMARY KEY,
        uid TEXT UNIQUE,
        target TEXT NOT NULL,
        target_ip TEXT,
        method TEXT,
        started_at REAL NOT NULL,
        finished_at REAL,
        reached INTEGER NOT NULL DEFAULT 0,
        details TEXT
    );
    CREATE INDEX traces_target ON traces(target);
    CREATE INDEX traces_started_at ON traces(started_at);

    CREATE TABLE hops (
        trace_id INTEGER NOT NULL REFERENCES traces(id) ON DELETE CASCADE,
        ttl INTEGER NOT NULL,
        ip TEXT,
        rtt_ms REAL,
        name TEXT,
        details TEXT,
        PRIMARY KEY (trace_id, ttl)
    );

    CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        address TEXT,
        version TEXT,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        details TEXT
    );
    CREATE INDEX agents_last_seen ON agents(last_seen);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def newer_schema(location: Location, version: int) -> StoreError:
    return StoreError(
        f"database {location} has schema version {version}, newer than this "
        f"packettracer understands ({SCHEMA_VERSION}); it was left untouched",
        "upgrade packettracer, or use --db PATH for another file",
    )


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    conn: sqlite3.Connection, location: Location, target: int = SCHEMA_VERSION
) -> tuple[int, int]:
    """Bring the database to `target`; returns (version before, version after).

    `target` below the latest exists for tests that build an old database.
    """
    try:
        current = user_version(conn)
    except sqlite3.DatabaseError as exc:
        raise unusable(location, str(exc)) from None
    if current > SCHEMA_VERSION:
        raise newer_schema(location, current)
    for version in range(current + 1, target + 1):
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise unusable(location, f"cannot migrate to schema {version}: {exc}") from None
        try:
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise unusable(location, f"cannot migrate to schema {version}: {exc}") from None
    return current, max(current, target)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
