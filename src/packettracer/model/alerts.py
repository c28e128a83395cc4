"""Alerts and the pure alert engine: deduplication, rate limiting, suppression, acknowledgement.

No I/O here: the engine service (services/alerts.py) adds persistence and outputs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}
LOUD = frozenset({"high", "critical"})
"""Severities that ring the terminal bell."""

Entities = dict[str, Any]


def check_severity(severity: str) -> str:
    if severity not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {severity!r} (known: {', '.join(SEVERITIES)})")
    return severity


def dedup_key(kind: str, entities: Entities) -> str:
    return kind + "|" + json.dumps(entities, sort_keys=True, separators=(",", ":"), default=str)


def entity_hosts(entities: Entities) -> list[str]:
    """Values of the entities that are IP addresses (the hosts an alert is about)."""
    out: list[str] = []
    for value in entities.values():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str):
                try:
                    ipaddress.ip_address(v)
                except ValueError:
                    continue
                out.append(v)
    return out


def entity_ports(entities: Entities) -> list[int]:
    out: list[int] = []
    for key, value in entities.items():
        if "port" in key:
            values = value if isinstance(value, list) else [value]
            out.extend(v for v in values if isinstance(v, int))
    return out


@dataclass
class Alert:
    kind: str
    """Stable machine name, e.g. scan.vertical, reputation.blocklist, route.change."""
    severity: str
    title: str
    entities: Entities
    """Role -> value: {"scanner": "10.0.0.1"}, {"host": ..., "list": ...}, {"port": 22}."""
    evidence: dict[str, Any]
    first_seen: float
    last_seen: float
    count: int = 1
    source: str = ""
    id: str = ""
    acked_by: str | None = None
    acked_at: float | None = None

    def __post_init__(self) -> None:
        if not self.id:
            digest = hashlib.sha1(
                f"{dedup_key(self.kind, self.entities)}|{self.first_seen:.6f}".encode()
            )
            self.id = digest.hexdigest()[:12]

    @property
    def key(self) -> str:
        return dedup_key(self.kind, self.entities)

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    @property
    def rank(self) -> int:
        return SEVERITY_RANK.get(self.severity, 0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["first_seen"] = round(self.first_seen, 6)
        out["last_seen"] = round(self.last_seen, 6)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SuppressionRule:
    """Silences matching alerts: every given field must match; `until` None means forever."""

    kind: str | None = None
    """Exact kind, or a prefix ending in '*' (scan.*)."""
    host: str | None = None
    """An address or a CIDR; matches when any host of the alert is inside."""
    port: int | None = None
    until: float | None = None
    created_at: float = 0.0
    reason: str = ""
    id: str = ""
    hits: int = 0
    _net: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind is None and self.host is None and self.port is None:
            raise ValueError("a suppression rule needs a kind, a host/CIDR or a port")
        if self.host is not None:
            try:
                self._net = ipaddress.ip_network(self.host, strict=False)
            except ValueError:
                raise ValueError(f"not an address or CIDR: {self.host!r}") from None
        if not self.id:
            text = f"{self.kind}|{self.host}|{self.port}|{self.created_at}"
            self.id = hashlib.sha1(text.encode()).hexdigest()[:10]

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    def matches(self, alert: Alert, now: float) -> bool:
        if not self.active(now):
            return False
        if self.kind is not None:
            if self.kind.endswith("*"):
                if not alert.kind.startswith(self.kind[:-1]):
                    return False
            elif alert.kind != self.kind:
                return False
        if self._net is not None:
            inside = False
            for h in entity_hosts(alert.entities):
                addr = ipaddress.ip_address(h)
                if addr.version == self._net.version and addr in self._net:
                    inside = True
                    break
            if not inside:
                return False
        return self.port is None or self.port in entity_ports(alert.entities)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "host": self.host,
            "port": self.port,
            "until": self.until,
            "created_at": self.created_at,
            "reason": self.reason,
            "hits": self.hits,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuppressionRule:
        keys = ("id", "kind", "host", "port", "until", "created_at", "reason", "hits")
        return cls(**{k: data[k] for k in keys if k in data})

    def describe(self) -> str:
        parts = []
        if self.kind:
            parts.append(f"kind={self.kind}")
        if self.host:
            parts.append(f"host={self.host}")
        if self.port is not None:
            parts.append(f"port={self.port}")
        parts.append("forever" if self.until is None else f"until {self.until:.0f}")
        return " ".join(parts)


class AlertEngine:
    """Keeps alerts (bounded), deduplicates, rate-limits and suppresses. `raise_alert` returns
    (alert, is_new), or (None, False) when suppressed or rate-limited."""

    def __init__(
        self,
        dedup_window: float = 300.0,
        rate_limit: int = 60,
        max_alerts: int = 10_000,
    ) -> None:
        self.dedup_window = dedup_window
        self.rate_limit = rate_limit
        self.max_alerts = max_alerts
        self.alerts: OrderedDict[str, Alert] = OrderedDict()
        self._by_key: dict[str, Alert] = {}
        self.rules: list[SuppressionRule] = []
        self.suppressed = 0
        self.rate_limited = 0
        # kind -> (minute bucket, new alerts in it)
        self._rate: dict[str, tuple[int, int]] = {}

    def raise_alert(
        self,
        kind: str,
        severity: str,
        title: str,
        entities: Entities,
        evidence: dict[str, Any],
        ts: float,
        source: str = "",
    ) -> tuple[Alert | None, bool]:
        check_severity(severity)
        key = dedup_key(kind, entities)
        current = self._by_key.get(key)
        if current is not None and ts - current.last_seen <= self.dedup_window:
            for rule in self.rules:
                if rule.matches(current, ts):
                    rule.hits += 1
                    self.suppressed += 1
                    return None, False
            current.count += 1
            if ts > current.last_seen:
                current.last_seen = ts
            current.evidence = evidence
            current.title = title
            if SEVERITY_RANK[severity] > current.rank:
                current.severity = severity
                # A worse severity needs a fresh look.
                current.acked_at = None
                current.acked_by = None
            self.alerts.move_to_end(current.id)
            return current, False
        alert = Alert(kind, severity, title, entities, evidence, ts, ts, source=source)
        for rule in self.rules:
            if rule.matches(alert, ts):
                rule.hits += 1
                self.suppressed += 1
                return None, False
        minute = int(ts // 60)
        bucket, n = self._rate.get(kind, (minute, 0))
        if bucket != minute:
            n = 0
        if n >= self.rate_limit:
            self.rate_limited += 1
            return None, False
        self._rate[kind] = (minute, n + 1)
        self.add(alert)
        return alert, True

    def add(self, alert: Alert) -> None:
        """Insert a known alert (restored from the store)."""
        self.alerts[alert.id] = alert
        self.alerts.move_to_end(alert.id)
        existing = self._by_key.get(alert.key)
        if existing is None or existing.last_seen <= alert.last_seen:
            self._by_key[alert.key] = alert
        while len(self.alerts) > self.max_alerts:
            _, old = self.alerts.popitem(last=False)
            if self._by_key.get(old.key) is old:
                del self._by_key[old.key]

    def get(self, alert_id: str) -> Alert | None:
        return self.alerts.get(alert_id)

    def ack(self, alert_id: str, who: str, when: float) -> Alert | None:
        alert = self.alerts.get(alert_id)
        if alert is not None and alert.acked_at is None:
            alert.acked_by = who
            alert.acked_at = when
            return alert
        return None

    def ack_many(self, ids: Iterable[str], who: str, when: float) -> list[Alert]:
        done = []
        for alert_id in ids:
            alert = self.ack(alert_id, who, when)
            if alert is not None:
                done.append(alert)
        return done

    def add_rule(self, rule: SuppressionRule) -> None:
        self.rules = [r for r in self.rules if r.id != rule.id]
        self.rules.append(rule)

    def remove_rule(self, rule_id: str) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def unacknowledged_count(self) -> int:
        return sum(1 for a in self.alerts.values() if a.acked_at is None)

    def sorted(
        self,
        min_severity: str | None = None,
        state: str = "all",
        since: float | None = None,
    ) -> list[Alert]:
        """Worst first, then newest first. state: all | unacked | acked."""
        floor = SEVERITY_RANK[min_severity] if min_severity else 0
        out = []
        for a in self.alerts.values():
            if a.rank < floor:
                continue
            if state == "unacked" and a.acked:
                continue
            if state == "acked" and not a.acked:
                continue
            if since is not None and a.last_seen < since:
                continue
            out.append(a)
        out.sort(key=lambda a: (-a.rank, -a.last_seen, a.id))
        return out

    def hosts_alerting(self) -> dict[str, str]:
        """Host -> worst severity among its unacknowledged alerts (for marking in panels)."""
        out: dict[str, str] = {}
        for a in self.alerts.values():
            if a.acked:
                continue
            for h in entity_hosts(a.entities):
                prev = out.get(h)
                if prev is None or SEVERITY_RANK[a.severity] > SEVERITY_RANK[prev]:
                    out[h] = a.severity
        return out
