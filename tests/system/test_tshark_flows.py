"""Our TCP and UDP flow counts against tshark's conversation tables.

`../shared/corpus/expected/tshark/<capture>.conv.txt` holds the output of
`tshark -r FILE -q -z conv,tcp -z conv,udp` (TShark 4.0.17) for every corpus capture. The counts
must be equal, except for the differences listed in ALLOWED, each explained (and repeated in the
README's "Verified behaviour"). When tshark is installed, a few fixtures are also compared live.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from packettracer.capture.packet import TCP, UDP
from packettracer.capture.pcapfile import CaptureReader
from packettracer.model.flows import Flow
from packettracer.services.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / ".." / "shared"
PCAPS = SHARED / "corpus" / "pcap"
EXPECTED = SHARED / "corpus" / "expected" / "tshark"
DATA = ROOT / "tests" / "data"

# capture -> (our TCP flows - tshark's, our UDP flows - tshark's, why)
ALLOWED: dict[str, tuple[int, int, str]] = {
    "rtsp.pcap": (
        1,
        0,
        "port reuse: a SYN on the tuple of a connection that was reset starts a new flow; "
        "tshark keeps one conversation per address/port tuple",
    ),
    "edonkey.pcap": (
        1,
        0,
        "a FIN retransmitted 12 s after the connection closed arrives after the closed-flow "
        "timeout (10 s) and starts a new flow; tshark has no timeouts",
    ),
    "ipv6-fragmented-dns.pcap": (
        0,
        1,
        "a non-first IPv6 fragment whose first fragment was not captured is kept in a flow "
        "with ports 0 (its bytes are counted); tshark cannot place it in a conversation",
    ),
    "fuzz-2006-09-29-28586.pcap": (
        1,
        0,
        "fuzzed headers: a fragment with corrupted flags becomes a ports-0 flow and a TCP header "
        "tshark calls malformed is still counted, while tshark splits one tuple into two "
        "conversations by its TCP stream analysis",
    ),
    "zoom.pcap": (
        0,
        -1,
        "tunnels are not decapsulated: tshark also counts the UDP conversation inside the "
        "GTP-U tunnel (UDP 2152), we count the tunnel's outer flow only",
    ),
}


def tshark_counts(text: str) -> tuple[int, int]:
    """(TCP conversations, UDP conversations) from `-z conv,tcp -z conv,udp` output."""
    section = None
    counts = {"tcp": 0, "udp": 0}
    for line in text.splitlines():
        if line.startswith("TCP Conversations"):
            section = "tcp"
        elif line.startswith("UDP Conversations"):
            section = "udp"
        elif section and "<->" in line:
            counts[section] += 1
    return counts["tcp"], counts["udp"]


def our_counts(path: Path) -> tuple[int, int]:
    pipeline = Pipeline()
    ended: list[Flow] = []
    pipeline.on_flow_end(ended.append)
    with CaptureReader(path) as reader:
        pipeline.feed(reader)
    pipeline.finish()
    assert pipeline.flows.created == len(ended)
    return sum(f.proto == TCP for f in ended), sum(f.proto == UDP for f in ended)


def corpus_captures() -> list[str]:
    if not EXPECTED.is_dir():
        return []
    return sorted(p.name.removesuffix(".conv.txt") for p in EXPECTED.glob("*.conv.txt"))


def test_flow_counts_equal_tshark_on_the_corpus() -> None:
    names = corpus_captures()
    if not names or not PCAPS.is_dir():
        pytest.skip("the shared corpus with tshark's expected output (../shared) is not present")
    mismatches = []
    compared = 0
    for name in names:
        pcap = PCAPS / name
        if not pcap.exists():
            continue
        expected = tshark_counts((EXPECTED / f"{name}.conv.txt").read_text())
        ours = our_counts(pcap)
        tcp_delta, udp_delta, _why = ALLOWED.get(name, (0, 0, ""))
        if (ours[0] - expected[0], ours[1] - expected[1]) != (tcp_delta, udp_delta):
            mismatches.append(f"{name}: tshark tcp/udp {expected}, ours {ours}")
        compared += 1
    assert compared >= 70
    assert mismatches == []


def test_every_allowed_difference_names_a_capture_of_the_corpus() -> None:
    names = set(corpus_captures())
    if not names:
        pytest.skip("the shared corpus with tshark's expected output (../shared) is not present")
    assert set(ALLOWED) <= names


@pytest.mark.parametrize(
    "name", ["dns_tcp.pcap", "dns_fragmented.pcap", "android.pcap", "tcp-handshake-nano.pcap"]
)
def test_flow_counts_equal_live_tshark(name: str) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    out = subprocess.run(
        [tshark, "-r", str(DATA / name), "-q", "-z", "conv,tcp", "-z", "conv,udp"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert our_counts(DATA / name) == tshark_counts(out)
