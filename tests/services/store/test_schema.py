"""Opening, creating and migrating the database; refusing what it cannot use."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from packettracer.services.store import Repositories, StoreError, connect, open_database
from packettracer.services.store.schema import SCHEMA_VERSION, user_version


def test_new_database_is_wal_incremental_private_and_current(db_path: str) -> None:
    location, conn = open_database(db_path)
    try:
        assert user_version(conn) == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"flows", "hosts", "host_names", "dns", "alerts", "traces", "hops", "agents"} <= (
            tables
        )
    finally:
        conn.close()
    folder = Path(db_path).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(db_path).stat().st_mode) == 0o600


def test_existing_folder_permissions_are_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    _, conn = open_database(str(tmp_path / "data.db"))
    conn.close()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_older_schema_is_migrated_and_keeps_its_rows(db_path: str, flow_factory) -> None:
    _, conn = open_database(db_path, migrate_to=1)
    assert user_version(conn) == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'traces'").fetchone() is None
    conn.execute("BEGIN")
    Repositories().flows.insert_many(conn, [flow_factory(1), flow_factory(2)])
    conn.execute("COMMIT")
    conn.close()

    _, conn = open_database(db_path)
    try:
        assert user_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM flows").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM traces").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_newer_schema_is_refused_and_left_untouched(db_path: str) -> None:
    _, conn = open_database(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = hashlib.sha256(Path(db_path).read_bytes()).hexdigest()
    with pytest.raises(StoreError) as info:
        open_database(db_path)
    message = str(info.value)
    assert "newer" in message and str(SCHEMA_VERSION + 7) in message
    assert "\n" not in message
    assert hashlib.sha256(Path(db_path).read_bytes()).hexdigest() == before


def test_a_file_that_is_not_a_database_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError) as info:
        open_database(str(path))
    assert "not an SQLite database" in str(info.value)
    assert path.read_bytes().startswith(b"these are my notes")


def test_a_path_that_cannot_be_created_suggests_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        open_database(str(blocker / "sub" / "data.db"))
    text = str(info.value)
    assert "cannot create folder" in text and "--db :memory:" in text
    assert "\n" not in text


def test_memory_databases_are_private_but_shared_with_their_readers(flow_factory) -> None:
    location, conn = open_database(":memory:")
    other_location, other = open_database(":memory:")
    reader = connect(location, reader=True)
    try:
        conn.execute("BEGIN")
        Repositories().flows.insert_many(conn, [flow_factory(1)])
        conn.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM flows").fetchone()[0] == 1
        assert other.execute("SELECT count(*) FROM flows").fetchone()[0] == 0
        assert location.uri != other_location.uri
    finally:
        for c in (reader, conn, other):
            c.close()


def test_home_folder_database_is_not_created_by_reading(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        open_database(str(tmp_path / "absent.db"), create=False)
    assert not (tmp_path / "absent.db").exists()


def test_parameters_are_bound_not_formatted(db_path: str, flow_factory) -> None:
    _, conn = open_database(db_path)
    evil = "x'); DROP TABLE flows; --"
    conn.execute("BEGIN")
    Repositories().flows.insert_many(conn, [flow_factory(1, src=evil, app=evil)])
    conn.execute("COMMIT")
    rows = Repositories().flows.query(conn, host=evil)
    conn.close()
    assert len(rows) == 1 and rows[0]["src"] == evil and rows[0]["app"] == evil
