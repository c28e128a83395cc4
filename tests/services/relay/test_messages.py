"""The relay wire format: what is accepted, and every way a message is refused."""

from __future__ import annotations

import json

import pytest

from packettracer.config import Settings
from packettracer.services.relay import messages as m
from packettracer.services.relay.collector import Collector
from packettracer.services.runtime import Runtime

FLOW = {
    "proto": "udp",
    "src": "10.0.0.1",
    "sport": 5000,
    "dst": "10.0.0.2",
    "dport": 53,
    "packets_fwd": 1,
    "packets_rev": 1,
    "bytes_fwd": 80,
    "bytes_rev": 120,
    "first_seen": 1.0,
    "last_seen": 2.0,
}


def test_round_trip_ended_flow() -> None:
    data = m.encode("flows.ended", "site-1", {"ts": 3.0, "seq": 1, "flow": FLOW})
    msg = m.decode(data, "packettracer.site-1.flows.ended")
    assert msg["flow"]["dport"] == 53
    assert msg["v"] == m.SCHEMA_VERSION


@pytest.mark.parametrize(
    ("subject", "payload", "reason"),
    [
        ("packettracer.s.flows.ended", b"\xff\xfe not json", "not JSON"),
        ("packettracer.s.flows.ended", b"[1, 2]", "not a JSON object"),
        ("packettracer.s.flows.ended", json.dumps({"v": 99}).encode(), "schema version"),
        ("packettracer.s.nonsense", m.encode("stats", "s", {}), "unexpected subject"),
        ("packettracer.s$.stats", m.encode("stats", "s$", {}), "bad site"),
        (
            "packettracer.other.stats",
            m.encode("stats", "s", {"ts": 1.0, "packets": 1, "bytes": 1}),
            "does not match",
        ),
        (
            "packettracer.s.flows.ended",
            m.encode("flows.ended", "s", {"ts": 1.0, "seq": 1, "flow": {**FLOW, "sport": "x"}}),
            "sport",
        ),
        (
            "packettracer.s.heartbeat",
            m.encode("heartbeat", "s", {"ts": 1.0, "version": "1", "interval": True}),
            "interval",
        ),
    ],
)
def test_invalid_messages_are_refused(subject: str, payload: bytes, reason: str) -> None:
    with pytest.raises(m.InvalidMessage, match=reason):
        m.decode(payload, subject)


def test_oversized_message_refused_before_parsing() -> None:
    big = b"{" + b" " * m.MAX_MESSAGE_BYTES + b"}"
    with pytest.raises(m.InvalidMessage, match="exceeds"):
        m.decode(big, "packettracer.s.stats")


def test_collector_counts_and_drops_bad_messages_and_keeps_going() -> None:
    settings = Settings()
    collector = Collector(Runtime(settings), settings.relay)
    assert collector.handle("packettracer.s.stats", b"garbage") is None
    assert collector.handle("packettracer.s.stats", b"{" + b"x" * m.MAX_MESSAGE_BYTES) is None
    assert collector.malformed == 1 and collector.oversized == 1
    ok = m.encode("flows.ended", "s", {"ts": 1.0, "seq": 7, "flow": {**FLOW, "id": 3}})
    ended = []
    collector.runtime.pipeline.on_flow_end(ended.append)
    assert collector.handle("packettracer.s.flows.ended", ok) == "flows.ended"
    # a redelivery of the same sequence number is recognised and dropped
    assert collector.handle("packettracer.s.flows.ended", ok) == "flows.ended"
    assert len(ended) == 1 and collector.duplicates == 1
    assert ended[0].site == "s" and ended[0].dport == 53 and ended[0].packets == 2


def test_liveness_late_then_lost() -> None:
    settings = Settings()
    settings.relay.late_after = 3
    settings.relay.lost_after = 10
    collector = Collector(Runtime(settings), settings.relay)
    beat = m.encode("heartbeat", "s", {"ts": 100.0, "version": "0.1", "interval": 1.0})
    collector.handle("packettracer.s.heartbeat", beat)
    agent = collector.agents["s"]
    start = agent.last_heard
    assert collector.check_liveness(start + 1) == [] and agent.status == "live"
    assert collector.check_liveness(start + 5) == [] and agent.status == "late"
    assert collector.check_liveness(start + 11) == [agent] and agent.status == "lost"
    # lost is reported once, and a new heartbeat brings the agent back
    assert collector.check_liveness(start + 12) == []
    collector.handle("packettracer.s.heartbeat", beat)
    assert agent.status == "live"
