"""SQLite persistence: the connection (db), the schema and its migrations (schema), one
repository per table (flows, hosts, dns, alerts, traces, agents) and the single batched writer
(writer). Only the repositories hold SQL. The Feature that attaches all this to a Runtime is
`packettracer.services.store_feature`."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from packettracer.services.store.agents import AgentRepository
from packettracer.services.store.alerts import AlertRepository
from packettracer.services.store.base import Repository, Row
from packettracer.services.store.db import (
    Location,
    StoreError,
    check_writable,
    connect,
    unusable,
)
from packettracer.services.store.dns import DnsRepository
from packettracer.services.store.flows import FlowRepository
from packettracer.services.store.hosts import HostNameRepository, HostRepository
from packettracer.services.store.schema import SCHEMA_VERSION, migrate, newer_schema
from packettracer.services.store.traces import TraceRepository

Handler = Callable[[sqlite3.Connection, list[Row]], int]


class Repositories:
    """Every table's repository, and which of them the writer uses for each kind of row."""

    def __init__(self) -> None:
        self.flows = FlowRepository()
        self.hosts = HostRepository()
        self.host_names = HostNameRepository()
        self.dns = DnsRepository()
        self.alerts = AlertRepository()
        self.traces = TraceRepository()
        self.agents = AgentRepository()

    def with_retention(self) -> list[Repository]:
        return [
            r
            for r in (
                self.flows,
                self.dns,
                self.alerts,
                self.traces,
                self.host_names,
                self.hosts,
                self.agents,
            )
            if r.time_column
        ]

    def handlers(self) -> dict[str, Handler]:
        """Row kind -> writer, in the order a batch applies them (acks after the inserts)."""

        def hosts(conn: sqlite3.Connection, rows: list[Row]) -> int:
            self.host_names.upsert_many(conn, rows)
            return self.hosts.upsert_many(conn, rows)

        return {
            "flows": self.flows.insert_many,
            "hosts": hosts,
            "dns": self.dns.insert_many,
            "alerts": self.alerts.insert_many,
            "alert_acks": self.alerts.ack_many,
            "traces": self.traces.insert_many,
            "agents": self.agents.upsert_many,
        }


KINDS: tuple[str, ...] = tuple(Repositories().handlers())


def open_database(
    db_path: str, *, create: bool = True, migrate_to: int = SCHEMA_VERSION
) -> tuple[Location, sqlite3.Connection]:
    """Open (creating the folder and file if `create`), check writability, migrate.

    Raises StoreError with one line when the path is unusable or the schema is too new.
    """
    location = Location(db_path)
    if not create and not location.exists():
        raise StoreError(f"database {location}: no such file (nothing recorded there yet)")
    location.prepare_folder()
    if location.path is not None and location.path.exists():
        _refuse_newer(location, location.path)
    new_file = location.memory or (location.path is not None and not location.path.exists())
    conn = connect(location, fresh=new_file)
    if new_file and location.path is not None:
        try:
            # What was captured is private: owner-only, like the folder.
            os.chmod(location.path, 0o600)
        except OSError:
            pass
    try:
        check_writable(location, conn)
        migrate(conn, location, migrate_to)
    except BaseException:
        conn.close()
        raise
    return location, conn


def _refuse_newer(location: Location, path: Path) -> None:
    """Read the schema version without writing anything (switching to WAL rewrites the header),
    so that a database from a newer packettracer is left byte-for-byte untouched."""
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise unusable(location, str(exc)) from None
    try:
        version = int(probe.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError:
        return  # connect() turns this into its one-line error
    finally:
        probe.close()
    if version > SCHEMA_VERSION:
        raise newer_schema(location, version)


__all__ = [
    "KINDS",
    "Location",
    "Repositories",
    "Row",
    "StoreError",
    "open_database",
    "connect",
]
