"""Writing what the dashboard shows to files: rows as CSV or JSON, packets as pcapng.
Called from a worker thread of the dashboard; nothing here touches the UI."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packettracer import __version__
from packettracer.capture.pcapfile import Frame
from packettracer.services.report import format_csv


def export_path(folder: str, stem: str, suffix: str) -> Path:
    """A new file name in `folder` (created owner-only), stamped with the local time."""
    path = Path(folder).expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path / f"{stem}-{stamp}.{suffix}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = path / f"{stem}-{stamp}-{n}.{suffix}"
    return candidate


def write_rows(path: Path, rows: Sequence[dict[str, Any]], fmt: str) -> int:
    if fmt == "json":
        text = json.dumps(list(rows), indent=1, default=str) + "\n"
    else:
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        text = format_csv(list(rows), columns or None)
    path.write_text(text, encoding="utf-8")
    return len(rows)


def _block(btype: int, body: bytes) -> bytes:
    pad = (-len(body)) % 4
    length = 12 + len(body) + pad
    return struct.pack("<II", btype, length) + body + b"\0" * pad + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)


def write_pcapng(path: Path, frames: Sequence[Frame]) -> int:
    """Write frames (any mix of link types) as pcapng, one interface per link type, with
    microsecond timestamps. Returns the number of packets written."""
    shb_opts = _option(4, f"PacketTracer {__version__}".encode()) + _option(0, b"")
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts
    out = [_block(0x0A0D0D0A, shb)]
    interfaces: dict[int, int] = {}
    for linktype, *_ in frames:
        if linktype not in interfaces:
            interfaces[linktype] = len(interfaces)
            opts = _option(9, bytes([6])) + _option(0, b"")  # if_tsresol = 10^-6
            out.append(_block(1, struct.pack("<HHI", linktype, 0, 0) + opts))
    for linktype, ts, data, wirelen in frames:
        micros = int(round(ts * 1_000_000))
        body = struct.pack(
            "<IIIII", interfaces[linktype], micros >> 32, micros & 0xFFFFFFFF, len(data), wirelen
        )
        out.append(_block(6, body + data))
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as fh:
        fh.write(b"".join(out))
    os.replace(tmp, path)
    return len(frames)
