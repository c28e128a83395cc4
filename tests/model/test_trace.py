"""Pure traceroute logic: hop statistics, paths, route-change diffs, RTT baseline shifts."""

from __future__ import annotations

import pytest

from packettracer.model.trace import (
    HopStats,
    PathHop,
    ProbeReply,
    RttBaseline,
    TargetState,
    TracePath,
    build_path,
    compare_paths,
    remote_ends,
    sparkline,
)


def path(addresses: list[str | None], reached: bool = True, asns: list[int | None] | None = None):
    asns = asns or [None] * len(addresses)
    hops = [
        PathHop(
            i + 1,
            a,
            1.0 if a else None,
            asn=asns[i],
            destination=reached and i == len(addresses) - 1,
        )
        for i, a in enumerate(addresses)
    ]
    return TracePath("t", "10.0.0.9", "icmp", 100.0, hops, reached)


def test_hop_stats_loss_rtt_and_jitter() -> None:
    hop = HopStats(1)
    hop.record_sent(4)
    for rtt in (10.0, 14.0, 12.0):
        hop.record_reply(ProbeReply(1, "192.0.2.1", rtt))
    assert hop.received == 3 and hop.loss == pytest.approx(0.25)
    assert (hop.last_ms, hop.min_ms, hop.max_ms) == (12.0, 10.0, 14.0)
    assert hop.avg_ms == pytest.approx(12.0)
    assert hop.jitter_ms == pytest.approx(3.0)  # |14-10| and |12-14|
    assert hop.address == "192.0.2.1" and not hop.silent
    silent = HopStats(2)
    silent.record_sent(3)
    assert silent.silent and silent.loss == 1.0 and silent.address is None
    assert silent.to_dict()["silent"] is True


def test_build_path_takes_majority_address_and_stops_at_destination() -> None:
    replies = [
        ProbeReply(1, "192.0.2.1", 1.0),
        ProbeReply(1, "192.0.2.1", 1.2),
        ProbeReply(1, "192.0.2.99", 1.1),
        ProbeReply(3, "10.0.0.9", 5.0, destination=True),
        ProbeReply(4, "10.0.0.9", 5.0, destination=True),
    ]
    p = build_path("t", "10.0.0.9", "udp", 1.0, replies, probed_ttls=5)
    assert p.addresses() == ["192.0.2.1", None, "10.0.0.9"]
    assert p.reached and p.hop_count == 3 and p.rtt_ms == 5.0


def test_build_path_cuts_trailing_silence_when_not_reached() -> None:
    p = build_path("t", "10.0.0.9", "icmp", 1.0, [ProbeReply(1, "192.0.2.1", 1.0)], 30)
    assert p.addresses() == ["192.0.2.1"] and not p.reached


def test_compare_detects_hop_and_count_change() -> None:
    old = path(["10.201.1.1", "10.201.12.2", "10.201.2.2"])
    new = path(["10.201.1.1", "10.201.13.3", "10.201.23.2", "10.201.2.2"])
    change = compare_paths(old, new)
    assert change is not None
    assert change.kinds == ["hop", "hop_count"]
    assert [(c.ttl, c.old, c.new) for c in change.hop_changes] == [
        (2, "10.201.12.2", "10.201.13.3"),
        (3, "10.201.2.2", "10.201.23.2"),
        (4, None, "10.201.2.2"),
    ]
    assert (change.old_hop_count, change.new_hop_count) == (3, 4)
    assert "hop 2: 10.201.12.2 -> 10.201.13.3" in change.summary()


def test_silent_hop_is_not_a_change() -> None:
    old = path(["10.0.0.1", "10.0.1.1", "10.0.0.9"])
    new = path(["10.0.0.1", None, "10.0.0.9"])
    assert compare_paths(old, new) is None
    assert compare_paths(old, old) is None


def test_as_path_change() -> None:
    old = path(["10.0.0.1", "10.0.1.1", "10.0.0.9"], asns=[None, 64500, 64501])
    new = path(["10.0.0.1", "10.0.1.1", "10.0.0.9"], asns=[None, 64500, 64502])
    change = compare_paths(old, new)
    assert change is not None and change.kinds == ["as_path"]
    assert change.old_as_path == [64500, 64501] and change.new_as_path == [64500, 64502]


def test_rtt_baseline_shift_is_recorded_once() -> None:
    base = RttBaseline(min_samples=3, min_shift_ms=20.0, ratio=0.5)
    for i, rtt in enumerate([1.0, 1.2, 0.9, 1.1]):
        assert base.update("t", float(i), rtt) is None
    shift = base.update("t", 10.0, 60.0)
    assert shift is not None and shift.baseline_ms == pytest.approx(1.05)
    assert "rose" in shift.summary()
    # The new level becomes the baseline: no alert on every trace that follows.
    assert all(base.update("t", 11.0 + i, 61.0) is None for i in range(5))
    # Small wobble below the absolute threshold is no shift.
    assert base.update("t", 20.0, 75.0) is None


def test_target_state_accumulates_rounds_and_changes() -> None:
    state = TargetState("t", "10.0.0.9", "icmp")
    sent = {1: 2, 2: 2, 3: 2}
    r1 = [
        ProbeReply(1, "10.0.0.1", 1.0),
        ProbeReply(2, "10.0.1.1", 2.0),
        ProbeReply(3, "10.0.0.9", 3.0, destination=True),
    ]
    _, change, _ = state.apply_round(sent, r1, 3, 1.0)
    assert change is None
    r2 = [ProbeReply(1, "10.0.0.1", 1.0), ProbeReply(2, "10.0.2.1", 2.0), r1[2]]
    _, change, _ = state.apply_round(sent, r2, 3, 2.0)
    assert change is not None and change.hop_changes[0].new == "10.0.2.1"
    hops = state.hop_list()
    assert [h.sent for h in hops] == [4, 4, 4]
    assert hops[0].loss == pytest.approx(0.5) and hops[2].destination
    assert state.reached and state.outcome() is None
    assert len(state.paths) == 2 and len(state.changes) == 1


def test_outcomes_for_unreachable_and_silence() -> None:
    state = TargetState("t", "10.0.0.9", "icmp")
    state.apply_round({1: 1}, [ProbeReply(1, "10.0.0.1", 1.0, unreachable="!N")], 1, 1.0)
    assert state.outcome() == "t is unreachable: !N from 10.0.0.1 at hop 1"
    quiet = TargetState("q", "10.0.0.8", "icmp")
    quiet.apply_round({1: 1, 2: 1, 3: 1}, [ProbeReply(1, "10.0.0.1", 1.0)], 3, 1.0)
    assert quiet.outcome() == "no answer from q within 3 hops (last answer: hop 1, 10.0.0.1)"


def test_sparkline() -> None:
    assert sparkline([1.0, None, 8.0]) == "▁ █"
    assert sparkline([]) == ""
    assert len(sparkline([1.0] * 50, width=10)) == 10


def test_remote_ends() -> None:
    local = {"192.0.2.2"}
    pairs = [
        ("192.0.2.2", "198.51.100.7"),  # outgoing: the destination
        ("203.0.113.9", "192.0.2.2"),  # incoming: the initiator
        ("192.0.2.2", "198.51.100.7"),  # duplicates once
        ("192.0.2.2", "224.0.0.251"),  # multicast: nothing to trace
        ("192.0.2.2", "255.255.255.255"),
    ]
    assert remote_ends(pairs, local) == ["198.51.100.7", "203.0.113.9"]
