"""Headless analysis of a capture file: the `report` subcommand's engine and its output formats.

Output is written as a stream: a capture with 240,000 flows would otherwise hold every flow three
times (objects, dicts, one giant string). Flows stay `Flow` objects until they are written, unless
a feature asks for `ReportResult.flows`, which then turns them into dicts once.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from json.encoder import encode_basestring_ascii as _q
from operator import attrgetter
from typing import Any, TextIO

from packettracer.capture.pcapfile import CaptureReader
from packettracer.config import Settings
from packettracer.model.flows import OPTIONAL_RECORD_FIELDS, RECORD_FIELDS, Flow, proto_label
from packettracer.services.features import install_features
from packettracer.services.runtime import Runtime

# Columns of the CSV and table outputs, in order; JSON carries every field.
BASE_COLUMNS = list(RECORD_FIELDS)
# Keys Flow.to_dict adds only when they apply, in the order it adds them.
OPTIONAL_COLUMNS = list(OPTIONAL_RECORD_FIELDS)

# Flows written per write() call when streaming.
WRITE_BATCH = 2048


class ReportResult:
    """The summary, the flows and any extra top-level sections of one report.

    `flows` is a list of dicts; when the result was built from `Flow` objects (the normal case)
    the dicts are made on first access, and writers that never touch `flows` stream straight
    from the objects.
    """

    def __init__(
        self,
        summary: dict[str, Any],
        flows: list[dict[str, Any]] | None = None,
        warnings: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        flow_objects: list[Flow] | None = None,
        flow_defaults: dict[str, Any] | None = None,
    ) -> None:
        self.summary = summary
        self._flows = flows
        self.flow_objects: list[Flow] = flow_objects if flow_objects is not None else []
        self.warnings: list[str] = warnings if warnings is not None else []
        self.extra: dict[str, Any] = extra if extra is not None else {}
        """Top-level sections other than summary and flows (alerts, hosts, ...)."""
        self.flow_defaults: dict[str, Any] = flow_defaults if flow_defaults is not None else {}
        """Fields of `flow_objects` they have no value of their own for (Runtime.flow_defaults)."""

    @property
    def flows(self) -> list[dict[str, Any]]:
        if self._flows is None:
            defaults = self.flow_defaults
            self._flows = [f.to_dict(defaults) for f in self.flow_objects]
        return self._flows

    @flows.setter
    def flows(self, value: list[dict[str, Any]]) -> None:
        self._flows = value

    def iter_flows(self) -> Iterator[dict[str, Any]]:
        """The flows as dicts, without keeping them all when they were never materialized."""
        if self._flows is not None:
            return iter(self._flows)
        defaults = self.flow_defaults
        return (f.to_dict(defaults) for f in self.flow_objects)

    def flow_count(self) -> int:
        return len(self._flows) if self._flows is not None else len(self.flow_objects)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary, "flows": self.flows}
        out.update(self.extra)
        return out

    def __repr__(self) -> str:
        # Short on purpose: asyncio may repr a finished task's result.
        return f"<ReportResult flows={self.flow_count()} warnings={len(self.warnings)}>"


# Frames fed to the pipeline between two yields to the event loop, so that services (name
# resolution, the database writer) make progress while a large file is analyzed.
FEED_CHUNK = 4096


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file is analyzed and its result made.

    The pipeline frees what it is done with by reference counting; the cyclic collector only
    walks the live flows and the features' tables again and again. Measured on the benchmark
    capture: its collections found no garbage at all during the analysis (the runtime's own
    cycles are freed after it), the peak RSS is the same without them, and they cost ~10% of
    the CPU time (more with every feature attached: each feature's state is walked too).
    The collector is back on as soon as the result is made.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if gc.get_freeze_count() == 0:
            # What the analysis made stays alive until the report is written: hand it to the
            # oldest generation as it is, rather than let the next collections of the young
            # ones walk all of it, three times over (~0.7 s on the benchmark capture). It is
            # collected with the oldest generation once it is garbage. (Skipped when the
            # process froze objects itself: unfreeze would release those too.)
            gc.freeze()
            gc.unfreeze()
    finally:
        if was_enabled:
            gc.enable()


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
    with _no_cyclic_gc():
        return await _analyze(runtime, features, path, ended)


async def _analyze(
    runtime: Runtime, features: list[Any], path: str, ended: list[Flow]
) -> ReportResult:
    pipeline = runtime.pipeline
    warnings: list[str] = []
    truncated_at: int | None = None
    runtime.start()
    try:
        with CaptureReader(path) as reader:
            frames = iter(reader)
            feed = pipeline.feed
            while True:
                chunk = list(islice(frames, FEED_CHUNK))
                if not chunk:
                    break
                feed(chunk)
                await asyncio.sleep(0)
            pipeline.finish()
            pipeline.tick()
            if reader.truncated:
                truncated_at = reader.truncated_at
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
    if truncated_at is not None:
        summary["truncated_at"] = truncated_at
    ended.sort(key=attrgetter("first_seen", "id"))
    result = ReportResult(
        summary=summary, flow_objects=ended, warnings=warnings, flow_defaults=runtime.flow_defaults
    )
    for feature in features:
        extend = getattr(feature, "extend_report", None)
        if extend is not None:
            extend(runtime, result)
    return result


def analyze_file(
    path: str, settings: Settings | None = None, bpf_filter: str | None = None
) -> ReportResult:
    """Synchronous wrapper of `analyze_file_async` for the command line and tests."""
    box: list[ReportResult] = []

    async def main() -> None:
        # The result is handed back through `box`, not as the task's result: asyncio.run reprs
        # the main task when it restores the SIGINT handler, which would format every flow.
        box.append(await analyze_file_async(path, settings, bpf_filter))

    asyncio.run(main())
    return box[0]


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


def _columns_for_result(result: ReportResult) -> list[str]:
    """CSV columns without turning every flow into a dict first."""
    if result._flows is not None:
        return columns_for(result._flows)
    # The same order columns_for() gives the dicts: each key where it first appears.
    seen: dict[str, None] = dict.fromkeys(BASE_COLUMNS)
    defaults: Iterable[str] = result.flow_defaults
    for flow in result.flow_objects:
        if proto_label(flow.proto) == "other":
            seen.setdefault("proto_name", None)
        if flow.vlan:
            seen.setdefault("vlan", None)
        if flow.site is not None:
            seen.setdefault("site", None)
        if flow.end_reason is not None:
            seen.setdefault("end_reason", None)
        if flow.ext:
            for key in flow.ext:
                seen.setdefault(key, None)
        if defaults:  # after the first flow's own keys, as Flow.to_dict puts them
            for key in defaults:
                seen.setdefault(key, None)
            defaults = ()  # in `seen` from now on
    return list(seen)


def format_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    out = io.StringIO()
    _write_csv(iter(rows), columns or columns_for(rows), out)
    return out.getvalue()


def _write_csv(rows: Iterator[dict[str, Any]], cols: list[str], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(cols)
    while True:
        batch = list(islice(rows, WRITE_BATCH))
        if not batch:
            break
        writer.writerows([[_scalar(row.get(k)) for k in cols] for row in batch])


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


def _write_json(result: ReportResult, out: TextIO) -> None:
    """The same text as json.dumps(result.to_json()), written flow by flow."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    out.write('{"summary":')
    out.write(encode(result.summary))
    out.write(',"flows":[')
    if result._flows is not None:
        rows: Iterator[str] = (encode(row) for row in result._flows)
    else:
        defaults = result.flow_defaults
        tail = [(key, f",{encode(key)}:{encode(value)}") for key, value in defaults.items()]
        rows = (_flow_json(flow, encode, defaults, tail) for flow in result.flow_objects)
    first = True
    while True:
        batch = list(islice(rows, WRITE_BATCH))
        if not batch:
            break
        if not first:
            out.write(",")
        out.write(",".join(batch))
        first = False
    out.write("]")
    for key, value in result.extra.items():
        if key in ("summary", "flows"):
            continue
        out.write(",")
        out.write(encode(key))
        out.write(":")
        out.write(encode(value))
    out.write("}\n")


_BASE_KEYS = frozenset(BASE_COLUMNS) | frozenset(OPTIONAL_COLUMNS)
# ',"key":' per ext key, made once: a few dozen names that repeat on every flow.
_KEY_JSON: dict[Any, str] = {}


def _flow_json(
    flow: Flow,
    encode: Callable[[Any], str],
    defaults: dict[str, Any],
    tail: list[tuple[str, str]],
) -> str:
    """encode(flow.to_dict(defaults)), formatted directly: the dict and the generic encoder cost
    more than the whole decode of a packet, and a report can hold hundreds of thousands of flows.
    `tail` holds each default as (key, its encoded ',"key":value')."""
    ext = flow.ext
    if ext and not _BASE_KEYS.isdisjoint(ext):
        # a feature overrides a base field: keep dict semantics
        return encode(flow.to_dict(defaults))
    state = flow.tcp_state
    proto = flow.proto
    label = proto_label(proto)
    text = (
        f'{{"proto":"{label}","src":{_q(flow.src)},"sport":{flow.sport:d},'
        f'"dst":{_q(flow.dst)},"dport":{flow.dport:d},'
        f'"packets_fwd":{flow.packets_fwd:d},"packets_rev":{flow.packets_rev:d},'
        f'"bytes_fwd":{flow.bytes_fwd:d},"bytes_rev":{flow.bytes_rev:d},'
        f'"first_seen":{round(flow.first_seen, 6)!r},"last_seen":{round(flow.last_seen, 6)!r},'
        f'"duration":{round(flow.last_seen - flow.first_seen, 6)!r},'
        f'"tcp_state":{"null" if state is None else _q(state)}'
    )
    if label == "other":
        text += f',"proto_name":{_q(flow.proto_name)}'
    if flow.vlan:
        text += f',"vlan":{flow.vlan:d}'
    if flow.site is not None:
        text += f',"site":{encode(flow.site)}'
    if flow.end_reason is not None:
        text += f',"end_reason":{_q(flow.end_reason)}'
    parts = [text]
    if ext:
        keys = _KEY_JSON
        for key, value in ext.items():
            k = keys.get(key)
            if k is None:
                k = f",{encode(key)}:"
                if key.__class__ is str and len(keys) < 4096:
                    keys[key] = k
            # The encoder's own output for the common scalars, without its per-call setup
            # (most ext values are short strings, None, booleans and small integers).
            cls = value.__class__
            if value is None:
                v = "null"
            elif cls is str:
                v = _q(value)
            elif cls is bool:
                v = "true" if value else "false"
            elif cls is int:
                v = int.__repr__(value)
            else:
                v = encode(value)
            parts.append(k)
            parts.append(v)
    for key, default in tail:
        if ext is None or key not in ext:
            parts.append(default)
    parts.append("}")
    return "".join(parts)


def write_report(result: ReportResult, fmt: str, out: TextIO) -> None:
    """Write the report in `fmt` (json, csv, table) to `out` as a stream."""
    if fmt == "json":
        _write_json(result, out)
    elif fmt == "csv":
        _write_csv(result.iter_flows(), _columns_for_result(result), out)
    else:
        out.write(format_table(result.flows))
        out.write("\n")
        out.write(format_summary_table(result.summary))


def render(result: ReportResult, fmt: str) -> str:
    out = io.StringIO()
    write_report(result, fmt, out)
    return out.getvalue()
