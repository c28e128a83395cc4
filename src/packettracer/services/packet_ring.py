"""A bounded ring of recent packets per flow, so the dashboard can write the selected flows'
packets to a pcapng file (`w`). Bounded twice: per flow, and by the bytes all rings hold."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from packettracer.capture.packet import Packet
from packettracer.capture.pcapfile import Frame
from packettracer.model.flows import Flow
from packettracer.services.pipeline import Analyzer
from packettracer.services.runtime import Runtime


class PacketRing(Analyzer):
    name = "packet-ring"
    all_packets = True

    def __init__(self, per_flow: int, max_bytes: int) -> None:
        self.per_flow = per_flow
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evicted_packets = 0
        # flow id -> its recent frames; least recently used flow first
        self.rings: OrderedDict[int, deque[Frame]] = OrderedDict()

    def on_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        raw = pkt.raw
        if not raw:
            return
        ring = self.rings.get(flow.id)
        if ring is None:
            ring = self.rings[flow.id] = deque()
        else:
            self.rings.move_to_end(flow.id)
        if len(ring) >= self.per_flow:
            self.bytes -= len(ring.popleft()[2])
            self.evicted_packets += 1
        ring.append((pkt.linktype, pkt.ts, raw, pkt.wirelen))
        self.bytes += len(raw)
        while self.bytes > self.max_bytes and self.rings:
            _, oldest = self.rings.popitem(last=False)
            self.bytes -= sum(len(f[2]) for f in oldest)
            self.evicted_packets += len(oldest)

    def on_flow_end(self, flow: Flow) -> None:
        ring = self.rings.pop(flow.id, None)
        if ring is not None:
            self.bytes -= sum(len(f[2]) for f in ring)

    def frames_for(self, flow_ids: Iterable[int]) -> list[Frame]:
        """The kept frames of these flows, in capture order."""
        frames: list[Frame] = []
        for fid in flow_ids:
            frames.extend(self.rings.get(fid, ()))
        frames.sort(key=lambda f: f[1])
        return frames


class PacketRingFeature:
    name = "packet_ring"

    def __init__(self, runtime: Runtime) -> None:
        ui = runtime.settings.ui
        self.ring = PacketRing(ui.ring_packets_per_flow, ui.ring_max_bytes)

    def attach(self, runtime: Runtime) -> None:
        runtime.pipeline.decoder.keep_raw = True
        runtime.pipeline.add_analyzer(self.ring)


def make_feature(runtime: Runtime, mode: str) -> PacketRingFeature | None:
    if mode != "dashboard" or runtime.settings.ui.ring_packets_per_flow <= 0:
        return None
    return PacketRingFeature(runtime)
