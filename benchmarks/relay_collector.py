"""Relay collector throughput and latency: N simulated agents (separate processes) each publish
R flow updates per second to a real nats-server for D seconds; one collector folds them in.

Prints the updates sent and applied, the collector's CPU use, and the latency from the update's
capture time (its `last_seen`) to the collector's state, at the 50th/99th percentile.

usage: python benchmarks/relay_collector.py [--agents 20] [--rate 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time

import nats

from packettracer.config import RelaySettings, Settings
from packettracer.services.relay import messages as m
from packettracer.services.relay.agent import UPDATE_BATCH
from packettracer.services.relay.collector import Collector
from packettracer.services.relay.server import NatsServer, free_port
from packettracer.services.runtime import Runtime

UPDATE_INTERVAL = RelaySettings().update_interval


def agent_process(url: str, site: str, rate: int, seconds: float, start_at: float) -> None:
    """Publishes like `packettracer agent`: every UPDATE_INTERVAL, the flows updated since the
    last batch, each stamped with when it was captured (spread over the interval), so the
    measured latency includes the agent's own batching delay."""

    async def main() -> None:
        nc = await nats.connect(url)
        per_batch = max(1, int(rate * UPDATE_INTERVAL))
        active = 5000  # distinct flows per agent, updated round robin
        subj = m.subject(site, "flows.update")
        await asyncio.sleep(max(0.0, start_at - time.time()))
        t0 = time.monotonic()
        last = time.time()
        sent = 0
        i = 0
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(max(0.0, t0 + (sent / rate) + UPDATE_INTERVAL - time.monotonic()))
            now = time.time()
            flows = []
            for k in range(per_batch):
                i = (i + 1) % active
                captured = last + (now - last) * (k + 1) / per_batch
                flows.append(
                    {
                        "id": i,
                        "proto": "tcp",
                        "src": "10.1.0.1",
                        "sport": 1024 + i,
                        "dst": "10.2.0.1",
                        "dport": 443,
                        "packets_fwd": sent + k,
                        "packets_rev": 1,
                        "bytes_fwd": 100,
                        "bytes_rev": 100,
                        "first_seen": captured - 5,
                        "last_seen": captured,
                        "tcp_state": "established",
                    }
                )
            last = now
            for j in range(0, len(flows), UPDATE_BATCH):
                body = {"ts": now, "flows": flows[j : j + UPDATE_BATCH]}
                await nc.publish(subj, m.encode("flows.update", site, body))
            sent += per_batch
        await nc.flush()
        await nc.close()

    asyncio.run(main())


async def run(agents: int, rate: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, NatsServer(port=free_port(), store_dir=tmp) as srv:
        settings = Settings()
        settings.relay.url = srv.url
        collector = Collector(Runtime(settings), settings.relay)
        task = asyncio.ensure_future(collector.run())
        while not collector.connected:  # noqa: ASYNC110 - polling another object's state
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        start_at = time.time() + 1.0
        procs = [
            multiprocessing.Process(
                target=agent_process, args=(srv.url, f"agent-{n}", rate, seconds, start_at)
            )
            for n in range(agents)
        ]
        for p in procs:
            p.start()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu0 = time.process_time()
        wall0 = time.monotonic()
        while any(p.is_alive() for p in procs):  # noqa: ASYNC110 - child processes
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # let the last messages arrive
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        applied = collector.updates_applied
        lat = sorted(collector.latencies)
        task.cancel()
        await collector.close()
    expected = agents * rate * seconds
    print(f"agents: {agents}, updates/s per agent: {rate}, seconds: {seconds}")
    print(f"flow updates expected: {expected:.0f}, applied by the collector: {applied}")
    print(
        f"collector throughput: {applied / wall:,.0f} updates/s (wall), CPU {cpu:.1f} s "
        f"over {wall:.1f} s ({100 * cpu / wall:.0f}% of one core)"
    )
    if lat:
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"latency capture->collector state: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms,"
            f" max {lat[-1] * 1000:.1f} ms"
        )
    print(f"dropped as malformed: {collector.malformed}, oversized: {collector.oversized}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(run(args.agents, args.rate, args.seconds))


if __name__ == "__main__":
    main()
