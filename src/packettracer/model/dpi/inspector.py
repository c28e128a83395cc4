"""The per-flow DPI engine: feeds the first packets of each flow to the detectors, keeps the
small per-flow state they need (TCP reassembly of TLS handshakes, QUIC CRYPTO data, banners),
and turns what they found into the flow's application, category and confidence."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, Final

from packettracer.capture.packet import ACK, ARP, FIN, ICMP, ICMP6, RST, SYN, TCP, UDP, Packet
from packettracer.model import dnsparse, hostnames, names
from packettracer.model.dpi import anomaly, http, p0f, protocols, quic, tls
from packettracer.model.dpi.anomaly import Signal, signal
from packettracer.model.dpi.categories import CONF_DPI, CONF_NAME, CONF_PORT, UNKNOWN
from packettracer.model.dpi.osfp import HostOS
from packettracer.model.dpi.rules import Rules, rules
from packettracer.model.flows import Flow

CLIENT_BUFFER: Final = 16384
# Ended flows handed to the aggregates at a time.
ENDED_BATCH: Final = 1024
# Handshakes per host that feed its OS verdict; later ones only cost time (p0f keeps the
# latest, we keep the counts of the first ones).
HOST_SYN_SAMPLES: Final = 8
_UNSPECIFIED: Final = frozenset({"0.0.0.0", "::"})
_ZERO4: Final = b"\x00\x00\x00\x00"
# change_cipher_spec, alert, application_data
_TLS_RECORD_TYPES: Final = frozenset({0x14, 0x15, 0x17})
SERVER_BUFFER: Final = 32768
# Protocols whose detection ends the inspection of a flow at once (nothing more to read).
_MORE_AFTER: Final = frozenset(
    {"SMTP", "IMAP", "POP3", "FTP", "HTTP", "SSH", "DNS", "mDNS", "LLMNR"}
)
_STARTTLS: Final = (b"STARTTLS", b"starttls", b"STLS", b"AUTH TLS", b"AUTH SSL")
# Protocols in DNS's message format: once a flow is one, only the DNS parser reads it.
_DNS_FAMILY: Final = frozenset({"DNS", "mDNS", "LLMNR", "NetBIOS"})
OTHER_PROTOCOLS: Final = {ICMP: "ICMP", ICMP6: "ICMPv6", ARP: "ARP", 2: "IGMP", 89: "OSPF",
                   47: "GRE", 50: "IPsec", 51: "IPsec", 112: "VRRP", 103: "PIM"}  # fmt: skip
# Ports where a detected protocol other than the expected one is an anomaly (server side).
EXPECTED_ON_PORT: Final[dict[tuple[int, int], set[str]]] = {
    (TCP, 443): {"TLS", "OpenVPN", "SSH", "HTTP_Proxy"},
    (UDP, 443): {"QUIC", "DTLS", "STUN", "OpenVPN", "WireGuard"},
    (UDP, 53): {"DNS"},
    (TCP, 53): {"DNS"},
    (TCP, 80): {"HTTP", "RTSP", "SSDP"},
    (TCP, 22): {"SSH"},
    (TCP, 25): {"SMTP", "TLS"},
    (UDP, 123): {"NTP"},
}
_WHO_IS_EXPECTED: Final = {
    (TCP, 443): "TLS", (UDP, 443): "QUIC", (UDP, 53): "DNS", (TCP, 53): "DNS",
    (TCP, 80): "HTTP", (TCP, 22): "SSH", (TCP, 25): "SMTP", (UDP, 123): "NTP",
}  # fmt: skip


_NO_SIGNALS: Final[list[Signal]] = []
"""The shared empty signal list of flows without signals (see _signal)."""


class FlowState:
    """What the DPI knows of one flow while it inspects it. Class-level defaults: most flows
    never change most fields, and a bare instance is the cheapest to create."""

    protocol: str | None = None
    app: str | None = None
    confidence: str | None = None
    done = False
    # TCP reassembly per direction (0: client->server, 1: server->client)
    bufs: list[bytearray | None] | None = None
    next_seq: list[int] | None = None
    tls_client = False
    tls_server = False
    quic_crypto: dict[int, bytes] | None = None
    quic_dcid: bytes | None = None
    rtp: tuple[int, int] | None = None
    signals: list[Signal]
    entropy_sample: bytes | None = None
    starttls = False
    dns_checked = False  # the query name's anomaly signals were looked at
    payloads = 0
    syn_mss = 0

    def __init__(self) -> None:
        self.details: dict[str, Any] = {}
        self.signals = _NO_SIGNALS


# No anomaly reasons: an empty tuple, not a list, so that the flow's ext dict holds only atomic
# values and the garbage collector need not track it (every ended flow keeps one).
_NO_REASONS: Final = ()
# What a flow's end hands the aggregates: (label: str | None, category: str, confidence:
# str | None, protocol: str | None, encrypted: bool, anomaly score: int, anomaly reasons: list of
# str or ()). Typed as a plain tuple: compiled (mypyc), a tuple of declared item types is kept as
# a C struct, checked item by item when it comes out of a dict or list and made into a new tuple
# object at every hand-over (the aggregates' batch, the return to Python): ~0.17 us per bare flow.
Verdict = tuple[Any, ...]
_UNKNOWN_VERDICT: Final[Verdict] = (None, UNKNOWN, None, None, False, 0, _NO_REASONS)


def _fields(verdict: Verdict) -> dict[str, Any]:
    """A verdict as the flow's ext fields."""
    label, category, confidence, protocol, encrypted, score, reasons = verdict
    return {
        "app": label,
        "category": category,
        "confidence": confidence,
        "protocol": protocol,
        "encrypted": encrypted,
        "anomaly_score": score,
        "anomaly_reasons": reasons,
    }


# A verdict with its fields (copied into each flow it fits: one C-level copy, not 7 stores).
_Cached = tuple[Verdict, dict[str, Any]]
_UNKNOWN_CACHED: Final[_Cached] = (_UNKNOWN_VERDICT, _fields(_UNKNOWN_VERDICT))
UNKNOWN_FIELDS: Final = _UNKNOWN_CACHED[1]
"""The unknown verdict's fields. A flow the DPI can say nothing about (no payload it knows,
no name, no known port, no signal: most flows of a scan) is left without any of its fields;
they are its value in `Runtime.flow_defaults`, which fills them in where flows are written
out. Shared: never modify it. The unknown verdict is told apart by this dict: compiled code
(mypyc) copies tuples, so a tuple's identity is not a test there, a dict's is."""
# Protocols whose application may come from a name learned after the handshake (no SNI).
_NAMED_LATER: Final = frozenset({"TLS", "QUIC", "HTTP"})
# Flow signals that also count against the host that sent the flow.
_HOST_LEVEL_SIGNALS: Final = frozenset(
    {"bad_fingerprint", "malware_app", "dns_long_label", "dns_entropy", "bogon"}
)


def _signal(st: FlowState, sig: Signal) -> None:
    if st.signals is _NO_SIGNALS:
        st.signals = []
    st.signals.append(sig)


def _take_details(st: FlowState, det: protocols.Detection) -> None:
    """A detection's findings into the flow's details, less its internal "_" keys (parsed
    objects for the engine's own use): the details are published as they are."""
    details = st.details
    for key, value in det.details.items():
        if key[0] != "_":
            details[key] = value


# c * log2(c) for every count a 512-byte sample can hold: the entropy sum without a log per byte
# value (-sum(c/n * log2(c/n)) = log2(n) - sum(c * log2(c)) / n).
_C_LOG_C: Final = [0.0] + [c * math.log2(c) for c in range(1, 513)]


def _looks_encrypted(data: bytes) -> bool:
    data = data[:512]
    n = len(data)
    if n < 48:
        return False
    ent = math.log2(n) - sum(map(_C_LOG_C.__getitem__, Counter(data).values())) / n
    return ent >= 0.88 * math.log2(min(n, 256))


def _verdict_of(ext: dict[str, Any] | None) -> Verdict:
    """The verdict a flow already carries (one the DPI did not inspect)."""
    if not ext:
        return _UNKNOWN_VERDICT
    return (
        ext.get("app"), ext.get("category") or UNKNOWN, ext.get("confidence"),
        ext.get("protocol"), bool(ext.get("encrypted")), ext.get("anomaly_score") or 0,
        ext.get("anomaly_reasons") or _NO_REASONS,
    )  # fmt: skip


class DPIEngine:
    """All DPI state of one capture: per-flow inspection, per-host OS and anomaly evidence."""

    def __init__(
        self, rule_set: Rules | None = None, bad_fingerprints: dict[str, str] | None = None
    ):
        self.rules = rule_set or rules()
        self.p0f = p0f.database()
        self.bad_fingerprints = bad_fingerprints or {}
        self.hosts: OrderedDict[str, HostOS] = OrderedDict()
        self.max_hosts = 50000
        # address -> name learned from DNS answers (for flows with no name of their own)
        self.dns_names: OrderedDict[str, str] = OrderedDict()
        self.max_dns_names = 20000
        self.ttl = anomaly.TTLTracker()
        # Senders with HOST_SYN_SAMPLES fingerprinted handshakes and a TTL past its warm-up:
        # address -> the (lowest, highest) TTL that is no news.
        self._settled: dict[str, tuple[int, int]] = {}
        self.host_signals: dict[str, list[Signal]] = {}
        self.parse_errors: Counter[str] = Counter()
        self._p0f_cache: dict[tuple[Any, ...], tuple[tuple[str, str] | None, int]] = {}
        self.bogons_flagged = False
        """The security feature marks flows with reserved addresses (`threat` = bogon)."""
        self.sole_inspector = False
        """No other analyzer reads the first packets: a finished flow may stop being fed."""
        self.name_lookup: Any = None
        """Optional callable address -> name (the resolution feature), set by the service."""
        self.name_index: Any = None
        """Optional container of the addresses `name_lookup` may know (others have no name)."""
        self.name_listener: Callable[[Flow, str, str, float], None] | None = None
        """Optional callable (flow, name, source, ts) told of each server name a client states
        (TLS and QUIC SNI, HTTP Host): the resolution feature's name table."""
        self.ended: list[tuple[Flow, Verdict]] = []
        self.ended_listener: Callable[[list[tuple[Flow, Verdict]]], None] | None = None
        """Optional callable handed the ended flows with their verdicts, in batches of up to
        ENDED_BATCH (the aggregates); `flush_ended` hands over the rest."""
        self.flagged_listener: Callable[[Flow], None] | None = None
        """Optional callable told at once of each ended flow with an anomaly score or
        classified malware."""
        self._port_table = self.rules.ports
        self._port_verdicts: dict[int, _Cached] = {}

    # ------------------------------------------------------------------ per packet

    def packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        # The flow's state (`flow.inspection`): a bare int for a TCP flow without payload yet
        # (its SYN's MSS), a FlowState once payload came.
        st = flow.inspection
        proto = pkt.proto
        if st is None or isinstance(st, int):
            # A TCP flow without payload so far (most of them: scans, bare handshakes) is
            # just its SYN's MSS: no state object for the collector to track until data comes.
            if proto == TCP and not pkt.payload:
                flags = pkt.tcp_flags
                if flags & SYN:
                    if st is None and not flags & (ACK | FIN | RST):
                        # A plain SYN from a host whose verdict is sampled and whose TTL is
                        # settled (a scanner's SYNs, a busy client's): only its MSS is kept.
                        span = self._settled.get(flow.src if forward else flow.dst)
                        if span is not None and span[0] <= pkt.ttl <= span[1]:
                            opts = pkt.tcp_options
                            flow.inspection = (
                                (opts[2] << 8) | opts[3] if opts[:2] == b"\x02\x04" else 0
                            )
                            return
                    flow.inspection = self._syn(pkt, flow, forward, st or 0)
                elif st is None:
                    flow.inspection = 0
                return
            new = FlowState()
            if st is not None:
                new.syn_mss = st
            elif flow.proto != TCP and flow.proto != UDP:
                self._other(new, flow)
            st = flow.inspection = new
        if proto == TCP and pkt.tcp_flags & SYN:
            st.syn_mss = self._syn(pkt, flow, forward, st.syn_mss)
        if st.done:
            if self.sole_inspector:
                flow.inspect_left = 0
            return
        payload = pkt.payload
        if not payload:
            return
        st.payloads += 1
        if st.entropy_sample is None:
            st.entropy_sample = payload  # a reference, not a copy: only unknown flows read it
        if proto == TCP:
            self._tcp(st, pkt, flow, forward, payload)
        elif proto == UDP:
            self._udp(st, pkt, flow, forward, payload)

    def _other(self, st: FlowState, flow: Flow) -> None:
        """ICMP, ARP, GRE, ...: the IP protocol number says it all."""
        st.done = True
        other = OTHER_PROTOCOLS.get(flow.proto)
        if other is not None:
            st.protocol = other
            st.confidence = CONF_DPI
            self._publish(st, flow)

    def _host(self, addr: str) -> HostOS:
        host = self.hosts.get(addr)
        if host is None:
            host = self.hosts[addr] = HostOS()
            if len(self.hosts) > self.max_hosts:
                self.hosts.popitem(last=False)
        return host

    def _host_signal(self, addr: str, sig: Signal) -> None:
        sigs = self.host_signals.setdefault(addr, [])
        if len(sigs) < 16 and all(s.name != sig.name for s in sigs):
            sigs.append(sig)

    def _syn(self, pkt: Packet, flow: Flow, forward: bool, flow_mss: int) -> int:
        """Fingerprint a SYN or SYN+ACK; returns the flow's SYN MSS (`flow_mss`, or the one
        this SYN announces)."""
        flags = pkt.tcp_flags
        if flags & (FIN | RST):
            return flow_mss
        syn_ack = bool(flags & ACK)
        syn_mss = flow_mss if syn_ack else 0
        sender = flow.src if forward else flow.dst
        host = self.hosts.get(sender)
        if host is not None and host.syns >= HOST_SYN_SAMPLES:
            # Enough of this host's handshakes seen for its verdict; still watch its TTL, and
            # keep the MSS a SYN+ACK's window may be a multiple of.
            if not syn_ack:
                opts = pkt.tcp_options
                if opts[:2] == b"\x02\x04":
                    flow_mss = (opts[2] << 8) | opts[3]
            if self._see_ttl(sender, pkt.ttl) and sender not in self._settled:
                # Past its warm-up: from now on its plain SYNs are checked in packet() against
                # the TTLs that say nothing new (any, once flagged).
                settled = self._settled
                if len(settled) >= self.ttl.max_hosts:
                    settled.clear()
                base, _, flagged = self.ttl.hosts[sender]
                jump = self.ttl.jump
                settled[sender] = (0, 255) if flagged else (base - jump, base + jump)
            return flow_mss
        # Stacks repeat their SYNs: look each distinct one up once. The key holds every field
        # p0f reads, with the timestamp values reduced to zero/non-zero.
        opts = pkt.tcp_options
        i = opts.find(b"\x08\x0a")
        if i >= 0 and len(opts) >= i + 10:
            opts = (
                opts[: i + 2]
                + (b"z" if opts[i + 2 : i + 6] == _ZERO4 else b"n")
                + (b"z" if opts[i + 6 : i + 10] == _ZERO4 else b"n")
                + opts[i + 10 :]
            )
        key = (
            pkt.ip_version, pkt.ttl, pkt.ip_header_len, pkt.df, pkt.ip_id == 0, flags,
            pkt.tcp_seq == 0, pkt.tcp_ack == 0, pkt.tcp_window, opts, not pkt.payload, syn_mss,
        )  # fmt: skip
        cache = self._p0f_cache
        hit = cache.get(key)
        if hit is None:
            obs = p0f.observe(pkt)
            if obs is None:
                return flow_mss
            match = self.p0f.match(obs, syn_ack, syn_mss)
            verdict: tuple[str, str] | None = None
            if match is not None and match.signature.os_class != "!":
                kind = "fuzzy" if match.fuzzy else ("generic" if match.generic else "exact")
                verdict = (match.label, kind)
            hit = (verdict, obs.mss)
            if len(cache) > 20000:
                cache.clear()
            cache[key] = hit
        verdict, mss = hit
        if not syn_ack:
            flow_mss = mss  # the SYN+ACK's window may be a multiple of it
        if host is None:
            host = self._host(sender)
        host.syns += 1
        host.fingerprinted = True
        ttls = host.ttls
        ttls[pkt.ttl] = ttls.get(pkt.ttl, 0) + 1
        if verdict is not None:
            seen = host.p0f
            seen[verdict] = seen.get(verdict, 0) + 1
        # TTL jumps are watched on handshake packets, the ones every host sends.
        if sender not in _UNSPECIFIED:
            self._see_ttl(sender, pkt.ttl)
        return flow_mss

    def _see_ttl(self, sender: str, ttl: int) -> bool:
        """Watch one TTL of `sender`; True when it is no news: the host is past its warm-up and
        near its baseline, or flagged already (the tracker would only count the sample, which
        decides nothing any more)."""
        tracker = self.ttl
        entry = tracker.hosts.get(sender)
        if (
            entry is not None
            and entry[1] >= tracker.warmup
            and (entry[2] or -tracker.jump <= ttl - entry[0] <= tracker.jump)
        ):
            return True
        sig = tracker.see(sender, ttl)
        if sig is not None:
            self._host_signal(sender, sig)
        return False

    # ------------------------------------------------------------------ TCP

    def _tcp(self, st: FlowState, pkt: Packet, flow: Flow, forward: bool, data: bytes) -> None:
        d = 0 if forward else 1
        if st.bufs is None:
            st.bufs = [None, None]
            st.next_seq = [0, 0]
        assert st.next_seq is not None
        buf = st.bufs[d]
        if buf is not None:
            seq = pkt.tcp_seq
            expected = st.next_seq[d]
            if seq == expected:
                buf += data
                st.next_seq[d] = (seq + len(data)) & 0xFFFFFFFF
            elif (expected - seq) & 0xFFFFFFFF < 0x80000000:
                return  # retransmission of bytes we have
            else:
                st.bufs[d] = None  # a gap: stop reassembling this side
                return
            self._tls_stream(st, flow, d)
            return
        if data[0] == 0x16 and len(data) > 5 and data[1] == 3:
            st.bufs[d] = bytearray(data)
            st.next_seq[d] = (pkt.tcp_seq + len(data)) & 0xFFFFFFFF
            if not st.starttls:
                st.protocol = "TLS"
            st.confidence = CONF_DPI
            self._tls_stream(st, flow, d)
            return
        # Midstream TLS (the handshake was before the capture): records, no hello.
        if (
            st.protocol is None
            and data[0] in _TLS_RECORD_TYPES
            and len(data) > 5
            and data[1] == 3
            and data[2] <= 4
            and (data[3] << 8 | data[4]) <= 18432
        ):
            st.protocol = "TLS"
            st.confidence = CONF_DPI
            st.done = True
            self._publish(st, flow)
            return
        if st.protocol == "HTTP" or st.protocol is None:
            if forward and st.details.get("http_method") is None:
                req = http.parse_request(data)
                if req is not None:
                    self._http_request(st, flow, req)
                    return
            elif not forward and st.protocol == "HTTP":
                resp = http.parse_response(data)
                if resp is not None:
                    st.details["http_status"] = resp.status
                    if resp.server:
                        st.details["http_server"] = resp.server[:80]
                    if resp.content_type:
                        st.details["http_content_type"] = resp.content_type[:60]
                st.done = True
                self._publish(st, flow)
                return
        if st.protocol is not None:
            self._follow(st, flow, forward, data)
            return
        det = protocols.detect_tcp(data, flow.sport, flow.dport, forward)
        if det is None:
            if forward and data.startswith(b"HTTP/1."):
                return
            if not forward and data.startswith(b"HTTP/1.") and flow.sport != 80:
                st.protocol = "HTTP"
            if st.payloads >= 6:
                st.done = True
            return
        self._detected(st, flow, det)

    def _follow(self, st: FlowState, flow: Flow, forward: bool, data: bytes) -> None:
        """More packets of a detected banner protocol: the other side's banner, STARTTLS."""
        proto = st.protocol
        if proto == "SSH":
            det = protocols.prefix_match("tcp", data, forward)
            if det is not None and det.protocol == "SSH":
                _take_details(st, det)
            if "ssh_client" in st.details and "ssh_server" in st.details:
                st.done = True
        elif proto in ("SMTP", "IMAP", "POP3", "FTP"):
            if forward and (data.startswith(_STARTTLS) or b" STARTTLS" in data[:40]):
                st.starttls = True
                st.details["starttls"] = True
            if st.payloads > 12:
                st.done = True
        else:
            st.done = True
        self._publish(st, flow)

    def _http_request(self, st: FlowState, flow: Flow, req: http.HttpRequest) -> None:
        st.protocol = "HTTP" if flow.proto == TCP else "SSDP"
        st.confidence = CONF_DPI
        st.details["http_method"] = req.method
        if req.host:
            st.details["http_host"] = req.host[:200]
            app = self.rules.app_for_name(req.host)
            if app is not None:
                st.app = app
            if self.name_listener is not None and req.host_header:
                name = hostnames.host_header_name(req.host_header.encode("latin-1"))
                if name is not None:
                    self.name_listener(flow, name, names.HTTP, flow.last_seen)
        if req.user_agent:
            st.details["user_agent"] = req.user_agent[:300]
            agents = self._host(flow.src).user_agents
            agent = req.user_agent[:300]
            agents[agent] = agents.get(agent, 0) + 1
        if req.method == "CONNECT":
            st.protocol = "HTTP_Proxy"
        self._publish(st, flow)

    def _tls_stream(self, st: FlowState, flow: Flow, d: int) -> None:
        if st.bufs is None:
            return
        buf = st.bufs[d]
        if buf is None:
            return
        if not tls.records_complete(buf) and len(buf) <= (
            CLIENT_BUFFER if d == 0 else SERVER_BUFFER
        ):
            return  # a record is still arriving: parse once it is whole
        try:
            messages, more = tls.handshake_messages(bytes(buf))
        except tls.TLSParseError:
            st.bufs[d] = None
            _signal(st, signal("malformed", what="TLS record"))
            return
        details = st.details
        for mtype, body in messages:
            try:
                if mtype == tls.HS_CLIENT_HELLO and d == 0 and not st.tls_client:
                    self._client_hello(st, flow, tls.parse_client_hello(body), "t")
                    st.tls_client = True
                elif mtype == tls.HS_SERVER_HELLO and d == 1 and not st.tls_server:
                    hello = tls.parse_server_hello(body)
                    st.tls_server = True
                    details["tls_version"] = tls.version_name(hello.negotiated_version)
                    details["tls_cipher"] = f"0x{hello.cipher:04x}"
                    details["ja3s"] = hello.ja3s()
                    if hello.alpn:
                        details["alpn"] = hello.alpn
                elif mtype == tls.HS_CERTIFICATE and d == 1 and "cert_subject" not in details:
                    cert = tls.parse_certificate(body)
                    if cert is not None:
                        details["cert_subject"] = cert.subject[:200]
                        details["cert_issuer"] = cert.issuer[:200]
                        if cert.self_signed:
                            _signal(st, signal("self_signed", subject=cert.subject[:80]))
                    st.bufs[1] = None
            except tls.TLSParseError:
                _signal(st, signal("malformed", what="TLS handshake"))
                st.bufs[d] = None
        limit = CLIENT_BUFFER if d == 0 else SERVER_BUFFER
        if (d == 0 and st.tls_client) or not more or len(buf) > limit:
            st.bufs[d] = None
        if d == 1 and st.tls_server and details.get("tls_version") == "TLSv1.3":
            st.bufs[1] = None
        if st.tls_client and st.bufs[0] is None and st.bufs[1] is None and st.tls_server:
            st.done = True
        self._publish(st, flow)

    def _client_hello(self, st: FlowState, flow: Flow, hello: tls.ClientHello, kind: str) -> None:
        details = st.details
        ja4, ja3 = hello.fingerprints(kind)
        details["ja4"] = ja4
        details["ja3"] = ja3
        details["tls_offered"] = tls.version_name(hello.max_version)
        if hello.alpn:
            details["alpn"] = ",".join(hello.alpn[:4])
        if hello.sni:
            details["sni"] = hello.sni[:255]
            app = self.rules.app_for_name(hello.sni)
            if app is not None:
                st.app = app
            if self.name_listener is not None:
                name = hostnames.sni_name(hello.sni)
                if name is not None:
                    self.name_listener(flow, name, names.SNI, flow.last_seen)
        elif kind == "t":
            _signal(st, signal("tls_no_sni"))
        for fp in (ja4, details["ja3"]):
            label = self.bad_fingerprints.get(fp)
            if label is not None:
                _signal(st, signal("bad_fingerprint", fp=fp, label=label))
                details["bad_fingerprint"] = label

    # ------------------------------------------------------------------ UDP

    def _udp(self, st: FlowState, pkt: Packet, flow: Flow, forward: bool, data: bytes) -> None:
        if data[0] & 0x80 and quic.is_initial(data):
            self._quic(st, flow, forward, data)
            return
        if st.protocol in _DNS_FAMILY:
            # The flow is DNS already: its parser only, not every detector before it.
            det = protocols.dns_udp(data, flow.sport, flow.dport, forward)
            if det is not None:
                self._dns_info(st, flow, det)
            if not forward:
                st.done = True
            self._publish(st, flow)
            return
        if st.protocol == "SSDP" or (
            data[0] in http.FIRST_BYTES and 1900 in (flow.sport, flow.dport)
        ):
            req = http.parse_request(data)
            st.protocol = "SSDP"
            st.confidence = CONF_DPI
            if req is not None and req.user_agent:
                st.details["user_agent"] = req.user_agent[:300]
            st.done = True
            self._publish(st, flow)
            return
        det = protocols.detect_udp(data, flow.sport, flow.dport, forward)
        if det is not None:
            self._detected(st, flow, det)
            return
        rtp = protocols.parse_rtp(data)
        if rtp is not None:
            kind, ssrc, seq = rtp
            if kind == "RTCP":
                # The length field (32-bit words minus one) must fit the datagram.
                if 200 <= data[1] <= 204 and ((data[2] << 8 | data[3]) + 1) * 4 <= len(data):
                    self._detected(st, flow, protocols.Detection("RTCP"))
                    return
            elif st.rtp is not None and st.rtp[0] == ssrc and 0 < (seq - st.rtp[1]) & 0xFFFF < 16:
                self._detected(st, flow, protocols.Detection("RTP"))
                return
            st.rtp = (ssrc, seq)
        if st.payloads >= 8:
            st.done = True

    def _quic(self, st: FlowState, flow: Flow, forward: bool, data: bytes) -> None:
        st.protocol = "QUIC"
        st.confidence = CONF_DPI
        if not forward:
            return
        try:
            initial = quic.decrypt_initial(data, st.quic_dcid)
        except quic.QUICError:
            return
        st.details["quic_version"] = quic.VERSION_NAMES.get(
            initial.version, f"0x{initial.version:08x}"
        )
        if st.quic_dcid is None:
            st.quic_dcid = initial.dcid
        if st.quic_crypto is None:
            st.quic_crypto = {}
        st.quic_crypto.update(initial.crypto)
        stream = quic.assemble(st.quic_crypto)
        for mtype, body in tls.handshake_messages_raw(stream):
            if mtype == tls.HS_CLIENT_HELLO:
                self._client_hello(st, flow, tls.parse_client_hello(body), "q")
                st.quic_crypto = None
                st.done = True
                break
        self._publish(st, flow)

    def _dns_info(self, st: FlowState, flow: Flow, det: protocols.Detection) -> None:
        details = det.details
        if "malformed" in details:
            _signal(st, signal("malformed", what="DNS message"))
            return
        msg: dnsparse.DnsMessage | None = details.get("_dns")
        if msg is None:
            return
        qname = msg.qname
        if qname and not st.dns_checked:
            st.dns_checked = True
            st.details["dns_query"] = qname[:255]
            for sig in anomaly.dns_name_signals(qname):
                _signal(st, sig)
        if self.name_lookup is not None:
            return  # the resolution feature learns the answers (and we ask it)
        names = self.dns_names
        for addr, name, _ttl in msg.addresses():
            names[addr] = name
            names.move_to_end(addr)
            if len(names) > self.max_dns_names:
                names.popitem(last=False)

    # ------------------------------------------------------------------ common

    def _detected(self, st: FlowState, flow: Flow, det: protocols.Detection) -> None:
        st.protocol = det.protocol
        st.confidence = CONF_DPI
        if det.app:
            st.app = det.app
        name = det.details.get("sni") or det.details.get("http_host")
        if name and st.app is None:
            st.app = self.rules.app_for_name(name)
        _take_details(st, det)
        if det.protocol in _DNS_FAMILY:
            self._dns_info(st, flow, det)
        elif det.protocol == "DHCP":
            params = det.details.get("dhcp_params", "")
            vendor = det.details.get("dhcp_vendor", "")
            # A client without an address yet (0.0.0.0) is known by the address it asks for.
            host = flow.src
            if host in ("0.0.0.0", "::"):
                host = det.details.get("dhcp_requested_ip") or ""
            if (params or vendor) and host:
                dhcp = self._host(host).dhcp
                value = f"{params}|{vendor}"
                dhcp[value] = dhcp.get(value, 0) + 1
        if "malformed" in det.details:
            _signal(st, signal("malformed", what=det.protocol))
        if det.protocol not in _MORE_AFTER:
            st.done = True
        self._publish(st, flow)

    def _port_verdict(self, proto: int, sport: int, dport: int) -> _Cached:
        """The verdict of a flow known only by its ports (server port first), with its fields
        as a dict to copy into the flow, built once per port: most flows end here (scans, bare
        handshakes)."""
        cache = self._port_verdicts
        key = proto << 16 | dport  # an int, not a (proto, port) tuple to make and hash
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = self._guess(proto, dport)
        if hit[1] is UNKNOWN_FIELDS:
            key = proto << 16 | sport
            other = cache.get(key)
            if other is None:
                other = cache[key] = self._guess(proto, sport)
            return other
        return hit

    def _guess(self, proto: int, port: int) -> _Cached:
        protocol = self._port_table.get((proto, port))
        if protocol is None:
            return _UNKNOWN_CACHED
        info = self.rules.info(protocol)
        verdict = (protocol, info.category, CONF_PORT, protocol, info.encrypted, 0, _NO_REASONS)
        return verdict, _fields(verdict)

    def _end_unknown(self, st: FlowState | None, flow: Flow) -> Verdict:
        """The common end of a flow no payload rule recognized: a name, else a port guess.
        Most flows end here (scans, bare handshakes), so it is kept flat."""
        dst = flow.dst
        name = self._name_for(dst)
        app = self.rules.app_for_name(name) if name is not None else None
        template: dict[str, Any] | None = None  # the port's shared dict of the fields
        if app is not None:
            category = self.rules.info(app).category
            encrypted = False
            if st is not None and st.entropy_sample is not None:
                encrypted = _looks_encrypted(st.entropy_sample)
            verdict: Verdict = (app, category, CONF_NAME, None, encrypted, 0, _NO_REASONS)
        else:
            verdict, template = self._port_verdict(flow.proto, flow.sport, flow.dport)
            if (
                st is not None
                and st.entropy_sample is not None
                and verdict[3] is None
                and _looks_encrypted(st.entropy_sample)
            ):
                verdict = (*verdict[:4], True, 0, _NO_REASONS)
                template = None
        ext = flow.ext
        if self._bogon(flow, ext):
            sig = signal("bogon", addr=dst)
            verdict = (*verdict[:5], sig.weight, [sig.reason])
            template = None
            self._host_signal(flow.src, sig)
        if template is UNKNOWN_FIELDS and (ext is None or "category" not in ext):
            return verdict  # nothing to say, and nothing said before: no fields (UNKNOWN_FIELDS)
        fields = _fields(verdict) if template is None else template
        if ext is None:
            flow.ext = fields.copy()
        else:
            ext.update(fields)
        return verdict

    def _bogon(self, flow: Flow, ext: dict[str, Any] | None) -> bool:
        if self.bogons_flagged and (ext is None or ext.get("threat") != "bogon"):
            return False  # the security feature checked every flow's addresses already
        return anomaly.is_bogon(flow.dst)

    def _name_for(self, addr: str) -> str | None:
        name = self.dns_names.get(addr)
        if name is None and self.name_lookup is not None:
            index = self.name_index
            if index is not None and addr not in index:
                return None  # no name at all: spare the lookup's calls (most addresses)
            try:
                name = self.name_lookup(addr)
            except Exception:
                name = None
        return name

    def _publish(self, st: FlowState, flow: Flow) -> None:
        """Write the current verdict into the flow (the dashboard reads it live)."""
        app = st.app
        protocol = st.protocol
        confidence = st.confidence
        if protocol is None:
            name = self._name_for(flow.dst)
            named = self.rules.app_for_name(name) if name else None
            if named is not None:
                app, confidence = named, CONF_NAME
            else:
                guess = self.rules.port_guess(flow.proto, flow.sport, flow.dport)
                if guess is not None:
                    protocol, confidence = guess, CONF_PORT
        elif app is None and protocol in _NAMED_LATER and "sni" not in st.details:
            name = self._name_for(flow.dst)
            named = self.rules.app_for_name(name) if name else None
            if named is not None:
                app = named
                st.details["server_name"] = name
        label = app or protocol
        ext = flow.ext
        if ext is None:
            ext = flow.ext = {}
        if label is None:
            ext["app"] = None
            ext["category"] = UNKNOWN
            ext["confidence"] = None
        else:
            ext["app"] = label
            ext["category"] = self.rules.info(label).category
            ext["confidence"] = confidence
        if "bad_fingerprint" in st.details:
            ext["category"] = "malware"
        ext["protocol"] = protocol
        if protocol is not None and confidence == CONF_DPI:
            ext["encrypted"] = self.rules.info(protocol).encrypted or st.starttls
        ext.update(st.details)  # what the detectors found (no internal "_" keys get in there)

    def flow_end(self, flow: Flow) -> Verdict:
        """The flow's final verdict, written into `flow.ext`, handed to the listeners and
        returned as (label, category, confidence, protocol, encrypted, anomaly score, reasons)."""
        st = flow.inspection
        flow.inspection = None
        if isinstance(st, int):
            # A TCP flow that never carried payload (most flows: scans, bare handshakes). With
            # no name for its server and no bogon check to make, its verdict is its port's,
            # without the general path's name and bogon calls.
            dst = flow.dst
            index = self.name_index
            if (
                self.bogons_flagged
                and dst not in self.dns_names
                and (self.name_lookup is None or (index is not None and dst not in index))
            ):
                verdict, fields = self._port_verdict(TCP, flow.sport, flow.dport)
                ext = flow.ext
                if ext is None:
                    if fields is not UNKNOWN_FIELDS:
                        flow.ext = fields.copy()
                elif ext.get("threat") == "bogon":
                    verdict = self._end_unknown(None, flow)
                elif fields is not UNKNOWN_FIELDS:
                    ext.update(fields)
            else:
                verdict = self._end_unknown(None, flow)
        elif st is None:
            verdict = _verdict_of(flow.ext)  # never inspected here (a remote agent's flow)
        elif st.protocol is None and st.signals is _NO_SIGNALS and not st.details:
            verdict = self._end_unknown(st, flow)
        else:
            verdict = self._end_inspected(st, flow)
        if self.ended_listener is not None:
            # The aggregates take ended flows in batches: one call per batch, not per flow.
            ended = self.ended
            ended.append((flow, verdict))
            if len(ended) >= ENDED_BATCH:
                self.flush_ended()
        if (verdict[5] or verdict[1] == "malware") and self.flagged_listener is not None:
            self.flagged_listener(flow)
        return verdict

    def flush_ended(self) -> None:
        """Hand the ended flows not yet handed over to `ended_listener`."""
        batch = self.ended
        if batch and self.ended_listener is not None:
            self.ended = []
            self.ended_listener(batch)

    def _end_inspected(self, st: FlowState, flow: Flow) -> Verdict:
        protocol = st.protocol
        ext = flow.ext
        if not (
            # A finished inspection was published as it finished and nothing changed since,
            # unless its application hangs on a name learned later.
            st.done
            and protocol is not None
            and ext is not None
            and (st.app is not None or protocol not in _NAMED_LATER or "sni" in st.details)
        ):
            self._publish(st, flow)
            ext = flow.ext
        assert ext is not None  # _publish made it
        label = ext["app"]
        info = self.rules.info(label or "")
        encrypted = False
        if protocol is not None and st.confidence == CONF_DPI:
            encrypted = self.rules.info(protocol).encrypted or st.starttls
        elif protocol is None and st.entropy_sample is not None:
            encrypted = _looks_encrypted(st.entropy_sample)
        elif st.confidence == CONF_PORT and protocol is not None:
            encrypted = self.rules.info(protocol).encrypted
        ext["encrypted"] = encrypted
        signals = list(st.signals)
        if protocol is not None and st.confidence == CONF_DPI:
            key = (flow.proto, flow.dport)
            expected = EXPECTED_ON_PORT.get(key)
            if expected is not None and protocol not in expected:
                signals.append(
                    signal(
                        "unexpected_port",
                        proto=protocol,
                        port=flow.dport,
                        expected=_WHO_IS_EXPECTED[key],
                    )
                )
        if self._bogon(flow, ext):
            signals.append(signal("bogon", addr=flow.dst))
        if info.category == "malware":
            signals.append(signal("malware_app", app=info.name))
        reasons: list[str] | tuple[()] = _NO_REASONS
        score = 0
        if signals:
            score = anomaly.combine(signals)
            reasons = [s.reason for s in signals]
            for sig in signals:
                if sig.name in _HOST_LEVEL_SIGNALS:
                    self._host_signal(flow.src, sig)
        ext["anomaly_score"] = score
        ext["anomaly_reasons"] = reasons
        return (
            label, ext["category"], ext["confidence"], ext["protocol"], encrypted, score, reasons
        )  # fmt: skip
