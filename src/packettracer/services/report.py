"""Headless analysis of a capture file: the `report` subcommand's engine and its output formats."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from packettracer.capture.pcapfile import CaptureReader
from packettracer.config import Settings
from packettracer.model.flows import Flow
from packettracer.services.features import install_features
from packettracer.services.runtime import Runtime

# Columns of the CSV and table outputs, in order; JSON carries every field.
BASE_COLUMNS = [
    "proto",
    "src",
    "sport",
    "dst",
    "dport",
    "packets_fwd",
    "packets_rev",
    "bytes_fwd",
    "bytes_rev",
    "first_seen",
    "last_seen",
    "duration",
    "tcp_state",
]


@dataclass
class ReportResult:
    summary: dict[str, Any]
    flows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Top-level sections other than summary and flows (alerts, hosts, ...)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary, "flows": self.flows}
        out.update(self.extra)
        return out


# Frames fed to the pipeline between two yields to the event loop, so that services (name
# resolution, the database writer) make progress while a large file is analyzed.
FEED_CHUNK = 4096


async def analyze_file_async(
    path: str,
    settings: Settings | None = None,
    bpf_filter: str | None = None,
    mode: str = "report",
) -> ReportResult:
    """Run the full runtime (pipeline plus every feature) over a capture file."""
    settings = settings or Settings()
    runtime = Runtime(settings, userspace_filter=bpf_filter)
    pipeline = runtime.pipeline
    if pipeline.filter is not None:
        pipeline.filter.validate()
    features = install_features(runtime, mode)
    ended: list[Flow] = []
    pipeline.on_flow_end(ended.append)
    warnings: list[str] = []
    runtime.start()
    try:
        with CaptureReader(path) as reader:
            frames = iter(reader)
            while True:
                chunk = list(islice(frames, FEED_CHUNK))
                if not chunk:
                    break
                pipeline.feed(chunk)
                await asyncio.sleep(0)
            pipeline.finish()
            pipeline.tick()
            if reader.truncated:
                warnings.append(
                    f"{path}: capture cut short at byte {reader.truncated_at}, "
                    f"after {reader.packets} packets; the packets before the break were analyzed"
                )
        for feature in features:
            finish = getattr(feature, "finish", None)
            if finish is not None:
                await finish()
    finally:
        await runtime.stop()
    summary = pipeline.summary()
    if warnings:
        summary["truncated_at"] = reader.truncated_at
    ended.sort(key=lambda f: (f.first_seen, f.id))
    result = ReportResult(summary=summary, flows=[f.to_dict() for f in ended], warnings=warnings)
    for feature in features:
        extend = getattr(feature, "extend_report", None)
        if extend is not None:
            extend(runtime, result)
    return result


def analyze_file(
    path: str, settings: Settings | None = None, bpf_filter: str | None = None
) -> ReportResult:
    """Synchronous wrapper of `analyze_file_async` for the command line and tests."""
    return asyncio.run(analyze_file_async(path, settings, bpf_filter))


def _scalar(value: Any) -> Any:
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, separators=(",", ":"))
    return value


def columns_for(rows: list[dict[str, Any]]) -> list[str]:
    cols = list(BASE_COLUMNS)
    seen = set(cols)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                cols.append(key)
    return cols


def format_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    cols = columns or columns_for(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _scalar(row.get(k)) for k in cols})
    return out.getvalue()


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    cols = columns or [c for c in BASE_COLUMNS if c not in ("first_seen", "last_seen")]
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]
    widths = [len(c) for c in cols]
    for line in cells:
        for i, cell in enumerate(line):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    for line in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(_scalar(value))
    # Strings from packets are printed literally, never as terminal control sequences.
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def format_summary_table(summary: dict[str, Any]) -> str:
    lines = []
    for key, value in summary.items():
        if isinstance(value, dict | list):
            continue
        lines.append(f"{key:>18}: {_cell(value)}")
    return "\n".join(lines) + "\n"


def render(result: ReportResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_json(), indent=None, separators=(",", ":")) + "\n"
    if fmt == "csv":
        return format_csv(result.flows)
    return format_table(result.flows) + "\n" + format_summary_table(result.summary)
