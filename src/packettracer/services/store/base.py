"""What every repository shares: JSON columns and batched retention deletes."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

Row = dict[str, Any]


# Built once: json.dumps with options builds a new encoder per call, which costs more than the
# encoding of a small dict (it was most of the per-row cost of storing a flow).
_encode = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False).encode


def to_json(value: Any) -> str | None:
    """A JSON column value; None stays NULL. Unknown objects are stored as their text."""
    if value is None:
        return None
    return _encode(value)


def from_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class Repository:
    """One table. Subclasses hold all SQL for it; values are always bound parameters."""

    table = ""
    time_column = ""
    """Column retention compares with the cutoff (epoch seconds); '' keeps rows forever."""

    def delete_older(self, conn: sqlite3.Connection, cutoff: float, limit: int) -> int:
        """Delete at most `limit` rows older than `cutoff` (the caller's transaction)."""
        if not self.time_column:
            return 0
        # Table and column names are class constants, never input.
        cur = conn.execute(
            f"DELETE FROM {self.table} WHERE rowid IN "
            f"(SELECT rowid FROM {self.table} WHERE {self.time_column} < ? LIMIT ?)",
            (cutoff, limit),
        )
        return cur.rowcount
