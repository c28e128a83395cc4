"""Opening the SQLite database: the folder (owner-only), WAL, pragmas, and one-line errors.

Every connection (the writer's and each reader's) is opened here, so all of them agree on the
journal mode and the busy timeout. ':memory:' becomes a named shared-cache in-memory database,
so that readers on their own connections see what the writer wrote.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from pathlib import Path

from packettracer.errors import PacketTracerError

MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 2_000
"""How long one statement waits for another process's lock before SQLITE_BUSY; the writer then
keeps its rows and retries, so a longer lock delays rows but never loses them."""

_memory_ids = itertools.count(1)

# SQLite primary result codes the writer tells apart (the extended code's low byte).
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_FULL = 13
SQLITE_IOERR = 10


class StoreError(PacketTracerError):
    """The database cannot be opened, created, written or understood."""


def error_code(exc: BaseException) -> int:
    """Primary SQLite result code of a sqlite3 error (0 when unknown)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (code & 0xFF) if isinstance(code, int) else 0


def is_disk_full(exc: BaseException) -> bool:
    code = error_code(exc)
    if code == SQLITE_FULL:
        return True
    # A full disk met while growing the WAL or its index surfaces as an I/O error.
    return code == SQLITE_IOERR and "full" in str(exc).lower()


def is_busy(exc: BaseException) -> bool:
    return error_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED) or "locked" in str(exc).lower()


class Location:
    """Where a database lives: a file path, or a private in-memory database."""

    def __init__(self, db_path: str) -> None:
        self.requested = db_path
        self.memory = db_path.strip() == MEMORY
        if self.memory:
            # Shared cache, so the writer and the readers (separate connections) see one
            # database; it lives until the last connection closes.
            self.uri = f"file:packettracer-mem-{os.getpid()}-{next(_memory_ids)}"
            self.uri += "?mode=memory&cache=shared"
            self.path: Path | None = None
        else:
            self.path = Path(db_path).expanduser()
            self.uri = ""

    def __str__(self) -> str:
        return MEMORY if self.memory else str(self.path)

    def exists(self) -> bool:
        return self.memory or (self.path is not None and self.path.exists())

    def prepare_folder(self) -> None:
        """Create the database's folder (owner-only) if it is missing."""
        if self.path is None:
            return
        folder = self.path.parent
        if folder.is_dir():
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask; set it exactly for the folder we made.
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise unusable(self, f"cannot create folder {folder}: {exc.strerror}") from None


def unusable(location: Location, reason: str) -> StoreError:
    return StoreError(
        f"database {location}: {reason}",
        "run with --db :memory: to keep nothing on disk, or --db PATH for another file",
    )


def connect(location: Location, *, reader: bool = False, fresh: bool = False) -> sqlite3.Connection:
    """A connection with the project's pragmas; raises StoreError with one line on failure.

    Transactions are explicit (isolation_level=None): the writer groups a batch in BEGIN/COMMIT.
    """
    try:
        if location.memory:
            conn = sqlite3.connect(
                location.uri, uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            assert location.path is not None
            conn = sqlite3.connect(
                str(location.path),
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
    except sqlite3.Error as exc:
        raise unusable(location, str(exc)) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if fresh:
            # Must precede the first write (even switching to WAL writes the header), so that
            # retention's deletes can later be given back with incremental_vacuum.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if location.memory:
            if reader:
                # Shared-cache readers would otherwise get SQLITE_LOCKED during a write.
                conn.execute("PRAGMA read_uncommitted = 1")
        else:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise unusable(location, f"cannot use WAL journal mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            if not reader:
                # The writer's index pages stay cached between batches, and checkpoints copy
                # each hot page once per 16 MB of WAL instead of once per 4 MB.
                conn.execute("PRAGMA cache_size = -32768")
                conn.execute("PRAGMA wal_autocheckpoint = 4000")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise unusable(location, _reason(exc)) from None
    return conn


def check_writable(location: Location, conn: sqlite3.Connection) -> None:
    """Take and release the write lock once, so a read-only file fails at start, not later."""
    # A lock held by another process must not delay the start: wait briefly, not the full
    # busy timeout (the writer retries its batches anyway).
    conn.execute("PRAGMA busy_timeout = 100")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        if not is_busy(exc):
            raise unusable(location, _reason(exc)) from None
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text:
        return "not an SQLite database (or encrypted / damaged)"
    return text
