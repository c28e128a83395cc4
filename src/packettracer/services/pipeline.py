"""The one packet pipeline: frames -> decoder -> flow table -> analyzers.

The dashboard, `report` and `agent` all run this same object; only where frames come from and
where results go differ. Analyzers are addons (mitmproxy style): small classes with hook methods,
each call guarded so that one failing analyzer is counted and logged, never fatal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

from packettracer.capture.bpf import FrameFilter
from packettracer.capture.decoder import SUPPORTED_LINKTYPES, Decoder
from packettracer.capture.packet import Packet
from packettracer.capture.pcapfile import Frame
from packettracer.config import Settings
from packettracer.model.flows import Flow, FlowTable
from packettracer.model.stats import TrafficStats

log = logging.getLogger(__name__)


def _log_failure(what: str) -> None:
    """One line for the user (the count is in the summary); the traceback only with -vv, so an
    analyzer bug never prints a traceback on a normal run. Call from an except block."""
    exc = sys.exc_info()[1]
    log.error(
        "%s failed: %s: %s", what, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG)
    )


class Analyzer:
    """Base class for pipeline addons. Override what you need; every hook is optional."""

    name = "analyzer"
    inspect_packets = 0
    """How many packets from the start of each flow `on_packet` wants (DPI reads the start)."""
    all_packets = False
    """Call `on_packet` for every packet, not just the first `inspect_packets` of a flow."""
    ports: frozenset[int] = frozenset()
    """Call `on_port_packet` for every packet from or to one of these ports (DNS, say)."""

    def on_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        """A packet of `flow`; `forward` is True when it goes from the initiator."""

    def on_port_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        """A packet from or to one of `ports` (every such packet, not only a flow's first)."""

    def on_flow_end(self, flow: Flow) -> None:
        """`flow` ended (idle, closed, evicted, or the capture finished)."""

    def tick(self, now: float) -> None:
        """Periodic housekeeping; `now` is the latest packet time."""

    def summary(self) -> dict[str, Any]:
        """What this analyzer adds to the report's summary."""
        return {}


class Pipeline:
    def __init__(
        self,
        settings: Settings | None = None,
        analyzers: Iterable[Analyzer] = (),
        bpf_filter: str | None = None,
        keep_raw: bool = False,
    ) -> None:
        self.settings = settings or Settings()
        fs = self.settings.flows
        self.decoder = Decoder(keep_raw=keep_raw)
        self.stats = TrafficStats()
        self.flows = FlowTable(
            max_flows=fs.max_flows,
            idle_timeout=fs.idle_timeout,
            closed_timeout=fs.closed_timeout,
            on_end=self._flow_ended,
        )
        self.filter = FrameFilter(bpf_filter) if bpf_filter else None
        self.analyzers: list[Analyzer] = []
        # (analyzer, packets it wants from the start of a flow, its bound on_packet)
        self._inspectors: list[tuple[Analyzer, int, Callable[[Packet, Flow, bool], None]]] = []
        self._all_packets: list[tuple[Analyzer, Callable[[Packet, Flow, bool], None]]] = []
        self._port_hooks: list[
            tuple[Analyzer, frozenset[int], Callable[[Packet, Flow, bool], None]]
        ] = []
        self._ports: frozenset[int] = frozenset()
        self._end_hooks: list[tuple[Analyzer, Callable[[Flow], None]]] = []
        self.analyzer_errors: dict[str, int] = {}
        self.ended_listeners: list[Callable[[Flow], None]] = []
        for analyzer in analyzers:
            self.add_analyzer(analyzer)

    @property
    def malformed(self) -> int:
        return self.decoder.malformed

    def add_analyzer(self, analyzer: Analyzer) -> None:
        self.analyzers.append(analyzer)
        self.reconfigure()

    def reconfigure(self) -> None:
        """Rebuild the dispatch lists from the analyzers' attributes (in the order they were
        added); call it after changing an analyzer's `inspect_packets`, `all_packets` or
        `ports`."""
        self._end_hooks = []
        self._all_packets = []
        self._inspectors = []
        self._port_hooks = []
        for analyzer in self.analyzers:
            if type(analyzer).on_flow_end is not Analyzer.on_flow_end:
                self._end_hooks.append((analyzer, analyzer.on_flow_end))
            if analyzer.all_packets:
                self._all_packets.append((analyzer, analyzer.on_packet))
            elif analyzer.inspect_packets > 0:
                self._inspectors.append((analyzer, analyzer.inspect_packets, analyzer.on_packet))
            if analyzer.ports:
                self._port_hooks.append((analyzer, analyzer.ports, analyzer.on_port_packet))
        self._ports = frozenset().union(*(ports for _, ports, _ in self._port_hooks))
        self.flows.inspect_packets = max(
            [a.inspect_packets for a in self.analyzers if not a.all_packets] or [0]
        )

    def on_flow_end(self, listener: Callable[[Flow], None]) -> None:
        self.ended_listeners.append(listener)

    def _safecall(self, analyzer: Analyzer, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            self._failed(analyzer)
            return None

    def _failed(self, analyzer: Analyzer) -> None:
        """Count (and log the first few of) an analyzer's exceptions; call from an except block."""
        count = self.analyzer_errors.get(analyzer.name, 0) + 1
        self.analyzer_errors[analyzer.name] = count
        if count <= 3:
            _log_failure(f"analyzer {analyzer.name}")

    def _flow_ended(self, flow: Flow) -> None:
        # Called once per flow (~240,000 times on the benchmark capture): only the analyzers
        # that implement the hook, each guarded inline rather than through _safecall.
        for analyzer, hook in self._end_hooks:
            try:
                hook(flow)
            except Exception:
                self._failed(analyzer)
        for listener in self.ended_listeners:
            try:
                listener(flow)
            except Exception:
                _log_failure("a flow-end listener")

    def feed(self, frames: Iterable[Frame]) -> None:
        """The hot path: account every frame. Kept flat on purpose (no per-packet calls that
        are not needed)."""
        decode = self.decoder.decode
        table = self.flows
        update = table.update
        stats = self.stats
        by_proto = stats.by_proto
        filt = self.filter
        inspectors = self._inspectors
        window = table.inspect_packets
        all_packets = self._all_packets
        port_hooks = self._port_hooks
        ports = self._ports
        supported = SUPPORTED_LINKTYPES
        packets = 0
        nbytes = 0
        last_ts = stats.last_ts
        first_ts = stats.first_ts
        try:
            for linktype, ts, data, wirelen in frames:
                if linktype not in supported:
                    stats.skipped_linktype += 1
                    continue
                if filt is not None and not filt.matches(linktype, data, wirelen):
                    stats.filtered += 1
                    continue
                packets += 1
                nbytes += wirelen
                if last_ts is None or ts > last_ts:
                    if first_ts is None:
                        first_ts = ts
                    last_ts = ts
                elif first_ts is not None and ts < first_ts:
                    first_ts = ts  # out-of-order capture: the duration spans the earliest
                pkt = decode(linktype, data, ts, wirelen)
                if pkt is None:
                    continue
                counts = by_proto.get(pkt.proto)
                if counts is None:
                    by_proto[pkt.proto] = [1, wirelen]
                else:
                    counts[0] += 1
                    counts[1] += wirelen
                flow = update(pkt)
                left = flow.inspect_left
                if left > 0:
                    flow.inspect_left = left = left - 1
                    # 1-based index of this packet in its flow
                    seen = window - left
                    forward = table.last_forward
                    for analyzer, first, inspect in inspectors:
                        if seen <= first:
                            try:
                                inspect(pkt, flow, forward)
                            except Exception:
                                self._failed(analyzer)
                if port_hooks and (pkt.sport in ports or pkt.dport in ports):
                    forward = table.last_forward
                    for analyzer, wanted, port_hook in port_hooks:
                        if pkt.sport in wanted or pkt.dport in wanted:
                            try:
                                port_hook(pkt, flow, forward)
                            except Exception:
                                self._failed(analyzer)
                if all_packets:
                    forward = table.last_forward
                    # Bound hooks called directly (a try block costs nothing in 3.11): this
                    # runs for every packet, so _safecall's extra frame is not.
                    for analyzer, hook in all_packets:
                        try:
                            hook(pkt, flow, forward)
                        except Exception:
                            self._failed(analyzer)
        finally:
            stats.packets += packets
            stats.bytes += nbytes
            stats.last_ts = last_ts
            stats.first_ts = first_ts

    def tick(self) -> None:
        now = self.flows.now
        for analyzer in self.analyzers:
            self._safecall(analyzer, analyzer.tick, now)

    def finish(self) -> None:
        """End every active flow (the capture is over)."""
        self.flows.flush()

    def summary(self) -> dict[str, Any]:
        out = self.stats.to_dict()
        out["flows"] = self.flows.created
        out["malformed"] = self.decoder.malformed
        out["non_ip"] = self.decoder.non_ip
        out["flows_evicted"] = self.flows.evicted
        out["flows_expired"] = self.flows.expired
        if self.filter is not None:
            out["filter"] = self.filter.expression
        if self.analyzer_errors:
            out["analyzer_errors"] = dict(self.analyzer_errors)
        for analyzer in self.analyzers:
            extra = self._safecall(analyzer, analyzer.summary)
            if extra:
                out.update(extra)
        return out
