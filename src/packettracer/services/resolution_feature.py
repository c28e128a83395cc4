"""The resolution feature: names, geo and ownership for every flow, the DNS statistics, and the
traffic breakdowns of the Stats panel.

Passive (always on): DNS answers (A/AAAA through CNAME chains, with TTL), TLS SNI and HTTP Host
from the first packets of flows, the offline geo data, any configured .mmdb files.
Active (dashboard and agent; off with -n, and with --offline for everything that leaves the
machine): reverse DNS, ip-api.com (only with [geo] online / --online-geo), RDAP/WHOIS ownership.
`report` stays passive and offline so that its output depends only on the capture and the
local data.

Flows get `name`, `name_source`, `country`, `city`, `asn`, `as_org` when they end (the report and
the database see them); live panels call `describe(flow)`, which answers from the caches.
Other features find this one as ``runtime.features.get("resolution")``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from packettracer.capture.packet import TCP, UDP, Packet
from packettracer.model import dnsparse
from packettracer.model.addresses import classify, is_local, is_public
from packettracer.model.breakdown import Breakdown, FlowKeys, Table, remote_address, top
from packettracer.model.dnsstats import DnsStats, tunnel_score
from packettracer.model.flows import Flow, format_address
from packettracer.model.hostnames import client_hello_sni, hello_incomplete, http_host
from packettracer.model.names import (
    DNS,
    HTTP,
    MARKERS,
    PTR,
    SEEN_NAME_LIFETIME,
    SNI,
    NameTable,
)
from packettracer.services.geo import GeoInfo, GeoService, OfflineGeo
from packettracer.services.ownership import Ownership, OwnershipService
from packettracer.services.pipeline import Analyzer
from packettracer.services.rdns import PtrResult, ReverseDns
from packettracer.services.runtime import Runtime

log = logging.getLogger(__name__)

DNS_PORTS = dnsparse.DNS_PORTS
NAME_PACKETS = 8
"""Packets from the start of a flow searched for an SNI or a Host header."""
MAX_HELLO = 16384
"""Bytes of a split ClientHello kept per flow while its end is awaited."""
TOP_N = 10
_OFFLINE: dict[str, OfflineGeo] = {}
"""One offline geo database per process (it takes ~0.2 s and ~100 MB to load)."""


def shared_offline(kind: str) -> OfflineGeo:
    db = _OFFLINE.get(kind)
    if db is None:
        db = _OFFLINE[kind] = OfflineGeo(kind)
    return db


@dataclass(slots=True)
class FlowView:
    """What the panels show about a flow's far end."""

    address: str
    name: str | None
    name_source: str | None
    country: str | None
    city: str | None
    asn: int | None
    as_org: str | None
    label: str | None


class ResolutionAnalyzer(Analyzer):
    """Every DNS packet (by port), and the first packets of other flows for their SNI or Host
    header, unless the DPI hands those names over (`ResolutionFeature.names_from_dpi`)."""

    name = "resolution"
    inspect_packets = NAME_PACKETS
    ports = DNS_PORTS

    def __init__(self, feature: ResolutionFeature) -> None:
        self.feature = feature

    def on_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        # Only the client's payload matters (a ClientHello, an HTTP request).
        if (
            forward
            and pkt.payload
            and flow.proto in (TCP, UDP)
            and pkt.sport not in DNS_PORTS
            and pkt.dport not in DNS_PORTS
        ):
            self.feature.on_first_packets(pkt, flow)

    def on_port_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        if pkt.payload and (pkt.proto == TCP or pkt.proto == UDP):
            self.feature.on_dns(pkt)

    def on_flow_end(self, flow: Flow) -> None:
        self.feature.on_flow_end(flow)

    def tick(self, now: float) -> None:
        self.feature.tick(now)


class ResolutionFeature:
    name = "resolution"

    def __init__(self, runtime: Runtime, mode: str) -> None:
        self.runtime = runtime
        self.mode = mode
        settings = runtime.settings
        self.names = NameTable()
        self.dns = DnsStats()
        self.breakdown = Breakdown()
        active = mode != "report" and settings.resolve.enabled
        background = mode != "report"
        self.geo = GeoService(
            settings,
            offline=shared_offline(settings.geo.offline_data),
            load_in_background=background,
        )
        if mode == "report":
            self.geo.online = False
        self.rdns = ReverseDns(settings)
        self.rdns.enabled = self.rdns.enabled and active
        self.ownership = OwnershipService(settings)
        self.ownership.enabled = self.ownership.enabled and active
        self.analyzer = ResolutionAnalyzer(self)
        self.snapshot: dict[str, Table] = {}
        self._snapshot_at = 0.0
        self._hellos: dict[int, bytes] = {}
        self._pruned = 0.0
        self._store: Any = None

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, runtime: Runtime) -> None:
        runtime.pipeline.add_analyzer(self.analyzer)
        if self.mode == "dashboard":
            # The Traffic panel's Name, Cc and AS/Org columns (UI code: imported only here).
            columns = importlib.import_module("packettracer.screens.resolution_columns")
            columns.register(self)
        runtime.add_service(self.geo)
        if self.rdns.enabled:
            runtime.add_service(self.rdns)
        if self.ownership.enabled:
            runtime.add_service(self.ownership)
        self._store = runtime.features.get("store")
        if self._store is not None:
            # the database stamps host facts with wall time (a replayed capture may be years old)
            runtime.add_service(_WarmUp(self))
            self.geo.on_update.append(self._store_geo)
            self.rdns.on_result.append(self._store_ptr)
            self.ownership.on_result.append(self._store_owner)

    async def finish(self) -> None:
        """Report mode: let queued online geo answers land (bounded)."""
        if self.geo.online:
            await self.geo.drain(5.0)

    # --- passive names --------------------------------------------------------------------

    def on_dns(self, pkt: Packet) -> None:
        if pkt.proto == UDP:
            msg = dnsparse.parse(pkt.payload)
            messages = [msg] if msg is not None else []
        else:
            messages = dnsparse.parse_tcp(pkt.payload)
        if not messages:
            self.dns.malformed += 1
            return
        src = format_address(pkt.src)
        dst = format_address(pkt.dst)
        for msg in messages:
            event = self.dns.on_message(msg, src, dst, pkt.ts)
            if not msg.response or msg.rcode != "NOERROR":
                if msg.response and event is not None:
                    self._record_dns(event, msg, [])
                continue
            learned = []
            for address, name, ttl in msg.addresses():
                if self.names.add(address, name, DNS, pkt.ts, ttl) is not None:
                    learned.append((address, name, ttl))
            if event is not None:
                self._record_dns(event, msg, learned)
            if self._store is not None:
                for address, name, _ttl in learned:
                    self._store.upsert_host(address, name=name, source=DNS)

    def _record_dns(self, event: Any, msg: dnsparse.DnsMessage, learned: list[Any]) -> None:
        if self._store is None or not event.qname:
            return
        ttl = min((t for _, _, t in learned), default=None)
        self._store.record_dns(
            event.qname,
            ts=event.ts,
            client=event.client,
            server=event.server,
            qtype=event.qtype,
            rcode=msg.rcode,
            answers=[a.data for a in msg.answers][:20],
            ttl=ttl,
        )

    def on_first_packets(self, pkt: Packet, flow: Flow) -> None:
        payload = pkt.payload
        first = payload[0]
        pending = self._hellos.pop(flow.id, None) if self._hellos else None
        if pending is not None:
            payload = pending + payload  # the rest of a ClientHello split across segments
            first = 0x16
        if first == 0x16:
            name = client_hello_sni(payload)
            source = SNI
            if name is None and len(payload) < MAX_HELLO and hello_incomplete(payload):
                self._hellos[flow.id] = payload
                if len(self._hellos) > 10_000:
                    self._hellos.pop(next(iter(self._hellos)))
                return
        elif 0x41 <= first <= 0x5A:  # an upper-case letter: maybe an HTTP method
            name = http_host(payload)
            source = HTTP
        else:
            return
        if name is not None:
            self.learn_name(flow, name, source, pkt.ts)

    def learn_name(self, flow: Flow, name: str, source: str, ts: float) -> None:
        """A name the client of `flow` used for its server (SNI, HTTP Host)."""
        address = flow.dst
        entry = self.names.add(address, name, source, ts)
        if entry is None:
            return
        flow.set("name", entry.name)
        flow.set("name_source", source)
        if self._store is not None:
            self._store.upsert_host(address, name=entry.name, source=source)

    def names_from_dpi(self) -> None:
        """The DPI reads the first packets of every flow already and hands over the SNI and
        Host names it finds (`learn_name`): stop reading them a second time."""
        self.analyzer.inspect_packets = 0
        self.runtime.pipeline.reconfigure()

    # --- per flow -------------------------------------------------------------------------

    def describe(self, flow: Flow, active: bool = True) -> FlowView:
        """Name and geo of the flow's far end, from the caches (never waits). With `active`
        (rows a user is looking at), missing PTR and ownership answers are queued."""
        address = remote_address(flow)
        name = flow.get("name")
        source = flow.get("name_source")
        if name is None:
            name, source = self._passive_name(flow, address, source, active)
        geo = self.geo.lookup(address) or GeoInfo()
        owner = self.owner(address) if active else self.ownership.peek(address)
        org = _shown_org(geo, owner)
        return FlowView(
            address=address,
            name=name,
            name_source=source,
            country=geo.country,
            city=geo.city,
            asn=geo.asn,
            as_org=org,
            label=geo.label,
        )

    def _passive_name(
        self, flow: Flow, address: str, source: str | None, active: bool
    ) -> tuple[str | None, str | None]:
        """The name of a flow that has none yet: DPI's SNI/Host, the name table, then PTR."""
        name = None
        ext = flow.ext
        if ext is not None and address == flow.dst:
            # the DPI feature's SNI (TLS and QUIC) or HTTP Host, when it parsed the flow
            for key, src in (("sni", SNI), ("http_host", HTTP)):
                seen = ext.get(key)
                if isinstance(seen, str) and seen:
                    entry = self.names.add(address, seen, src, flow.first_seen)
                    if entry is not None:
                        return entry.name, src
        entry = self.names.best(address, flow.first_seen)
        if entry is not None:
            return entry.name, entry.source
        if active and self.rdns.enabled:
            name = self.rdns.lookup(address)
        else:
            cached = self.rdns.cached(address)
            name = cached.name if cached is not None else None
        if name is not None:
            return name, PTR
        return None, source

    def owner(self, address: str) -> Ownership | None:
        """Who owns `address` (cached); unknown or stale public ones are queued for RDAP."""
        if self.ownership.enabled and is_public(address):
            return self.ownership.lookup(address)
        return self.ownership.peek(address)

    def keys_of(self, flow: Flow) -> FlowKeys:
        address = remote_address(flow)
        country, org = _breakdown_keys(self.geo.peek(address) or self.geo.lookup(address))
        protocol = flow.get("app") or flow.proto_name
        return FlowKeys(country, org, str(protocol))

    def on_flow_end(self, flow: Flow) -> None:
        # describe(flow, active=False) and keys_of() in one pass: this runs for every flow, and
        # the locality of both ends is needed twice (far end, local/remote talkers).
        if self._hellos:
            self._hellos.pop(flow.id, None)
        src = flow.src
        dst = flow.dst
        src_local = is_local(src)
        dst_local = is_local(dst)
        address = src if dst_local and not src_local else dst
        ext = flow.ext
        if ext is None:
            name = source = None
        else:
            name = ext.get("name")
            source = ext.get("name_source")
        if name is None:
            name, source = self._passive_name(flow, address, source, False)
        geo = self.geo.lookup(address)
        ext = flow.ext
        if ext is None:
            ext = flow.ext = {}
        ext["name"] = name
        ext["name_source"] = source
        if geo is None:
            ext["country"] = ext["city"] = ext["asn"] = None
        else:
            ext["country"] = geo.country
            ext["city"] = geo.city
            ext["asn"] = geo.asn
        ext["as_org"] = _shown_org(geo, self.ownership.peek(address))
        key_country, key_org = _breakdown_keys(geo)
        protocol = ext.get("app") or flow.proto_name
        self.breakdown.add_ended(flow, key_country, key_org, str(protocol), src_local, dst_local)
        if self._store is not None and geo is not None and geo.label is None and not geo.empty:
            self._store_geo(address, geo, only_new=True)

    def tick(self, now: float) -> None:
        self.dns.expire(now)
        if self.mode != "report" and now and now - self._pruned > 60.0:
            self._pruned = now
            self.names.prune(now)

    def live_tables(self, max_age: float = 1.0) -> dict[str, Table]:
        """Breakdowns over ended and active flows, recomputed at most every `max_age` seconds
        (it walks every active flow)."""
        clock = time.monotonic()
        if not self.snapshot or clock - self._snapshot_at >= max_age:
            self.snapshot = self.breakdown.snapshot(self.runtime.pipeline.flows, self.keys_of)
            self._snapshot_at = clock
        return self.snapshot

    def ptr_name(self, address: str) -> str | None:
        """The cached PTR name with its marker (never waits, never queues)."""
        result = self.rdns.cached(address)
        if result is None or result.name is None:
            return None
        return f"{result.name} {MARKERS[PTR]}"

    # --- persistence ----------------------------------------------------------------------

    _stored_geo: set[str] | None = None

    def _store_geo(self, address: str, info: GeoInfo, only_new: bool = False) -> None:
        if self._store is None:
            return
        if self._stored_geo is None:
            self._stored_geo = set()
        key = f"{address}|{','.join(info.sources)}"
        if only_new and key in self._stored_geo:
            return
        if len(self._stored_geo) > 100_000:
            self._stored_geo.clear()
        self._stored_geo.add(key)
        self._store.upsert_host(address, geo=info.to_dict(), source=info.sources[-1])

    def _store_ptr(self, address: str, result: PtrResult) -> None:
        if self._store is not None and result.name:
            self._store.upsert_host(address, name=result.name, source=PTR)

    def _store_owner(self, address: str, owner: Ownership) -> None:
        if self._store is not None and owner.error is None:
            self._store.upsert_host(address, owner=owner.to_dict(), source=owner.source)

    def warm(self, rows: list[dict[str, Any]]) -> int:
        """Seed the caches with what the database knows (newest first)."""
        count = 0
        for row in rows:
            address = row.get("ip")
            if not isinstance(address, str):
                continue
            for item in row.get("names") or []:
                name, source = item.get("name"), item.get("source")
                if not name:
                    continue
                if source == PTR:
                    self.rdns.warm(address, name)
                elif source in (DNS, SNI, HTTP):
                    # a remembered name holds for the first hour of this run; fresh answers win
                    learned = float(item.get("learned_at") or 0)
                    self.names.add(address, name, source, learned, ttl=None)
                    entry = self.names.best(address)
                    if entry is not None and entry.name == name:
                        entry.expires = time.time() + SEEN_NAME_LIFETIME
            geo = row.get("geo")
            if isinstance(geo, dict) and classify(address) is None:
                self.geo.warm(address, GeoInfo.from_dict(geo))
            owner = row.get("owner")
            if isinstance(owner, dict):
                self.ownership.warm(address, Ownership.from_dict(owner))
            count += 1
        return count

    # --- report ---------------------------------------------------------------------------

    def extend_report(self, runtime: Runtime, result: Any) -> None:
        tables = self.breakdown.tables
        result.summary["top_countries"] = _top(tables["country"], "country")
        result.summary["top_as"] = _top(tables["as"], "as_org")
        result.summary["top_protocols"] = _top(tables["protocol"], "protocol")
        result.summary["top_local_talkers"] = _top(tables["local"], "address")
        result.summary["top_remote_talkers"] = _top(tables["remote"], "address")
        result.summary["dns"] = self.dns.summary(TOP_N)
        result.summary["names_learned"] = len(self.names)


def _shown_org(geo: GeoInfo | None, owner: Ownership | None) -> str | None:
    """The organisation shown for an address: its geo data's, else its RDAP owner's."""
    org = geo.org if geo is not None else None
    if org is None and owner is not None and owner.error is None:
        org = owner.org or owner.network
    return org


def _breakdown_keys(geo: GeoInfo | None) -> tuple[str, str]:
    """(country, organisation) an address counts under in the breakdown tables."""
    if geo is None:
        return "?", "?"
    if geo.label is not None:
        return geo.label, geo.label
    org = geo.org
    return geo.country or "?", f"AS{geo.asn} {org}" if geo.asn and org else (org or "?")


def _top(table: Table, key_name: str) -> list[dict[str, Any]]:
    rows = top(table, TOP_N)
    for row in rows:
        row[key_name] = row.pop("key")
    return rows


class _WarmUp:
    """Reads host knowledge from the database once at start (in a worker thread)."""

    name = "resolution-warmup"

    def __init__(self, feature: ResolutionFeature) -> None:
        self.feature = feature

    async def run(self) -> None:
        store = self.feature._store
        try:
            rows = await asyncio.to_thread(store.load_hosts)
        except Exception as exc:  # the database is another feature's; a failure is a warning
            log.warning("could not read known hosts: %s", exc)
            return
        count = self.feature.warm(rows or [])
        log.info("warmed name/geo caches with %d hosts", count)


def create_resolution_feature(runtime: Runtime, mode: str) -> ResolutionFeature:
    return ResolutionFeature(runtime, mode)


__all__ = ["ResolutionFeature", "create_resolution_feature", "tunnel_score"]
