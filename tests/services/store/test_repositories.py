"""Each repository against a real database file: what goes in comes out."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from packettracer.services.store import Repositories, open_database
from packettracer.services.store.hosts import merge_hosts


@pytest.fixture
def conn(db_path: str) -> Iterator[sqlite3.Connection]:
    _, connection = open_database(db_path)
    yield connection
    connection.close()


def write(conn: sqlite3.Connection, fn, rows) -> None:
    conn.execute("BEGIN")
    fn(conn, rows)
    conn.execute("COMMIT")


def test_flows_keep_report_fields_and_extra_facts(conn, flow_factory) -> None:
    repos = Repositories()
    now = time.time()
    rows = [
        flow_factory(1, ts=now - 100, app="tls", names={"dst": "example.net"}),
        flow_factory(2, ts=now - 50, proto="other", proto_name="gre", sport=0, dport=0),
        flow_factory(3, ts=now - 10, tcp_state=None, site="branch-1", vlan=12),
    ]
    write(conn, repos.flows.insert_many, rows)
    back = repos.flows.query(conn, since=now - 1000)
    assert [r["src"] for r in back] == [r["src"] for r in rows]
    for original, stored in zip(rows, back, strict=True):
        assert stored == original
    assert repos.flows.query(conn, since=now - 60, host=rows[1]["dst"])[0]["proto_name"] == "gre"
    assert [r["src"] for r in repos.flows.query(conn, since=now - 1000, limit=2)] == [
        rows[1]["src"],
        rows[2]["src"],
    ]
    assert repos.flows.query(conn, since=now - 1000, until=now - 60) == [back[0]]


def test_top_destinations_and_summary(conn, flow_factory) -> None:
    repos = Repositories()
    now = time.time()
    rows = [flow_factory(i, ts=now - i, dst="198.51.100.7", bytes_fwd=1000) for i in range(3)]
    rows += [flow_factory(9, ts=now, dst="198.51.100.9", bytes_fwd=10)]
    rows += [flow_factory(10, ts=now - 5000, dst="198.51.100.10", bytes_fwd=10**9)]
    write(conn, repos.flows.insert_many, rows)
    top = repos.flows.top_destinations(conn, since=now - 60)
    assert [t["dst"] for t in top] == ["198.51.100.7", "198.51.100.9"]
    assert top[0]["flows"] == 3 and top[0]["bytes"] == 3 * (1000 + 4000)
    summary = repos.flows.summary(conn, since=now - 60)
    assert summary["flows"] == 4 and summary["destinations"] == 2
    assert repos.flows.oldest(conn) == pytest.approx(now - 5003)


def test_hosts_names_geo_and_owner_with_learned_times(conn) -> None:
    repos = Repositories()
    handlers = repos.handlers()
    t0 = time.time() - 100
    facts = [
        {"ip": "192.0.2.1", "name": "a.example", "source": "dns", "learned_at": t0},
        {"ip": "192.0.2.1", "name": "a.example", "source": "dns", "learned_at": t0 + 5},
        {"ip": "192.0.2.1", "name": "ptr.example", "source": "ptr", "learned_at": t0 + 1},
        {"ip": "192.0.2.1", "geo": {"country": "DE"}, "source": "ip-api", "learned_at": t0 + 2},
        {"ip": "192.0.2.2", "owner": {"asn": 64500}, "source": "rdap", "learned_at": t0 + 3},
    ]
    write(conn, handlers["hosts"], facts)
    hosts = merge_hosts(
        repos.hosts.recent(conn, t0 - 1, 100), repos.host_names.recent(conn, t0 - 1, 100)
    )
    by_ip = {h["ip"]: h for h in hosts}
    one = by_ip["192.0.2.1"]
    assert one["geo"] == {"country": "DE"} and one["geo_source"] == "ip-api"
    assert one["geo_at"] == pytest.approx(t0 + 2)
    names = {(n["name"], n["source"]): n["learned_at"] for n in one["names"]}
    assert names == {("a.example", "dns"): t0 + 5, ("ptr.example", "ptr"): t0 + 1}
    assert by_ip["192.0.2.2"]["owner"] == {"asn": 64500}
    assert by_ip["192.0.2.2"]["owner_source"] == "rdap"
    assert hosts[0]["ip"] == "192.0.2.1"  # most recently updated first


def test_dns_answers_round_trip(conn) -> None:
    repos = Repositories()
    now = time.time()
    record = {
        "ts": now,
        "client": "192.0.2.5",
        "server": "192.0.2.53",
        "qname": "www.example.org",
        "qtype": "A",
        "rcode": "NOERROR",
        "answers": ["198.51.100.1", "198.51.100.2"],
        "ttl": 300,
    }
    write(conn, repos.dns.insert_many, [record, dict(record, qname="other.example", ts=now - 9)])
    assert repos.dns.recent(conn, now - 1, qname="www.example.org") == [record]
    assert [r["qname"] for r in repos.dns.recent(conn, now - 60)] == [
        "www.example.org",
        "other.example",
    ]


def test_alerts_and_their_acknowledgement(conn) -> None:
    repos = Repositories()
    now = time.time()
    alert = {
        "uid": "u1",
        "ts": now,
        "severity": "high",
        "kind": "port-scan",
        "src": "192.0.2.9",
        "message": "scan of 100 ports",
        "details": {"ports": 100},
    }
    write(conn, repos.alerts.insert_many, [alert, dict(alert, uid="u2", message="second")])
    write(conn, repos.alerts.insert_many, [dict(alert, message="replayed")])  # same uid
    write(conn, repos.alerts.ack_many, [{"uid": "u1", "acked_at": now + 1}])
    got = {a["uid"]: a for a in repos.alerts.recent(conn, now - 1)}
    assert got["u1"]["acked"] is True and got["u1"]["acked_at"] == pytest.approx(now + 1)
    assert got["u1"]["message"] == "scan of 100 ports"
    assert got["u1"]["details"] == {"ports": 100}
    assert [a["uid"] for a in repos.alerts.recent(conn, now - 1, unacked_only=True)] == ["u2"]


def test_traces_with_hops_and_their_removal(conn) -> None:
    repos = Repositories()
    now = time.time()
    hops = [
        {"ttl": 1, "ip": "192.0.2.1", "rtt_ms": 0.4, "name": "gw", "asn": 64500},
        {"ttl": 2, "ip": None, "rtt_ms": None},
        {"ttl": 3, "ip": "198.51.100.1", "rtt_ms": 9.5},
    ]
    old = {"uid": "t0", "target": "example.net", "started_at": now - 99, "hops": hops[:1]}
    new = {
        "uid": "t1",
        "target": "example.net",
        "target_ip": "198.51.100.1",
        "method": "udp",
        "started_at": now,
        "finished_at": now + 2,
        "reached": True,
        "hops": hops,
    }
    write(conn, repos.traces.insert_many, [old, new, new])  # the duplicate uid is ignored
    history = repos.traces.history(conn, "example.net")
    assert [t["uid"] for t in history] == ["t1", "t0"]
    assert history[0]["reached"] is True
    assert history[0]["hops"] == [
        {"ttl": 1, "ip": "192.0.2.1", "rtt_ms": 0.4, "name": "gw", "asn": 64500},
        {"ttl": 2, "ip": None, "rtt_ms": None, "name": None},
        {"ttl": 3, "ip": "198.51.100.1", "rtt_ms": 9.5, "name": None},
    ]
    assert repos.traces.history(conn, "198.51.100.1")[0]["uid"] == "t1"
    conn.execute("BEGIN")
    assert repos.traces.delete_older(conn, now - 10, 500) == 1
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM hops").fetchone()[0] == 3  # t0's hop went too


def test_agents_upsert(conn) -> None:
    repos = Repositories()
    now = time.time()
    write(
        conn,
        repos.agents.upsert_many,
        [{"name": "branch-1", "address": "192.0.2.7", "version": "1.0", "seen_at": now - 50}],
    )
    write(conn, repos.agents.upsert_many, [{"name": "branch-1", "seen_at": now}])
    (agent,) = repos.agents.all(conn)
    assert agent["address"] == "192.0.2.7" and agent["version"] == "1.0"
    assert agent["first_seen"] == pytest.approx(now - 50)
    assert agent["last_seen"] == pytest.approx(now)


def test_delete_older_takes_small_batches(conn, flow_factory) -> None:
    repos = Repositories()
    write(conn, repos.flows.insert_many, [flow_factory(i) for i in range(1200)])
    conn.execute("UPDATE flows SET stored_at = stored_at - 10 * 86400 WHERE id <= 1000")
    cutoff = time.time() - 86400
    conn.execute("BEGIN")
    assert repos.flows.delete_older(conn, cutoff, 500) == 500
    conn.execute("COMMIT")
    assert repos.flows.delete_older(conn, cutoff, 500) == 500
    assert repos.flows.delete_older(conn, cutoff, 500) == 0
    assert conn.execute("SELECT count(*) FROM flows").fetchone()[0] == 200
