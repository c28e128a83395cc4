"""The pure alert engine: dedup, suppression, rate limit, acknowledgement, ordering."""

from __future__ import annotations

import pytest

from packettracer.model.alerts import AlertEngine, SuppressionRule, entity_hosts, entity_ports


def test_dedup_within_window_updates_one_alert() -> None:
    eng = AlertEngine(dedup_window=60)
    a, new = eng.raise_alert(
        "scan.vertical", "medium", "t1", {"scanner": "10.0.0.1"}, {"n": 1}, 100
    )
    assert new and a is not None
    b, new2 = eng.raise_alert(
        "scan.vertical", "medium", "t2", {"scanner": "10.0.0.1"}, {"n": 2}, 150
    )
    assert b is a and not new2
    assert a.count == 2 and a.first_seen == 100 and a.last_seen == 150
    assert a.evidence == {"n": 2} and a.title == "t2"
    # other entities: another alert
    c, new3 = eng.raise_alert("scan.vertical", "medium", "t", {"scanner": "10.0.0.2"}, {}, 150)
    assert new3 and c is not a
    # past the window: a new alert for the same kind and entities
    d, new4 = eng.raise_alert("scan.vertical", "medium", "t", {"scanner": "10.0.0.1"}, {}, 300)
    assert new4 and d is not a and d.id != a.id
    assert len(eng.alerts) == 3


def test_worse_severity_escalates_and_reopens() -> None:
    eng = AlertEngine()
    a, _ = eng.raise_alert("k", "low", "t", {"host": "10.0.0.1"}, {}, 1)
    assert a is not None
    eng.ack(a.id, "alice", 2)
    assert a.acked
    eng.raise_alert("k", "high", "t", {"host": "10.0.0.1"}, {}, 3)
    assert a.severity == "high" and not a.acked


def test_unknown_severity_rejected() -> None:
    with pytest.raises(ValueError, match="unknown severity"):
        AlertEngine().raise_alert("k", "warning", "t", {}, {}, 1)


def test_suppression_by_kind_host_cidr_port_and_time() -> None:
    eng = AlertEngine()
    eng.add_rule(SuppressionRule(kind="scan.*", host="10.1.0.0/16", until=200, created_at=0))
    assert eng.raise_alert("scan.sweep", "low", "t", {"scanner": "10.1.2.3"}, {}, 100)[0] is None
    # outside the CIDR, or another kind: raised
    assert eng.raise_alert("scan.sweep", "low", "t", {"scanner": "10.2.2.3"}, {}, 100)[0]
    assert eng.raise_alert("reputation.bogon", "low", "t", {"host": "10.1.2.3"}, {}, 100)[0]
    # the rule expired
    assert eng.raise_alert("scan.sweep", "low", "t", {"scanner": "10.1.2.3"}, {}, 250)[0]
    assert eng.suppressed == 1 and eng.rules[0].hits == 1

    eng.add_rule(SuppressionRule(port=22, created_at=1))
    assert eng.raise_alert("svc", "info", "t", {"host": "10.9.9.9", "port": 22}, {}, 300)[0] is None
    assert eng.raise_alert("svc", "info", "t", {"host": "10.9.9.9", "port": 23}, {}, 300)[0]
    forever = SuppressionRule(host="2001:db8::/32", created_at=2)
    eng.add_rule(forever)
    assert forever.until is None and forever.active(1e12)
    assert eng.raise_alert("x", "info", "t", {"host": "2001:db8::5"}, {}, 1e9)[0] is None


def test_rule_needs_a_field_and_valid_cidr() -> None:
    with pytest.raises(ValueError):
        SuppressionRule()
    with pytest.raises(ValueError, match="not an address"):
        SuppressionRule(host="10.0.0.0/33")


def test_rate_limit_per_kind_and_minute() -> None:
    eng = AlertEngine(rate_limit=3)
    raised = [
        eng.raise_alert("k", "info", "t", {"host": f"10.0.0.{i}"}, {}, 60.0)[0] for i in range(5)
    ]
    assert sum(a is not None for a in raised) == 3 and eng.rate_limited == 2
    assert eng.raise_alert("other", "info", "t", {"host": "10.0.0.9"}, {}, 60.0)[0]
    assert eng.raise_alert("k", "info", "t", {"host": "10.0.0.9"}, {}, 125.0)[0]


def test_ack_and_sorting_and_filters() -> None:
    eng = AlertEngine()
    low, _ = eng.raise_alert("a", "low", "t", {"host": "10.0.0.1"}, {}, 10)
    crit, _ = eng.raise_alert("b", "critical", "t", {"host": "10.0.0.2"}, {}, 5)
    low2, _ = eng.raise_alert("c", "low", "t", {"host": "10.0.0.3"}, {}, 20)
    assert low and crit and low2
    assert [a.id for a in eng.sorted()] == [crit.id, low2.id, low.id]
    assert eng.unacknowledged_count() == 3
    assert eng.ack(crit.id, "bob", 30) is crit
    assert eng.ack(crit.id, "bob", 31) is None  # already acknowledged
    assert crit.acked_by == "bob" and crit.acked_at == 30
    assert eng.unacknowledged_count() == 2
    assert [a.id for a in eng.sorted(state="unacked")] == [low2.id, low.id]
    assert [a.id for a in eng.sorted(state="acked")] == [crit.id]
    assert [a.id for a in eng.sorted(min_severity="high")] == [crit.id]
    assert len(eng.ack_many([low.id, low2.id], "bob", 40)) == 2
    assert eng.unacknowledged_count() == 0
    assert eng.hosts_alerting() == {}


def test_entities_helpers() -> None:
    ent = {"scanner": "10.0.0.1", "targets": ["10.0.0.2", "x"], "port": 22, "list": "drop"}
    assert entity_hosts(ent) == ["10.0.0.1", "10.0.0.2"]
    assert entity_ports(ent) == [22]


def test_alert_round_trip() -> None:
    eng = AlertEngine()
    a, _ = eng.raise_alert("k", "high", "title", {"host": "10.0.0.1"}, {"e": [1]}, 10, "src")
    assert a is not None
    from packettracer.model.alerts import Alert

    b = Alert.from_dict(a.to_dict())
    assert b == a
