"""The alert engine service: the one door every alert goes through.

Any feature raises an alert with

    alerts = runtime.features.get("alerts")      # None when the security feature is off
    if alerts is not None:
        alerts.raise_alert("route.change", "medium", "route to 1.2.3.4 changed",
                           entities={"target": "1.2.3.4"}, evidence={...}, source="trace")

`raise_alert` is synchronous and cheap (safe on the packet path). Deduplication, rate limiting
and suppression happen at once (model/alerts.py); persistence (through the store feature's
writer, when there is one), the JSON-lines file and the webhook happen in `flush()`, which
`run()` calls twice a second and `close()` once more at the end. Alerts and acknowledgements are
read back from the database on start, so they survive restarts.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packettracer.config import SecuritySettings
from packettracer.model.alerts import (
    LOUD,
    SEVERITY_RANK,
    Alert,
    AlertEngine,
    SuppressionRule,
    entity_hosts,
)

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
RESTORE_DAYS = 30.0


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return os.environ.get("USER", "user")


class AlertService:
    """Runtime service `alerts`. Read by the dashboard: `engine.sorted(...)`,
    `unacknowledged_count()`, `take_bell()`; written by every alert source: `raise_alert(...)`."""

    name = "alerts"

    def __init__(
        self,
        settings: SecuritySettings | None = None,
        store: Any = None,
        db_path: str | None = None,
    ) -> None:
        self.settings = settings or SecuritySettings()
        self.engine = AlertEngine(
            dedup_window=self.settings.dedup_window, rate_limit=self.settings.rate_limit
        )
        self.store = store
        self.db_path = db_path
        self.listeners: list[Callable[[Alert, bool], None]] = []
        """Called with (alert, is_new) for every raised alert that was not suppressed."""
        self.subscribers: list[Callable[[Alert], None]] = []
        """Called with each new alert (the relay agent forwards them to the collector)."""
        self.raised_total = 0
        self.bells = 0
        self.errors: list[str] = []
        self.webhook_sent = 0
        self.webhook_failed = 0
        self._new: list[Alert] = []
        self._acks: list[Alert] = []
        self._lines: list[dict[str, Any]] = []
        self._webhook: list[dict[str, Any]] = []
        self._stored: set[str] = set()
        self._stop = asyncio.Event()

    # -- the entry point ------------------------------------------------------------------------

    def raise_alert(
        self,
        kind: str,
        severity: str,
        title: str | None = None,
        entities: dict[str, Any] | None = None,
        evidence: dict[str, Any] | None = None,
        *,
        ts: float | None = None,
        source: str = "",
        summary: str | None = None,
    ) -> Alert | None:
        """Raise (or update, within the dedup window) an alert. `severity` is one of info, low,
        medium, high, critical; `kind` a stable dotted name; `title` (or `summary`) one line for
        people; `entities` role -> address/port/name (they identify the alert for dedup and
        suppression); `evidence` any JSON-able facts; `ts` epoch seconds (default now; packet
        time for alerts from a capture). Returns the alert, or None when a rule suppressed it or
        the kind's rate limit was hit. Raises ValueError for an unknown severity."""
        when = time.time() if ts is None else ts
        text = title or summary or kind
        alert, new = self.engine.raise_alert(
            kind, severity, text, dict(entities or {}), dict(evidence or {}), when, source
        )
        if alert is None:
            return None
        if new:
            self.raised_total += 1
            for subscriber in self.subscribers:
                try:
                    subscriber(alert)
                except Exception:
                    log.exception("alert subscriber failed")
            self._new.append(alert)
            if alert.severity in LOUD and self.settings.bell:
                self.bells += 1
            record = {"event": "alert", **alert.to_dict()}
            if self.settings.jsonl_file:
                self._lines.append(record)
            if self.settings.webhook_url:
                self._webhook.append(record)
        elif self.settings.jsonl_file:
            self._lines.append({"event": "update", **alert.to_dict()})
        for listener in self.listeners:
            try:
                listener(alert, new)
            except Exception:
                log.exception("alert listener failed")
        return alert

    def subscribe(self, callback: Callable[[Alert], None]) -> None:
        """`callback(alert)` for every new alert from now on."""
        self.subscribers.append(callback)

    def ingest_remote(self, site: str, alert: dict[str, Any]) -> Alert | None:
        """An alert a remote agent raised (relayed as `Alert.to_dict()`), raised here with the
        site among its entities so the same alert from two sites stays two alerts."""
        entities = dict(alert.get("entities") or {})
        entities["site"] = site
        severity = alert.get("severity", "info")
        if severity not in SEVERITY_RANK:
            severity = "info"
        return self.raise_alert(
            str(alert.get("kind") or "remote"),
            severity,
            str(alert.get("title") or alert.get("kind") or "remote alert"),
            entities,
            dict(alert.get("evidence") or {}),
            ts=alert.get("last_seen") or alert.get("first_seen"),
            source=f"{site}:{alert.get('source') or 'agent'}",
        )

    def total_count(self) -> int:
        """New alerts raised since start (the agent's heartbeat reports it)."""
        return self.raised_total

    # -- reading and acting ---------------------------------------------------------------------

    def unacknowledged_count(self) -> int:
        return self.engine.unacknowledged_count()

    def take_bell(self) -> bool:
        """True once per high/critical alert since the last call (the dashboard rings)."""
        if self.bells:
            self.bells = 0
            return True
        return False

    def hosts_alerting(self) -> dict[str, str]:
        return self.engine.hosts_alerting()

    def ack(self, alert_id: str, who: str | None = None) -> bool:
        alert = self.engine.ack(alert_id, who or current_user(), time.time())
        if alert is None:
            return False
        self._acked(alert)
        return True

    def ack_many(self, ids: list[str], who: str | None = None) -> int:
        done = self.engine.ack_many(ids, who or current_user(), time.time())
        for alert in done:
            self._acked(alert)
        return len(done)

    def _acked(self, alert: Alert) -> None:
        self._acks.append(alert)
        if self.settings.jsonl_file:
            self._lines.append({"event": "ack", **alert.to_dict()})

    def suppress(
        self,
        kind: str | None = None,
        host: str | None = None,
        port: int | None = None,
        duration: float | None = None,
        reason: str = "",
    ) -> SuppressionRule:
        """Add a rule (for `duration` seconds, or forever when None); raises ValueError."""
        now = time.time()
        rule = SuppressionRule(
            kind=kind,
            host=host,
            port=port,
            until=None if duration is None else now + duration,
            created_at=now,
            reason=reason,
        )
        self.engine.add_rule(rule)
        return rule

    def suppress_like(
        self, alert: Alert, by: str, duration: float | None = None
    ) -> SuppressionRule:
        """A rule from an alert: by "kind", "host" (its first host) or "both"."""
        hosts = entity_hosts(alert.entities)
        host = hosts[0] if hosts and by in ("host", "both") else None
        kind = alert.kind if by in ("kind", "both") or host is None else None
        return self.suppress(kind=kind, host=host, duration=duration, reason=f"from {alert.id}")

    # -- persistence and outputs ----------------------------------------------------------------

    def _writer(self) -> Any:
        store = self.store
        if store is None:
            return None
        writer = getattr(store, "writer", store)
        return writer if hasattr(writer, "enqueue") else None

    @staticmethod
    def to_row(alert: Alert) -> dict[str, Any]:
        hosts = entity_hosts(alert.entities)
        return {
            "uid": alert.id,
            "ts": alert.first_seen,
            "severity": alert.severity,
            "kind": alert.kind,
            "src": hosts[0] if hosts else None,
            "dst": hosts[1] if len(hosts) > 1 else None,
            "message": alert.title,
            "details": alert.to_dict(),
            "acked": alert.acked,
            "acked_at": alert.acked_at,
        }

    @staticmethod
    def from_row(row: dict[str, Any]) -> Alert:
        details = row.get("details")
        if isinstance(details, dict) and details.get("kind"):
            alert = Alert.from_dict(details)
        else:
            alert = Alert(
                kind=row["kind"],
                severity=row.get("severity") or "info",
                title=row.get("message") or "",
                entities={k: row[k] for k in ("src", "dst") if row.get(k)},
                evidence=details if isinstance(details, dict) else {},
                first_seen=row["ts"],
                last_seen=row["ts"],
                id=row.get("uid") or "",
            )
        if row.get("acked"):
            alert.acked_at = row.get("acked_at") or alert.acked_at or row["ts"]
            # The table keeps when, not who; the row's details may still say who.
            alert.acked_by = alert.acked_by or "?"
        else:
            alert.acked_at = None
            alert.acked_by = None
        return alert

    def restore(self, since: float | None = None) -> int:
        """Load stored alerts (and their acks) through the store feature, or straight from
        `db_path`; 0 without either."""
        since = since if since is not None else time.time() - RESTORE_DAYS * 86400
        reader = getattr(self.store, "recent_alerts", None)
        if reader is not None:
            rows = reader(since, limit=10_000)
        elif self.db_path and self.db_path != ":memory:":
            rows = load_alert_rows(self.db_path, since)
        else:
            return 0
        for row in reversed(rows):
            alert = self.from_row(row)
            self.engine.add(alert)
            self._stored.add(alert.id)
        return len(rows)

    async def flush(self) -> None:
        new, self._new = self._new, []
        acks, self._acks = self._acks, []
        writer = self._writer()
        if writer is not None:
            for alert in new:
                if alert.id not in self._stored:
                    writer.enqueue("alerts", self.to_row(alert))
                    self._stored.add(alert.id)
            for alert in acks:
                if alert.id not in self._stored:
                    writer.enqueue("alerts", self.to_row(alert))
                    self._stored.add(alert.id)
                writer.enqueue(
                    "alert_acks",
                    {
                        "uid": alert.id,
                        "acked": True,
                        "acked_at": alert.acked_at,
                        "acked_by": alert.acked_by,
                    },
                )
        if self._lines and self.settings.jsonl_file:
            lines, self._lines = self._lines, []
            await asyncio.to_thread(_append_lines, self.settings.jsonl_file, lines)
        if self._webhook and self.settings.webhook_url:
            batch, self._webhook = self._webhook, []
            await self._post(batch)

    async def _post(self, records: list[dict[str, Any]]) -> None:
        import httpx

        url = self.settings.webhook_url
        assert url
        async with httpx.AsyncClient(timeout=5.0) as client:
            for record in records:
                delay = 0.5
                for attempt in range(self.settings.webhook_retries + 1):
                    try:
                        resp = await client.post(url, json=record)
                        if resp.status_code < 500 and resp.status_code != 429:
                            if resp.is_success:
                                self.webhook_sent += 1
                            else:
                                self.webhook_failed += 1
                            break
                    except httpx.HTTPError as exc:
                        if attempt == self.settings.webhook_retries:
                            self.errors.append(f"webhook: {exc}")
                    if attempt == self.settings.webhook_retries:
                        self.webhook_failed += 1
                        break
                    await asyncio.sleep(delay)
                    delay *= 2

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), FLUSH_INTERVAL)
            except TimeoutError:
                pass
            try:
                await self.flush()
            except Exception as exc:
                log.exception("alert outputs failed")
                self.errors.append(str(exc))

    async def close(self) -> None:
        self._stop.set()
        await self.flush()


def _append_lines(path: str, records: list[dict[str, Any]]) -> None:
    file = Path(path).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")


def load_alert_rows(db_path: str, since: float, limit: int = 10_000) -> list[dict[str, Any]]:
    """Stored alerts newer than `since`, newest first, read through a read-only connection;
    [] when there is no database (yet). Raises StoreError for a database of a newer schema."""
    from packettracer.services.store import Location, Repositories, StoreError, connect
    from packettracer.services.store.schema import SCHEMA_VERSION, user_version

    location = Location(db_path)
    if location.memory or not location.exists():
        return []
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
            return []
        return Repositories().alerts.recent(conn, since, limit=limit)
    finally:
        conn.close()
