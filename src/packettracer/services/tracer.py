"""Active traceroute over raw sockets (IPv4 and IPv6): ICMP echo, UDP and TCP SYN probes.

Paris-traceroute style: every probe of one trace carries the same flow identifier, so per-flow
load balancers (which hash the 5-tuple, and for ICMP the type/code/checksum word) keep all
probes on one path instead of inventing a mixture of paths:
  - ICMP echo: constant identifier AND constant checksum; the sequence number tells the probes
    apart and two payload bytes are chosen so that the checksum does not move.
  - UDP: constant source and destination ports; the probe number is carried in the UDP checksum
    (two payload bytes are chosen to give it), which ICMP errors quote back.
  - TCP SYN: constant ports; the probe number is in the sequence number (quoted back by ICMP
    errors, and acknowledged + 1 by the SYN-ACK or RST of the destination).

Answers arrive on a raw ICMP (ICMPv6) socket, plus a raw TCP socket for TCP probes; nothing here
imports scapy: packets are built and parsed with struct.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import random
import socket
import struct
import time
from dataclasses import dataclass, field

from packettracer.errors import PacketTracerError
from packettracer.model.trace import ProbeReply

log = logging.getLogger(__name__)

PROTOS = ("icmp", "udp", "tcp")
DEFAULT_PORTS = {"icmp": 0, "udp": 33434, "tcp": 80}

IPV6_UNICAST_HOPS = 16


class TraceError(PacketTracerError):
    """A trace that cannot run: unresolvable name, no route, bad options."""


class TracePermissionError(TraceError):
    """Raw sockets need root or CAP_NET_RAW."""

    def __init__(self) -> None:
        super().__init__("tracing needs raw sockets: run as root or grant CAP_NET_RAW")


# -- checksums ---------------------------------------------------------------------------------


def ones_sum(data: bytes) -> int:
    """16-bit one's complement sum (folded), the core of the Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    return ~ones_sum(data) & 0xFFFF


def compensation_word(data_without_word: bytes, wanted: int) -> int:
    """The 16-bit word that, added at an even offset to data whose sum is `data_without_word`'s,
    makes the Internet checksum equal `wanted`."""
    target = ~wanted & 0xFFFF
    total = target + (~ones_sum(data_without_word) & 0xFFFF)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, proto, length)
    return s.packed + d.packed + struct.pack("!I3xB", length, proto)


# -- options and results -----------------------------------------------------------------------


@dataclass
class TraceOptions:
    proto: str = "icmp"
    port: int | None = None
    """Destination port for udp/tcp (default 33434 / 80)."""
    max_ttl: int = 30
    timeout: float = 1.0
    """Seconds to wait for answers after the last probe of a round."""
    probes: int = 3
    """Probes per hop and round."""
    send_gap: float = 0.005
    """Pause between TTLs while sending, so routers that rate-limit ICMP still answer."""

    def validate(self) -> None:
        if self.proto not in PROTOS:
            raise TraceError(f"unknown probe type {self.proto!r} (use icmp, udp or tcp)")
        if not 1 <= self.max_ttl <= 255:
            raise TraceError(f"max TTL must be 1..255, got {self.max_ttl}")
        if self.probes < 1 or self.probes > 10:
            raise TraceError(f"probes per hop must be 1..10, got {self.probes}")
        if self.timeout <= 0:
            raise TraceError(f"timeout must be positive, got {self.timeout}")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise TraceError(f"port must be 1..65535, got {self.port}")

    @property
    def dport(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.proto]


@dataclass
class RoundResult:
    replies: list[ProbeReply]
    sent: dict[int, int]
    """Probes sent per TTL."""
    probed_ttls: int
    started: float = field(default_factory=time.time)


async def resolve_target(target: str, lookup_seconds: float = 5.0) -> tuple[str, int]:
    """Name or address -> (address, family). Raises TraceError with one clear line."""
    try:
        ip = ipaddress.ip_address(target.strip("[]"))
        return str(ip), socket.AF_INET if ip.version == 4 else socket.AF_INET6
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(target, None, type=socket.SOCK_DGRAM), lookup_seconds
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise TraceError(f"cannot resolve {target!r}: {reason}") from None
    except TimeoutError:
        reason = f"no answer within {lookup_seconds:g} s"
        raise TraceError(f"cannot resolve {target!r}: {reason}") from None
    # Prefer IPv4 when the name has both: what most users expect from traceroute.
    infos.sort(key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    family, _, _, _, sockaddr = infos[0]
    return str(sockaddr[0]), int(family)


def source_address(address: str, family: int, port: int) -> str:
    """The local address the kernel would use towards `address` (a route lookup, nothing sent)."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((address, port or 33434))
        except OSError as exc:
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                raise TraceError(f"{address} is unreachable: no route to it") from None
            raise TraceError(f"{address}: {exc.strerror}") from None
        return str(probe.getsockname()[0])


# -- the tracer --------------------------------------------------------------------------------


@dataclass
class _Probe:
    ttl: int
    sent_ns: int


class Tracer:
    """Traces one target with one flow identifier. `open()` creates the sockets (call it in the
    network namespace to trace from), `run_round()` sends one round of probes and collects
    answers, `close()` frees everything."""

    def __init__(
        self, target: str, address: str, family: int, options: TraceOptions | None = None
    ) -> None:
        self.target = target
        self.address = address
        self.family = family
        self.options = options or TraceOptions()
        self.options.validate()
        self.v6 = family == socket.AF_INET6
        rng = random.SystemRandom()
        # The flow identifier: constant for the life of this tracer.
        self.ident = rng.randrange(1, 0xFFFF)
        self.icmp_checksum = rng.randrange(1, 0xFFFF)
        self.sport = 0
        self.dport = self.options.dport
        self._seq_base = rng.randrange(0, 1 << 31) & 0xFFFF0000
        self._next_id = rng.randrange(1, 0xFFFF)
        self.source = ""
        self._send: socket.socket | None = None
        self._recv: list[socket.socket] = []
        self._reserve: socket.socket | None = None
        self._pending: dict[int, _Probe] = {}
        self._replies: list[ProbeReply] = []
        self._answered: set[int] = set()
        self._dest_ttl: int | None = None
        self._event = asyncio.Event()
        self.known_dest_ttl: int | None = None
        """Hops to the destination, learned from earlier rounds (probe no further)."""

    @property
    def flow_id(self) -> str:
        """A printable form of the constant flow identifier of this trace."""
        if self.options.proto == "icmp":
            return f"icmp id={self.ident} cksum=0x{self.icmp_checksum:04x}"
        return f"{self.options.proto} {self.source}:{self.sport} -> {self.address}:{self.dport}"

    # sockets

    def open(self) -> None:
        proto = self.options.proto
        self.source = source_address(self.address, self.family, self.dport)
        icmp_proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        try:
            icmp = socket.socket(self.family, socket.SOCK_RAW, icmp_proto)
        except PermissionError:
            raise TracePermissionError() from None
        self._recv.append(icmp)
        try:
            if proto == "icmp":
                self._send = icmp
            elif proto == "udp":
                self._reserve = socket.socket(self.family, socket.SOCK_DGRAM)
                self._reserve.bind((self.source, 0))
                self.sport = self._reserve.getsockname()[1]
                self._send = socket.socket(self.family, socket.SOCK_RAW, socket.IPPROTO_UDP)
            else:
                # A bound, never-listening TCP socket keeps the port ours; the kernel answers the
                # destination's SYN-ACK with a RST, as tcptraceroute does.
                self._reserve = socket.socket(self.family, socket.SOCK_STREAM)
                self._reserve.bind((self.source, 0))
                self.sport = self._reserve.getsockname()[1]
                self._send = socket.socket(self.family, socket.SOCK_RAW, socket.IPPROTO_TCP)
                self._recv.append(self._send)
        except PermissionError:
            self.close()
            raise TracePermissionError() from None
        for sock in self._recv:
            sock.setblocking(False)
        if self._send is not None:
            self._send.setblocking(False)

    def close(self) -> None:
        socks = {id(s): s for s in [*self._recv, self._send, self._reserve] if s is not None}
        for sock in socks.values():
            try:
                sock.close()
            except OSError:
                pass
        self._recv.clear()
        self._send = None
        self._reserve = None

    # packets

    def _new_id(self) -> int:
        # 0 is avoided: a UDP checksum of 0 means "none".
        self._next_id = self._next_id % 0xFFFE + 1
        return self._next_id

    def _build(self, probe_id: int) -> bytes:
        proto = self.options.proto
        if proto == "icmp":
            echo = 128 if self.v6 else 8
            head = struct.pack("!BBHHH", echo, 0, self.icmp_checksum, self.ident, probe_id)
            tail = b"packettracer"
            summed = head[:2] + b"\0\0" + head[4:] + tail
            if self.v6:
                length = len(head) + 2 + len(tail)
                summed = pseudo_header(self.source, self.address, 58, length) + summed
            word = compensation_word(summed, self.icmp_checksum)
            return head + struct.pack("!H", word) + tail
        if proto == "udp":
            tail = b"packettracer"
            length = 8 + 2 + len(tail)
            head = struct.pack("!HHHH", self.sport, self.dport, length, 0)
            pseudo = pseudo_header(self.source, self.address, socket.IPPROTO_UDP, length)
            word = compensation_word(pseudo + head + tail, probe_id)
            return (
                struct.pack("!HHHH", self.sport, self.dport, length, probe_id)
                + struct.pack("!H", word)
                + tail
            )
        seq = self._seq_base | probe_id
        # SYN with an MSS option, like a real client's first segment.
        options = struct.pack("!BBH", 2, 4, 1460)
        offset = (20 + len(options)) // 4
        head = struct.pack(
            "!HHIIBBHHH", self.sport, self.dport, seq, 0, offset << 4, 0x02, 64240, 0, 0
        )
        segment = head + options
        pseudo = pseudo_header(self.source, self.address, socket.IPPROTO_TCP, len(segment))
        csum = checksum(pseudo + segment)
        return segment[:16] + struct.pack("!H", csum) + segment[18:]

    def _send_probe(self, ttl: int) -> None:
        assert self._send is not None
        probe_id = self._new_id()
        if self.v6:
            self._send.setsockopt(socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl)
        else:
            self._send.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        packet = self._build(probe_id)
        self._pending[probe_id] = _Probe(ttl, time.perf_counter_ns())
        try:
            self._send.sendto(packet, (self.address, 0))
        except OSError as exc:
            self._pending.pop(probe_id, None)
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                raise TraceError(f"{self.address} is unreachable: no route to it") from None
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise TracePermissionError() from None
            raise TraceError(f"sending a probe to {self.address}: {exc.strerror}") from None

    # answers

    def _on_readable(self, sock: socket.socket) -> None:
        now = time.perf_counter_ns()
        while True:
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                self._parse(data, str(addr[0]), sock.proto, now)
            except (struct.error, IndexError, ValueError):
                continue  # malformed or foreign: not ours

    def _parse(self, data: bytes, src: str, sock_proto: int, now: int) -> None:
        if not self.v6:
            ihl = (data[0] & 0x0F) * 4
            proto = data[9]
            data = data[ihl:]
        else:
            proto = sock_proto
        if proto == socket.IPPROTO_TCP:
            self._parse_tcp(data, src, now)
            return
        icmp_type, code = data[0], data[1]
        echo_reply = 129 if self.v6 else 0
        if icmp_type == echo_reply:
            if self.options.proto != "icmp":
                return
            ident, seq = struct.unpack_from("!HH", data, 4)
            if ident == self.ident and src == self.address:
                self._answer(seq, src, now, destination=True)
            return
        exceeded = icmp_type == (3 if self.v6 else 11)
        unreach = icmp_type == (1 if self.v6 else 3)
        if not (exceeded or unreach):
            return
        inner = data[8:]
        if self.v6:
            inner_proto, inner_dst = inner[6], str(ipaddress.ip_address(inner[24:40]))
            transport = inner[40:]
        else:
            inner_proto = inner[9]
            inner_dst = str(ipaddress.ip_address(inner[16:20]))
            transport = inner[(inner[0] & 0x0F) * 4 :]
        if inner_dst != self.address:
            return
        probe_id = self._quoted_probe(inner_proto, transport)
        if probe_id is None:
            return
        destination = False
        flag = None
        if unreach:
            port_unreach = code == (4 if self.v6 else 3)
            proto_unreach = not self.v6 and code == 2
            if src == self.address or port_unreach or proto_unreach:
                destination = True
            else:
                flag = _unreach_flag(code, self.v6)
        self._answer(probe_id, src, now, destination=destination, unreachable=flag)

    def _quoted_probe(self, proto: int, transport: bytes) -> int | None:
        mine = self.options.proto
        if mine == "icmp" and proto in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6):
            icmp_type, _, _, ident, seq = struct.unpack_from("!BBHHH", transport)
            if icmp_type in (8, 128) and ident == self.ident:
                return int(seq)
        elif mine == "udp" and proto == socket.IPPROTO_UDP:
            sport, dport, _, csum = struct.unpack_from("!HHHH", transport)
            if sport == self.sport and dport == self.dport:
                return int(csum)
        elif mine == "tcp" and proto == socket.IPPROTO_TCP:
            sport, dport, seq = struct.unpack_from("!HHI", transport)
            if sport == self.sport and dport == self.dport:
                return int(seq & 0xFFFF)
        return None

    def _parse_tcp(self, data: bytes, src: str, now: int) -> None:
        if self.options.proto != "tcp" or src != self.address:
            return
        sport, dport, _, ack, _, flags = struct.unpack_from("!HHIIBB", data)
        if sport != self.dport or dport != self.sport:
            return
        syn_ack = flags & 0x12 == 0x12
        rst = flags & 0x04
        if syn_ack or rst:
            self._answer((ack - 1) & 0xFFFF, src, now, destination=True)

    def _answer(
        self,
        probe_id: int,
        src: str,
        now: int,
        destination: bool = False,
        unreachable: str | None = None,
    ) -> None:
        probe = self._pending.get(probe_id)
        if probe is None or probe_id in self._answered:
            return
        self._answered.add(probe_id)
        rtt = (now - probe.sent_ns) / 1e6
        self._replies.append(ProbeReply(probe.ttl, src, rtt, destination, unreachable))
        terminal = destination or unreachable
        if terminal and (self._dest_ttl is None or probe.ttl < self._dest_ttl):
            self._dest_ttl = probe.ttl
        self._event.set()

    # one round

    def _complete(self, upto: int) -> bool:
        """Every probe that matters has its answer: those up to the destination once it
        answered, else every probe sent (up to `upto`)."""
        limit = self._dest_ttl if self._dest_ttl is not None else upto
        return all(pid in self._answered for pid, p in self._pending.items() if p.ttl <= limit)

    async def _send_ttls(self, first: int, last: int, sent: dict[int, int]) -> int:
        """Probe TTLs first..last, stopping early once the destination answered; returns the
        highest TTL probed."""
        probed = first - 1
        for ttl in range(first, last + 1):
            if self._dest_ttl is not None and ttl > self._dest_ttl:
                break
            for _ in range(self.options.probes):
                self._send_probe(ttl)
            sent[ttl] = self.options.probes
            probed = ttl
            await asyncio.sleep(self.options.send_gap)
        return probed

    async def _collect(self, upto: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.timeout
        while not self._complete(upto):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                return

    async def run_round(self) -> RoundResult:
        """Send `probes` probes to every TTL (up to the destination, once known) and collect the
        answers until the timeout after the last probe, or earlier once every hop up to the
        destination has answered. When the destination is no longer where earlier rounds found
        it (the path grew), the round goes on probing further TTLs."""
        if self._send is None:
            self.open()
        opts = self.options
        loop = asyncio.get_running_loop()
        self._pending.clear()
        self._answered.clear()
        self._replies = []
        self._dest_ttl = None
        self._event = asyncio.Event()
        started = time.time()
        sent: dict[int, int] = {}
        limit = min(opts.max_ttl, self.known_dest_ttl or opts.max_ttl)
        for sock in self._recv:
            _drain(sock)  # what queued up between rounds answers nothing of this one
            loop.add_reader(sock.fileno(), self._on_readable, sock)
        try:
            probed = await self._send_ttls(1, limit, sent)
            await self._collect(probed)
            if self._dest_ttl is None and probed < opts.max_ttl:
                probed = await self._send_ttls(probed + 1, opts.max_ttl, sent)
                await self._collect(probed)
        finally:
            for sock in self._recv:
                try:
                    loop.remove_reader(sock.fileno())
                except (ValueError, OSError):
                    pass
        if self._dest_ttl is not None:
            self.known_dest_ttl = self._dest_ttl
            probed = min(probed, self._dest_ttl)
        else:
            # The destination went quiet: probe the full range again next round.
            self.known_dest_ttl = None
        replies = [r for r in self._replies if r.ttl <= probed]
        return RoundResult(replies, {t: n for t, n in sent.items() if t <= probed}, probed, started)


def _drain(sock: socket.socket) -> None:
    for _ in range(10_000):
        try:
            sock.recv(65535)
        except OSError:  # BlockingIOError: empty
            return


def _unreach_flag(code: int, v6: bool) -> str:
    if v6:
        return {0: "!N", 1: "!X", 3: "!H", 5: "!X", 6: "!X"}.get(code, f"!<{code}>")
    return {
        0: "!N",
        1: "!H",
        2: "!P",
        4: "!F",
        5: "!S",
        6: "!N",
        7: "!H",
        9: "!X",
        10: "!X",
        13: "!X",
    }.get(code, f"!<{code}>")


def can_trace() -> str | None:
    """None when raw sockets are allowed here, else the one-line reason."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except PermissionError:
        return str(TracePermissionError())
    except OSError as exc:
        return f"tracing unavailable: {os.strerror(exc.errno or 0)}"
    return None
