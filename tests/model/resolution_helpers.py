"""Shared helpers of the resolution tests: fixture captures (tests/data first, then the corpus)
decoded into packets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from packettracer.capture.decoder import Decoder
from packettracer.capture.packet import Packet
from packettracer.capture.pcapfile import CaptureReader

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
CORPUS = ROOT.parent / "shared" / "corpus" / "pcap"


def capture(name: str) -> Path:
    for folder in (DATA, CORPUS):
        path = folder / name
        if path.exists():
            return path
    pytest.skip(f"{name} is neither in tests/data nor in ../shared/corpus/pcap")


def packets(name: str) -> Iterator[Packet]:
    decoder = Decoder()
    with CaptureReader(str(capture(name))) as reader:
        for linktype, ts, data, wirelen in reader:
            pkt = decoder.decode(linktype, data, ts, wirelen)
            if pkt is not None:
                yield pkt
