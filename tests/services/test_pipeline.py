"""The packet pipeline and the report engine in process: analyzer hooks, counters, filters, and
the streaming writers (which must produce exactly what json/csv over the dicts would)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from packettracer.capture.packet import Packet
from packettracer.capture.pcapfile import CaptureReader
from packettracer.config import Settings
from packettracer.errors import CaptureFileError
from packettracer.model.flows import Flow
from packettracer.services.pipeline import Analyzer, Pipeline
from packettracer.services.report import (
    ReportResult,
    analyze_file,
    format_csv,
    format_table,
    render,
    write_report,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def feed_file(pipeline: Pipeline, name: str) -> None:
    with CaptureReader(DATA / name) as reader:
        pipeline.feed(reader)


class Recorder(Analyzer):
    name = "recorder"

    def __init__(self, inspect: int = 0, every: bool = False) -> None:
        self.inspect_packets = inspect
        self.all_packets = every
        self.seen: list[tuple[int, bool]] = []
        self.ended: list[Flow] = []
        self.ticks: list[float] = []

    def on_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        self.seen.append((flow.id, forward))

    def on_flow_end(self, flow: Flow) -> None:
        self.ended.append(flow)

    def tick(self, now: float) -> None:
        self.ticks.append(now)

    def summary(self) -> dict[str, Any]:
        return {"recorded": len(self.seen)}


class Broken(Analyzer):
    name = "broken"
    all_packets = True

    def on_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        raise RuntimeError("analyzer bug")

    def summary(self) -> dict[str, Any]:
        raise RuntimeError("summary bug")


def test_hooks_see_what_they_asked_for() -> None:
    first_two = Recorder(inspect=2)
    every = Recorder(every=True)
    pipeline = Pipeline(analyzers=[first_two, every])
    feed_file(pipeline, "dns_tcp.pcap")  # one TCP connection, 11 packets (tshark)
    pipeline.tick()
    pipeline.finish()
    assert len(every.seen) == 11
    assert first_two.seen == every.seen[:2]
    # SYN from the client, SYN+ACK back.
    assert [fwd for _id, fwd in first_two.seen] == [True, False]
    assert [f.end_reason for f in every.ended] == ["end"]
    assert every.ticks == [pipeline.flows.now]
    summary = pipeline.summary()
    assert summary["recorded"] == 11 and summary["packets"] == 11 and summary["flows"] == 1


def test_a_failing_analyzer_is_counted_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    good = Recorder(every=True)
    pipeline = Pipeline(analyzers=[Broken(), good])
    feed_file(pipeline, "5-pings.pcap")
    summary = pipeline.summary()
    assert len(good.seen) == 10
    assert summary["analyzer_errors"] == {"broken": 10}  # one per packet
    assert summary["packets"] == 10
    assert pipeline.analyzer_errors == {"broken": 11}  # and its summary() failed too
    # Logged once per failure for the first three, as one line without a traceback.
    failures = [r for r in caplog.records if "analyzer broken failed" in r.getMessage()]
    assert len(failures) == 3
    assert "RuntimeError: analyzer bug" in failures[0].getMessage()
    assert not any(r.exc_info for r in failures)


def test_counters_on_damaged_and_unsupported_input() -> None:
    pipeline = Pipeline()
    feed_file(pipeline, "fuzz-2006-09-29-28586.pcap")
    feed_file(pipeline, "ip4-trunc.pcap")
    pipeline.feed([(147, 1.0, b"\x00" * 20, 20)])  # LINKTYPE_USER0: not ours
    summary = pipeline.summary()
    assert summary["packets"] == 132 and summary["skipped_linktype"] == 1
    assert summary["malformed"] == pipeline.decoder.malformed >= 2
    assert summary["non_ip"] == 6  # tshark: 6 frames that carry no IP or ARP


def test_userspace_bpf_filter_counts_what_it_drops() -> None:
    pipeline = Pipeline(bpf_filter="udp")
    feed_file(pipeline, "dns_fragmented.pcap")
    summary = pipeline.summary()
    # Later IPv4 fragments carry no UDP header, so BPF "udp" (like tcpdump) drops them.
    assert summary["packets"] + summary["filtered"] == 66
    assert summary["filter"] == "udp"
    assert all(p in (17,) for p in pipeline.stats.by_proto)


def test_timestamps_and_duration() -> None:
    pipeline = Pipeline()
    feed_file(pipeline, "5-pings.pcap")
    stats = pipeline.stats
    assert stats.first_ts == pytest.approx(1607454603.986596)
    assert stats.duration == pytest.approx(4.032397, abs=1e-6)


def test_out_of_order_timestamps_span_the_whole_capture() -> None:
    with CaptureReader(DATA / "5-pings.pcap") as reader:
        frames = list(reader)
    pipeline = Pipeline()
    pipeline.feed([frames[3], frames[0], frames[9], frames[1]])
    assert pipeline.stats.first_ts == frames[0][1] and pipeline.stats.last_ts == frames[9][1]


# --- the report engine and its writers ----------------------------------------------------


@pytest.mark.parametrize(
    "name", ["dns.pcap", "q-in-q.pcap", "dns_fragmented.pcap", "linux_dlt_sll2.pcap", "empty.pcap"]
)
def test_streamed_output_equals_plain_serialization(name: str) -> None:
    result = analyze_file(str(DATA / name))
    streamed_json = render(result, "json")
    streamed_csv = render(result, "csv")
    # The same result with its flows as dicts: the plain path.
    defaults = result.flow_defaults
    plain = ReportResult(result.summary, flows=[f.to_dict(defaults) for f in result.flow_objects])
    plain.extra = result.extra
    assert streamed_json == json.dumps(plain.to_json(), separators=(",", ":")) + "\n"
    # (compared as JSON values: a tuple in a flow record is a list once written)
    assert json.loads(streamed_json)["flows"] == json.loads(json.dumps(plain.flows))
    assert streamed_csv == format_csv(plain.flows)
    rows = list(csv.DictReader(io.StringIO(streamed_csv)))
    assert len(rows) == len(plain.flows)


def test_streamed_json_writes_every_kind_of_ext_value_as_the_encoder_does() -> None:
    """The flow writer formats common ext values itself: each kind must come out as
    json.dumps writes it (escapes, non-ASCII text, bool before int, floats, containers)."""
    import enum

    class Kind(enum.IntEnum):
        A = 7

    result = analyze_file(str(DATA / "dns.pcap"))
    flow = result.flow_objects[0]
    flow.ext = {
        "none": None, "text": 'quote " back \\ tab \t bell \x07',
        "unicode": "Zürich ☃ \ud83d\ude00",
        "empty": "", "yes": True, "no": False, "zero": 0, "neg": -42, "big": 2**70,
        "kind": Kind.A, "ratio": 0.1, "whole": 3.0, "nan": float("nan"), "inf": float("-inf"),
        "reasons": (), "list": ["a", 1, None], "nested": {"k": [True, 1.5]},
    }  # fmt: skip
    again = flow.ext.copy()  # a second flow with the same keys: the keys' cached JSON
    result.flow_objects[1].ext = again
    defaults = result.flow_defaults
    plain = ReportResult(result.summary, flows=[f.to_dict(defaults) for f in result.flow_objects])
    plain.extra = result.extra
    streamed = render(result, "json")
    assert streamed == json.dumps(plain.to_json(), separators=(",", ":")) + "\n"
    assert streamed.count('"kind":7,"ratio":0.1,"whole":3.0,"nan":NaN,"inf":-Infinity') == 2


def test_materialized_flows_are_what_gets_written() -> None:
    result = analyze_file(str(DATA / "5-pings.pcap"))
    result.flows[0]["note"] = "added by a feature"
    out = io.StringIO()
    write_report(result, "json", out)
    assert json.loads(out.getvalue())["flows"][0]["note"] == "added by a feature"
    assert "note" in render(result, "csv").splitlines()[0].split(",")


def test_ext_facts_and_strings_from_packets_are_escaped() -> None:
    (flow,) = analyze_file(str(DATA / "5-pings.pcap")).flow_objects
    result = ReportResult({"flows": 1}, flow_objects=[flow])
    flow.set("name", 'evil"\x1b[31m\u2028')
    flow.set("tags", ["a", 1])
    data = json.loads(render(result, "json"))
    assert data["flows"][0]["name"] == 'evil"\x1b[31m\u2028'
    assert data["flows"][0]["tags"] == ["a", 1]
    table = format_table(result.flows, ["src", "name"])
    assert "\x1b" not in table and "\\x1b" in table


def test_flows_are_ordered_by_first_seen_and_ended_once() -> None:
    result = analyze_file(str(DATA / "dns_fragmented.pcap"))
    firsts = [f["first_seen"] for f in result.flows]
    assert firsts == sorted(firsts)
    assert len(result.flows) == result.summary["flows"] == 21


def test_truncated_capture_reports_before_the_break() -> None:
    result = analyze_file(str(DATA / "truncated_dns_2.pcap"))
    assert result.summary["truncated_at"] == 240 and result.summary["packets"] == 1
    assert len(result.warnings) == 1 and "byte 240" in result.warnings[0]


def test_not_a_capture_raises_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureFileError, match="is a directory"):
        analyze_file(str(tmp_path))
    with pytest.raises(CaptureFileError):
        analyze_file(str(DATA / "dns.pcap" / "inside"))


def test_settings_reach_the_flow_table() -> None:
    settings = Settings()
    settings.flows.max_flows = 3
    result = analyze_file(str(DATA / "dns_fragmented.pcap"), settings)
    assert result.summary["flows_evicted"] > 0 and len(result.flows) == 21


class PortWatcher(Recorder):
    name = "port-watcher"
    ports = frozenset({53})

    def __init__(self) -> None:
        super().__init__()
        self.port_seen: list[tuple[int, bool]] = []

    def on_port_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        self.port_seen.append((flow.id, forward))


def test_port_hooks_see_every_packet_of_their_ports_and_reconfigure_applies() -> None:
    first = Recorder(inspect=1)
    dns = PortWatcher()
    pipeline = Pipeline(analyzers=[first, dns])
    feed_file(pipeline, "dns.pcap")  # 5 DNS packets in 2 conversations (tshark), all port 53
    assert len(dns.port_seen) == 5 and dns.seen == []
    assert len(first.seen) == 2  # the first packet of each flow
    feed_file(pipeline, "5-pings.pcap")  # no port 53: the port hook is not called
    assert len(dns.port_seen) == 5
    first.inspect_packets = 0
    pipeline.reconfigure()
    before = len(first.seen)
    feed_file(pipeline, "http.pcap")
    assert len(first.seen) == before  # no longer an inspector
    assert len(dns.port_seen) == 7  # http.pcap carries one DNS query and its answer


def test_report_pauses_the_cyclic_gc_only_while_it_analyzes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    states: list[bool] = []
    feed = Pipeline.feed

    def watched(self: Pipeline, frames: Any) -> None:
        states.append(gc.isenabled())
        feed(self, frames)

    monkeypatch.setattr(Pipeline, "feed", watched)
    assert gc.isenabled()
    analyze_file(str(DATA / "http.pcap"))
    assert states and not any(states)
    assert gc.isenabled()
    with pytest.raises(CaptureFileError):
        analyze_file(str(DATA / "no-such.pcap"))
    assert gc.isenabled()  # back on after a failure too


def test_report_hands_what_it_made_to_the_oldest_gc_generation() -> None:
    """The report's flows outlive the analysis: they go to the oldest generation at once,
    not through collections of the young ones that would walk all of them again."""
    import gc

    gc.collect()
    result = analyze_file(str(DATA / "http.pcap"))
    assert gc.isenabled() and gc.get_freeze_count() == 0
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert result.flow_objects and all(id(f) in oldest for f in result.flow_objects)
    assert gc.get_count()[0] < 700  # the young generation starts (nearly) empty


def test_report_leaves_objects_the_process_froze_frozen() -> None:
    import gc

    gc.collect()
    kept = [{"frozen": [1]} for _ in range(10)]
    gc.freeze()
    try:
        analyze_file(str(DATA / "http.pcap"))
        # still in the permanent generation: in none of the three the collector walks
        walked = {id(o) for o in gc.get_objects()}
        assert gc.get_freeze_count() >= len(kept)
        assert not any(id(d) in walked for d in kept)
    finally:
        gc.unfreeze()
    assert all(id(d) in {id(o) for o in gc.get_objects()} for d in kept)
