"""What tracing costs: rounds per second and CPU per answered probe over loopback (needs root or
CAP_NET_RAW), and the pure cost of folding a round into a target's statistics.

usage: python benchmarks/trace_rounds.py [--rounds N] [--targets N] [--probes N]
Loopback answers at once, so the figures are the tracer's own overhead, not network latency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from packettracer.config import TraceSettings
from packettracer.model.trace import ProbeReply, TargetState
from packettracer.services.trace_session import TraceSession, options_from
from packettracer.services.tracer import can_trace


async def live(rounds: int, targets: int, probes: int) -> None:
    settings = TraceSettings(probes=probes, timeout=0.5)
    session = TraceSession(settings)
    names = [f"127.0.0.{i + 1}" for i in range(targets)]
    for name in names:
        await session.add(name, options_from(settings))
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        await session.run_rounds(rounds)
    finally:
        session.close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    answered = sum(h.received for s in session.targets.values() for h in s.hops.values())
    print(
        f"loopback: {targets} targets x {rounds} rounds x {probes} probes in {wall:.2f} s "
        f"({targets * rounds / wall:.0f} rounds/s), {answered} answers, "
        f"{cpu / max(answered, 1) * 1e6:.1f} us CPU per answered probe"
    )


def fold(rounds: int) -> None:
    state = TargetState("t", "192.0.2.9", "icmp")
    sent = {ttl: 3 for ttl in range(1, 16)}
    replies = [
        ProbeReply(ttl, f"10.0.{ttl}.1", float(ttl), destination=ttl == 15)
        for ttl in range(1, 16)
        for _ in range(3)
    ]
    start = time.perf_counter()
    for i in range(rounds):
        state.apply_round(sent, replies, 15, float(i))
    took = time.perf_counter() - start
    print(f"fold: 15-hop round with 45 answers in {took / rounds * 1e6:.1f} us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--targets", type=int, default=4)
    parser.add_argument("--probes", type=int, default=3)
    args = parser.parse_args()
    fold(2000)
    reason = can_trace()
    if reason is not None:
        print(f"loopback: skipped ({reason})")
        return 0
    asyncio.run(live(args.rounds, args.targets, args.probes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
