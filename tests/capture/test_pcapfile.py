"""The pcap/pcapng reader: both byte orders and timestamp resolutions, pcapng block kinds,
captures cut mid-packet, and every kind of file that is not a capture (one-line errors).

Expected frames come from scapy's independent readers (RawPcapReader, RawPcapNgReader) or from
files written here byte by byte from the format specifications."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter, RawPcapNgReader, RawPcapReader

from packettracer.capture.pcapfile import CHUNK, CaptureReader
from packettracer.errors import CaptureFileError

DATA = Path(__file__).resolve().parents[1] / "data"
SHARED_PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pcap"

FRAMES = [
    bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=i, dport=53)) for i in (1, 2, 3)
]


def read_all(path: Path) -> tuple[list[tuple[int, float, bytes, int]], CaptureReader]:
    with CaptureReader(path) as reader:
        frames = list(reader)
    return frames, reader


def scapy_frames(path: Path) -> list[tuple[bytes, float, int]]:
    """(data, timestamp, wire length) per frame, as scapy reads them."""
    out = []
    with open(path, "rb") as fh:
        magic = fh.read(4)
    reader_cls = RawPcapNgReader if magic == b"\x0a\x0d\x0d\x0a" else RawPcapReader
    with reader_cls(str(path)) as reader:
        for data, meta in reader:
            if reader_cls is RawPcapReader:
                frac = 1e-9 if reader.nano else 1e-6
                ts = meta.sec + meta.usec * frac
                out.append((data, ts, meta.wirelen))
            else:
                high = meta.tshigh
                ts = 0.0 if high is None else ((high << 32) | meta.tslow) / meta.tsresol
                out.append((data, ts, meta.wirelen))
    return out


# --- pcap ---------------------------------------------------------------------------------


@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, endianness: str, nano: bool) -> None:
    path = tmp_path / "x.pcap"
    writer = PcapWriter(str(path), linktype=1, endianness=endianness, nano=nano, sync=True)
    writer.write_header(None)
    for i, frame in enumerate(FRAMES):
        writer.write_packet(frame, sec=1_700_000_000 + i, usec=123456789 if nano else 123456)
    writer.close()
    frames, reader = read_all(path)
    assert reader.format == "pcap" and not reader.truncated
    assert [f[2] for f in frames] == FRAMES
    assert [f[0] for f in frames] == [1, 1, 1]
    expected = 0.123456789 if nano else 0.123456
    for i, (_lt, ts, data, wirelen) in enumerate(frames):
        assert ts == pytest.approx(1_700_000_000 + i + expected, abs=1e-9)
        assert wirelen == len(data)


def test_frames_straddling_read_chunks_match_scapy(tmp_path: Path) -> None:
    path = tmp_path / "big.pcap"
    writer = PcapWriter(str(path), linktype=1, sync=False)
    writer.write_header(None)
    big = bytes(Ether() / IP() / UDP() / (b"x" * 1400))
    count = 3 * CHUNK // len(big) + 7
    for i in range(count):
        writer.write_packet(big[:-1] + bytes([i % 256]), sec=i, usec=i)
    writer.close()
    frames, reader = read_all(path)
    assert reader.packets == len(frames) == count
    expected = scapy_frames(path)
    assert [(f[2], f[3]) for f in frames] == [(d, w) for d, _ts, w in expected]


def test_corpus_files_read_like_scapy() -> None:
    names = ["dns.pcap", "tcp-handshake-nano.pcap", "hls.pcapng", "pcapng-multi-interface.pcapng"]
    for name in names:
        frames, reader = read_all(DATA / name)
        expected = scapy_frames(DATA / name)
        assert [f[2] for f in frames] == [d for d, _ts, _w in expected], name
        assert [f[3] for f in frames] == [w for _d, _ts, w in expected], name
        for ours, theirs in zip(frames, expected, strict=True):
            assert ours[1] == pytest.approx(theirs[1], abs=1e-6), name


def test_every_shared_corpus_capture_reads_like_scapy() -> None:
    if not SHARED_PCAPS.is_dir():
        pytest.skip("the shared capture corpus (../shared/corpus/pcap) is not present")
    checked = 0
    for path in sorted(SHARED_PCAPS.glob("*.pcap*")):
        frames, reader = read_all(path)
        if reader.truncated:
            continue  # scapy raises on these; the truncation tests cover them
        expected = scapy_frames(path)
        assert [f[2] for f in frames] == [d for d, _ts, _w in expected], path.name
        checked += 1
    assert checked > 60


def test_empty_pcap_has_no_frames() -> None:
    frames, reader = read_all(DATA / "empty.pcap")
    assert frames == [] and not reader.truncated and reader.linktypes == {1}


def _record_offsets(path: Path) -> list[int]:
    """Byte offset of every record header of a pcap, from the file itself."""
    raw = path.read_bytes()
    endian = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offsets, pos = [], 24
    while pos + 16 <= len(raw):
        offsets.append(pos)
        (incl,) = struct.unpack_from(endian + "I", raw, pos + 8)
        pos += 16 + incl
    return offsets


@pytest.mark.parametrize("cut_into", ["header", "data"])
@pytest.mark.parametrize("name", ["5-pings.pcap", "fuzz-2006-09-29-28586.pcap"])  # LE and BE
def test_pcap_cut_mid_packet(tmp_path: Path, cut_into: str, name: str) -> None:
    src = DATA / name
    offsets = _record_offsets(src)
    third = offsets[2]
    cut = third + (7 if cut_into == "header" else 16 + 10)
    path = tmp_path / "cut.pcap"
    path.write_bytes(src.read_bytes()[:cut])
    frames, reader = read_all(path)
    assert len(frames) == reader.packets == 2
    assert reader.truncated and reader.truncated_at == third


def test_pcap_cut_inside_the_file_header(tmp_path: Path) -> None:
    path = tmp_path / "head.pcap"
    path.write_bytes((DATA / "5-pings.pcap").read_bytes()[:10])
    frames, reader = read_all(path)
    assert frames == [] and reader.truncated and reader.truncated_at == 0


def test_real_truncated_capture() -> None:
    frames, reader = read_all(DATA / "truncated_dns_2.pcap")
    # capinfos: the second record is cut short; 247 bytes in all.
    assert len(frames) == 1 and reader.truncated and reader.truncated_at == 240


def test_corrupt_record_length_is_reported_as_truncation(tmp_path: Path) -> None:
    raw = bytearray((DATA / "5-pings.pcap").read_bytes())
    second = _record_offsets(DATA / "5-pings.pcap")[1]
    struct.pack_into(">I" if raw[0] == 0xA1 else "<I", raw, second + 8, 0x7FFFFFFF)
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(raw))
    frames, reader = read_all(path)
    assert len(frames) == 1 and reader.truncated and reader.truncated_at == second


# --- pcapng -------------------------------------------------------------------------------


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", total)


def _pcapng(e: str, tsresol: int | None, frames: list[bytes], spb: bytes | None) -> bytes:
    shb = _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts = struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\x00" * 3
        opts += struct.pack(e + "HH", 0, 0)
    idb = _block(e, 1, struct.pack(e + "HHI", 1, 0, 65535) + opts)
    out = shb + idb
    for i, frame in enumerate(frames):
        ticks = 1_700_000_000_000 + i  # in units of the interface's resolution
        hdr = struct.pack(e + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
        out += _block(e, 6, hdr + frame)
    if spb is not None:
        out += _block(e, 3, struct.pack(e + "I", len(spb)) + spb)
    # A block type we do not know (name resolution) must be skipped.
    out += _block(e, 4, struct.pack(e + "HH", 0, 0))
    return out


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize(
    ("tsresol", "unit"), [(None, 1e-6), (9, 1e-9), (3, 1e-3), (0x80 | 10, 2.0**-10)]
)
def test_pcapng_epb_spb_and_tsresol(
    tmp_path: Path, endian: str, tsresol: int | None, unit: float
) -> None:
    path = tmp_path / "x.pcapng"
    path.write_bytes(_pcapng(endian, tsresol, FRAMES[:2], spb=FRAMES[2]))
    frames, reader = read_all(path)
    assert reader.format == "pcapng" and not reader.truncated
    assert [f[2] for f in frames] == FRAMES
    assert frames[0][1] == pytest.approx(1_700_000_000_000 * unit, rel=1e-12)
    assert frames[1][1] - frames[0][1] == pytest.approx(unit, rel=1e-3)
    assert frames[2][3] == len(FRAMES[2])
    assert frames[2][1] == frames[1][1]  # no timestamp in an SPB: the previous packet's
    if endian == "<":
        assert [f[2] for f in frames] == [d for d, _ts, _w in scapy_frames(path)]


def test_pcapng_cut_mid_block(tmp_path: Path) -> None:
    full = _pcapng("<", None, FRAMES[:2], spb=None)
    # The second EPB starts after SHB (28), IDB (20) and the first EPB.
    first_epb = 12 + 20 + len(FRAMES[0]) + (-len(FRAMES[0]) % 4)
    second = 28 + 20 + first_epb
    path = tmp_path / "cut.pcapng"
    path.write_bytes(full[: second + 30])
    frames, reader = read_all(path)
    assert len(frames) == 1 and reader.truncated and reader.truncated_at == second


def test_pcapng_multi_interface_link_types() -> None:
    frames, reader = read_all(DATA / "pcapng-multi-interface.pcapng")
    assert len(frames) == 6 and reader.linktypes == {1}


# --- not a capture ------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[CaptureFileError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureFileError) as exc:
        CaptureReader(tmp_path / "nope.pcap")
    assert "no such file" in _one_line(exc)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureFileError) as exc:
        CaptureReader(tmp_path)
    assert "is a directory" in _one_line(exc)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(CaptureFileError) as exc:
        CaptureReader(path)
    assert "empty file" in _one_line(exc)


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is text\n")
    with pytest.raises(CaptureFileError) as exc:
        CaptureReader(path)
    assert "not a pcap or pcapng capture" in _one_line(exc)


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = tmp_path / "secret.pcap"
    shutil.copy(DATA / "5-pings.pcap", path)
    path.chmod(0)
    with pytest.raises(CaptureFileError) as exc:
        CaptureReader(path)
    assert "permission denied" in _one_line(exc)
