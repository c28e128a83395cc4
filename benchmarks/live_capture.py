"""Live capture throughput: our AF_PACKET ring source against `tcpdump -w /dev/null`, both fed by
`tcpreplay` over a veth pair inside a network namespace this script creates (and removes).

    sudo .venv/bin/python benchmarks/live_capture.py [--packets 200000] [--pps 0,100000]

`--pps 0` is `tcpreplay --topspeed`. For each rate it prints what tcpreplay sent, and for each
capturer the packets received, the drops (kernel and our queue), the receive rate and the CPU
time. Our capturer runs the whole pipeline (decode + flow table) as the dashboard does, in a
separate process inside the namespace. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_PCAP = ROOT / "bench-data" / "bench.pcap"
MAX_FRAME = 1514
"""Frames larger than the veth MTU cannot be replayed; they are left out of the feed."""


# -- the worker: runs inside the namespace -------------------------------------------------------


async def worker(iface: str, backend: str, pipeline_mode: str) -> None:
    from packettracer.capture.live import open_live_source
    from packettracer.config import Settings
    from packettracer.services.capture import CaptureService
    from packettracer.services.pipeline import Pipeline

    settings = Settings()
    settings.capture.interface = iface
    settings.capture.backend = backend
    source = open_live_source(settings)
    pipeline = Pipeline(settings)
    if pipeline_mode == "count":
        # Count frames only: what the capture path alone sustains.
        counted = [0]

        def count(frames: Iterable[Any]) -> None:
            counted[0] += len(frames) if isinstance(frames, list) else sum(1 for _ in frames)

        pipeline.feed = count  # type: ignore[method-assign]
    service = CaptureService(source, pipeline, max_batches=settings.capture.queue_batches)
    task = asyncio.create_task(service.run())
    await asyncio.sleep(0.1)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await asyncio.sleep(0.5)
    service.stop()
    await asyncio.wait_for(task, 10)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    analysed = pipeline.stats.packets if pipeline_mode == "pipeline" else counted[0]
    print(
        json.dumps(
            {
                "received": source.received,
                "kernel_dropped": source.kernel_dropped,
                "queue_dropped": service.queue.dropped,
                "analysed": analysed,
                "flows": pipeline.flows.created,
                "cpu": cpu,
                "peak_rss_mb": cpu1.ru_maxrss / 1024,
            }
        ),
        flush=True,
    )


# -- the driver ---------------------------------------------------------------------------------


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def make_feed(path: Path, packets: int) -> int:
    """The first `packets` Ethernet frames of the benchmark capture that fit the veth MTU."""
    from packettracer.capture.pcapfile import CaptureReader

    if not BENCH_PCAP.exists():
        sys.exit(
            f"{BENCH_PCAP.relative_to(ROOT)} is missing: build it with "
            "bash ../shared/bench/make-bench-capture.sh bench-data/bench.pcap"
        )
    written = 0
    with CaptureReader(BENCH_PCAP) as reader, open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for linktype, ts, data, _wirelen in reader:
            if linktype != 1 or len(data) > MAX_FRAME or len(data) < 14:
                continue
            sec = int(ts)
            out.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(data), len(data)))
            out.write(data)
            written += 1
            if written >= packets:
                break
    return written


LOOPS = 1
RUNS = [("afpacket", "count"), ("afpacket", "pipeline"), ("scapy", "count")]


def replay(ns: str, iface: str, feed: Path, pps: int) -> dict[str, float]:
    rate = ["--topspeed"] if pps == 0 else [f"--pps={pps}"]
    if LOOPS > 1:
        rate.append(f"--loop={LOOPS}")
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "tcpreplay", "-q", "-K", *rate, "-i", iface, str(feed)],
        capture_output=True,
        text=True,
    )
    text = proc.stdout + proc.stderr
    sent = re.search(r"Actual: (\d+) packets .* in ([\d.]+) seconds", text)
    if proc.returncode != 0 or sent is None:
        raise RuntimeError(f"tcpreplay failed: {text.strip()}")
    return {"sent": int(sent.group(1)), "seconds": float(sent.group(2))}


def run_ours(
    ns: str, iface: str, sender: str, feed: Path, pps: int, backend: str, mode: str
) -> dict[str, Any]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, __file__, "--worker", iface, backend, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("our capture did not start")
    sent = replay(ns, sender, feed, pps)
    out, _ = proc.communicate("stop\n", timeout=60)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result.update(sent)
    return result


def run_tcpdump(
    ns: str, iface: str, sender: str, feed: Path, pps: int, buffer_kib: int
) -> dict[str, Any]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "tcpdump", "-i", iface, "-n", "-B", str(buffer_kib)]
        + ["-w", "/dev/null"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"tcpdump did not start: {line}")
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sent = replay(ns, sender, feed, pps)
    time.sleep(1.2)  # libpcap hands over a part-filled block after its 1 s timeout
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    numbers = {
        key: int(m.group(1))
        for key, pattern in (
            ("received", r"(\d+) packets captured"),
            ("by_filter", r"(\d+) packets received by filter"),
            ("kernel_dropped", r"(\d+) packets dropped by kernel"),
        )
        if (m := re.search(pattern, err))
    }
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {**numbers, **sent, "cpu_incl_tcpreplay": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--pps", default="0,100000", help="rates to replay at; 0 = --topspeed")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--loop", type=int, default=3, help="tcpreplay --loop: feed repeats")
    parser.add_argument("--no-scapy", action="store_true", help="skip the scapy backend")
    args = parser.parse_args()
    global LOOPS
    LOOPS = max(1, args.loop)
    if args.no_scapy:
        RUNS.remove(("scapy", "count"))
    if os.geteuid() != 0:
        sys.exit("needs root (network namespace, raw sockets)")
    for tool in ("tcpreplay", "tcpdump", "ip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (bash scripts/install-system-deps.sh test)")
    feed = ROOT / "bench-data" / f"live-feed-{args.packets}.pcap"
    if not feed.exists():
        count = make_feed(feed, args.packets)
    else:
        from packettracer.capture.pcapfile import CaptureReader

        with CaptureReader(feed) as reader:
            count = sum(1 for _ in reader)
    print(
        f"feed: {feed.relative_to(ROOT)}: {count} Ethernet frames of at most {MAX_FRAME} bytes, "
        f"replayed {LOOPS} times"
    )
    tag = uuid.uuid4().hex[:6]
    ns, va, vb = f"ptbench-{tag}", f"pba{tag}", f"pbb{tag}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", va, "type", "veth", "peer", "name", vb)
        for key in ("all", "default"):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
        for dev in ("lo", va, vb):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        header = f"{'rate':>9} {'capturer':<24} {'sent':>8} {'received':>9} {'k-drop':>8} "
        header += f"{'q-drop':>7} {'rx pkt/s':>10} {'cpu s':>6} {'pkt/cpu-s':>10}"
        print(header)
        for pps in [int(p) for p in args.pps.split(",")]:
            label = "topspeed" if pps == 0 else f"{pps}/s"
            alone = replay(ns, va, feed, pps)
            print(
                f"{label:>9} {'(nobody capturing)':<24} {alone['sent']:>8} {'-':>9} {'-':>8} "
                f"{'-':>7} {alone['sent'] / alone['seconds']:>10,.0f}"
            )
            for _ in range(args.repeat):
                for backend, mode in RUNS:
                    r = run_ours(ns, vb, va, feed, pps, backend, mode)
                    name = f"{backend} (count only)" if mode == "count" else f"{backend} + pipeline"
                    rate = r["received"] / r["seconds"] if r["seconds"] else 0.0
                    print(
                        f"{label:>9} {name:<24} {r['sent']:>8} {r['received']:>9} "
                        f"{r['kernel_dropped']:>8} {r['queue_dropped']:>7} {rate:>10,.0f} "
                        f"{r['cpu']:>6.2f} {r['analysed'] / max(r['cpu'], 1e-9):>10,.0f}"
                    )
                t = run_tcpdump(ns, vb, va, feed, pps, 32 * 1024)
                rate = t.get("received", 0) / t["seconds"] if t["seconds"] else 0.0
                print(
                    f"{label:>9} {'tcpdump -w /dev/null':<24} {t['sent']:>8} "
                    f"{t.get('received', -1):>9} {t.get('kernel_dropped', -1):>8} {'-':>7} "
                    f"{rate:>10,.0f} {'-':>6}"
                )
        print(
            "rx pkt/s = packets received / tcpreplay's sending time; k-drop = the kernel's "
            "PACKET_STATISTICS drops; q-drop = frames our bounded queue refused; pkt/cpu-s = "
            "frames analysed per CPU-second of our whole capture process. Both capturers use a "
            "32 MiB ring (tcpdump -B 32768); tcpreplay runs with -K (file preloaded)."
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--worker":
        asyncio.run(worker(sys.argv[2], sys.argv[3], sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
