"""`packettracer history`: flows stored in the database, from the command line."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime
from typing import Any

from packettracer.config import Settings
from packettracer.errors import UsageError
from packettracer.model.flows import RECORD_FIELDS
from packettracer.services.report import format_csv, format_table
from packettracer.services.store import Location, Repositories, StoreError, connect
from packettracer.services.store.schema import SCHEMA_VERSION, user_version

HELP = "Print flows stored in the database (see --since and --host)."

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S")


# The table leads with when each flow began (local time); CSV and JSON keep epoch seconds.
TABLE_COLUMNS = ["start", *(c for c in RECORD_FIELDS if c not in ("first_seen", "last_seen"))]


def _with_start(flow: dict[str, Any]) -> dict[str, Any]:
    row = dict(flow)
    first = flow.get("first_seen")
    if isinstance(first, int | float):
        row["start"] = datetime.fromtimestamp(first).strftime("%Y-%m-%d %H:%M:%S")
    return row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        metavar="1h|2d|DATE",
        default="1d",
        help="how far back: 30m, 1h, 2d, 1w, or a date (2026-01-31 [13:45]); default 1d",
    )
    parser.add_argument("--until", metavar="DATE", help="only flows that began before this")
    parser.add_argument("--host", metavar="IP", help="only flows from or to this address")
    parser.add_argument("--limit", type=int, metavar="N", help="only the newest N flows")
    parser.add_argument(
        "--format", choices=["json", "csv", "table"], default="table", help="output format"
    )


def parse_since(text: str, now: float | None = None) -> float:
    """'1h' / '2d' / '30m' / '1w' before now, or a local date/time; raises UsageError."""
    now = time.time() if now is None else now
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2).lower()]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).timestamp()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(
            f"history: cannot read time {text!r}",
            "use 30m, 1h, 2d, 1w, or a date like 2026-01-31 or '2026-01-31 13:45'",
        ) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_since(args.since)
    until = parse_since(args.until) if args.until else None
    if args.limit is not None and args.limit <= 0:
        raise UsageError("history: --limit must be a positive number")
    location = Location(settings.store.db_path)
    if location.memory:
        raise UsageError("history: an in-memory database (--db :memory:) keeps nothing to show")
    if not location.exists():
        raise StoreError(f"database {location}: no such file (nothing has been recorded there)")
    conn = connect(location, reader=True)
    try:
        version = user_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {location} has schema version {version}, newer than this "
                f"packettracer understands ({SCHEMA_VERSION})",
                "upgrade packettracer",
            )
        if version == 0:
            raise StoreError(f"database {location}: not a packettracer database (no schema)")
        flows = Repositories().flows.query(conn, since, until, args.host, args.limit)
    finally:
        conn.close()
    if args.format == "json":
        out = json.dumps({"flows": flows}, separators=(",", ":")) + "\n"
    elif args.format == "csv":
        out = format_csv(flows)
    else:
        out = format_table([_with_start(f) for f in flows], TABLE_COLUMNS)
        if not flows:
            sys.stderr.write("packettracer: no flows stored in that period\n")
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0
