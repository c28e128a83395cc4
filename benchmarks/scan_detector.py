"""Cost of the security analyzer (scan detector on every packet, reputation check per new flow):
packets per second through the pipeline with and without it, over captures of the shared corpus
(or the files given), the frames read into memory first so only analysis is timed.

    .venv/bin/python benchmarks/scan_detector.py [FILE ...]

Prints figures (CPU time); asserts nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from packettracer.capture.pcapfile import CaptureReader
from packettracer.config import Settings
from packettracer.services.pipeline import Pipeline
from packettracer.services.runtime import Runtime
from packettracer.services.security_feature import SecurityAnalyzer, SecurityFeature

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["1kxun.pcap", "netflix.pcap", "synscan.pcap", "bittorrent.pcap"]


def run(frames: list, with_security: bool, repeat: int) -> float:  # type: ignore[type-arg]
    best = float("inf")
    for _ in range(repeat):
        settings = Settings()
        settings.security.blocklist_dir = str(ROOT / "tests" / "data" / "blocklists")
        pipeline = Pipeline(settings)
        if with_security:
            runtime = Runtime(settings)
            feature = SecurityFeature(runtime, "report")
            feature.blocklists.scan()
            pipeline.add_analyzer(SecurityAnalyzer(feature))
        started = time.process_time()
        pipeline.feed(frames)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    corpus = ROOT.parent / "shared" / "corpus" / "pcap"
    files = [Path(a) for a in sys.argv[1:]] or [corpus / n for n in DEFAULT]
    for path in files:
        if not path.exists():
            print(f"{path.name}: not found, skipped")
            continue
        with CaptureReader(str(path)) as reader:
            frames = list(reader)
        base = run(frames, False, 3)
        sec = run(frames, True, 3)
        n = len(frames)
        print(
            f"{path.name:>20}: {n:>7} packets  without {n / base:>9,.0f} pkt/s  "
            f"with security {n / sec:>9,.0f} pkt/s  (+{(sec - base) / n * 1e6:.2f} us/packet)"
        )


if __name__ == "__main__":
    main()
