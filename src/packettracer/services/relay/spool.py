"""The agent's on-disk spool: durable messages wait here while the NATS server is unreachable and
are replayed in order on reconnect. SQLite gives atomic appends and survives an agent restart."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class Spool:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool ("
            " id INTEGER PRIMARY KEY, subject TEXT NOT NULL, msg_id TEXT NOT NULL,"
            " payload BLOB NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        self._count = self._db.execute("SELECT count(*) FROM spool").fetchone()[0]
        self.spooled_total = 0

    def __len__(self) -> int:
        return int(self._count)

    def next_seq(self, key: str, n: int = 1) -> int:
        """Reserve `n` sequence numbers for `key`; returns the first. Persistent across restarts,
        so a restarted agent never reuses a number (the collector deduplicates on it)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            first = (row[0] if row else 0) + 1
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, first + n - 1),
            )
        return int(first)

    def append(self, items: list[tuple[str, str, bytes]]) -> None:
        if not items:
            return
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO spool(subject, msg_id, payload) VALUES (?, ?, ?)", items)
        self._db.execute("COMMIT")
        self._count += len(items)
        self.spooled_total += len(items)

    def peek(self, limit: int) -> list[tuple[int, str, str, bytes]]:
        rows = self._db.execute(
            "SELECT id, subject, msg_id, payload FROM spool ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def remove_through(self, last_id: int) -> None:
        cur = self._db.execute("DELETE FROM spool WHERE id <= ?", (last_id,))
        self._count = max(0, self._count - cur.rowcount)

    def close(self) -> None:
        self._db.close()
