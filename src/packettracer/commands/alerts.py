"""`packettracer alerts`: alerts stored in the database (scans, blocklist hits, route changes,
lost agents, ...), newest first."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from packettracer.commands.history import parse_since
from packettracer.config import Settings
from packettracer.errors import UsageError
from packettracer.model.alerts import SEVERITIES, SEVERITY_RANK
from packettracer.services.alerts import AlertService, load_alert_rows
from packettracer.services.report import format_csv, format_table
from packettracer.services.store import Location, StoreError

HELP = "Print alerts stored in the database (see --since, --severity, --state)."

TABLE_COLUMNS = ["time", "severity", "kind", "count", "acked", "id", "title"]
CSV_COLUMNS = [
    "id",
    "first_seen",
    "last_seen",
    "severity",
    "kind",
    "count",
    "title",
    "entities",
    "acked_by",
    "acked_at",
    "source",
    "evidence",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        metavar="1h|2d|DATE",
        default="1d",
        help="how far back: 30m, 1h, 2d, 1w, or a date (2026-01-31 [13:45]); default 1d",
    )
    parser.add_argument(
        "--severity", choices=SEVERITIES, help="only alerts of this severity or worse"
    )
    parser.add_argument(
        "--state", choices=["all", "unacked", "acked"], default="all", help="acknowledged or not"
    )
    parser.add_argument("--limit", type=int, default=1000, metavar="N", help="at most N alerts")
    parser.add_argument(
        "--format", choices=["json", "csv", "table"], default="table", help="output format"
    )


def _table_row(alert: dict[str, Any]) -> dict[str, Any]:
    row = dict(alert)
    row["time"] = datetime.fromtimestamp(alert["last_seen"]).strftime("%Y-%m-%d %H:%M:%S")
    row["acked"] = alert.get("acked_by") or "-" if alert.get("acked_at") else "no"
    return row


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_since(args.since)
    if args.limit <= 0:
        raise UsageError("alerts: --limit must be a positive number")
    location = Location(settings.store.db_path)
    if location.memory:
        raise UsageError("alerts: an in-memory database (--db :memory:) keeps nothing to show")
    if not location.exists():
        raise StoreError(f"database {location}: no such file (nothing has been recorded there)")
    rows = load_alert_rows(settings.store.db_path, since, limit=args.limit)
    floor = SEVERITY_RANK[args.severity] if args.severity else 0
    alerts = []
    for row in rows:
        alert = AlertService.from_row(row)
        if alert.rank < floor:
            continue
        if args.state == "unacked" and alert.acked or args.state == "acked" and not alert.acked:
            continue
        alerts.append(alert.to_dict())
    if args.format == "json":
        out = json.dumps({"alerts": alerts}, separators=(",", ":")) + "\n"
    elif args.format == "csv":
        out = format_csv(alerts, CSV_COLUMNS)
    else:
        out = format_table([_table_row(a) for a in alerts], TABLE_COLUMNS)
        if not alerts:
            sys.stderr.write("packettracer: no alerts stored in that period\n")
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0
