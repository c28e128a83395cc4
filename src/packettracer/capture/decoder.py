"""A decoder written for speed: struct offsets on bytes, no scapy dissection on the hot path.

It understands the link layers pcap files and AF_PACKET sockets give us (Ethernet with 802.1Q/QinQ,
PPPoE and MPLS, Linux cooked SLL/SLL2, raw IP, BSD null/loop), ARP, IPv4 with fragments, IPv6 with
extension headers, TCP, UDP, ICMP and ICMPv6. A truncated or malformed packet never raises: it is
counted in `malformed` and the caller moves on.
"""

from __future__ import annotations

from collections import OrderedDict
from struct import error as StructError
from struct import unpack_from

from packettracer.capture.packet import ARP, ICMP, ICMP6, TCP, UDP, Packet

# Link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_OPENBSD = 14
LINKTYPE_RAW_BSD = 12
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
        LINKTYPE_RAW_OPENBSD,
        LINKTYPE_RAW_BSD,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
ETH_PPPOE_SESSION = 0x8864
ETH_MPLS = (0x8847, 0x8848)

# IPv6 extension headers that sit between the fixed header and the transport header.
IPV6_EXT_HEADERS = frozenset({0, 43, 60, 135, 139, 140})
IPV6_FRAGMENT = 44
IPV6_AH = 51
IPV6_NO_NEXT = 59

# ICMP query types that carry an identifier (echo, timestamp, information), and which of them
# are replies (ICMP 0/14/16, ICMPv6 129).
ICMP_QUERIES = frozenset({0, 8, 13, 14, 15, 16})
ICMP6_QUERIES = frozenset({128, 129})
ICMP_REPLIES = frozenset({0, 14, 16, 129})

# How many bytes of transport payload a packet carries to the analyzers (DPI reads the start).
PAYLOAD_KEEP = 2048
# Fragment id -> ports of the first fragment, so later fragments join the right flow.
FRAGMENT_MEMORY = 4096


class Decoder:
    """Decodes frames of any supported link type into `Packet` objects, counting what it cannot."""

    __slots__ = ("malformed", "non_ip", "keep_raw", "_fragments")

    def __init__(self, keep_raw: bool = False) -> None:
        self.malformed = 0
        # Frames of a known link type that carry neither IP nor ARP (LLDP, STP, ...).
        self.non_ip = 0
        self.keep_raw = keep_raw
        self._fragments: OrderedDict[tuple[bytes, bytes, int, int], tuple[int, int]] = OrderedDict()

    def decode(self, linktype: int, data: bytes, ts: float, wirelen: int) -> Packet | None:
        """Decode one frame. Returns None for frames that are malformed or not IP/ARP."""
        pkt: Packet | None
        try:
            # Untagged Ethernet + IPv4 is nearly all traffic: skip the dispatch for it.
            if linktype == LINKTYPE_ETHERNET and data[12] == 8 and data[13] == 0:
                pkt = self._ipv4(data, 14, 0)
            else:
                pkt = self._decode(linktype, data)
        except (StructError, IndexError, ValueError):
            self.malformed += 1
            return None
        if pkt is None:
            return None
        pkt.ts = ts
        pkt.wirelen = wirelen
        if self.keep_raw:
            pkt.raw = bytes(data)
            pkt.linktype = linktype
        return pkt

    def _decode(self, linktype: int, data: bytes) -> Packet | None:
        if linktype == LINKTYPE_ETHERNET:
            return self._ethernet(data, 0)
        if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_BSD, LINKTYPE_RAW_OPENBSD):
            return self._ip_by_version(data, 0)
        if linktype == LINKTYPE_LINUX_SLL:
            (ethertype,) = unpack_from("!H", data, 14)
            return self._ethertype(data, 16, ethertype, 0)
        if linktype == LINKTYPE_LINUX_SLL2:
            (ethertype,) = unpack_from("!H", data, 0)
            return self._ethertype(data, 20, ethertype, 0)
        if linktype == LINKTYPE_IPV4:
            return self._ipv4(data, 0, 0)
        if linktype == LINKTYPE_IPV6:
            return self._ipv6(data, 0, 0)
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            # The family is in host byte order for NULL and network order for LOOP; the value
            # tells us which (IPv4 is 2 everywhere, IPv6 is 10, 24, 28 or 30 depending on the OS).
            if len(data) < 4:
                raise ValueError("short null header")
            family = data[0] or data[3]
            if family == 2:
                return self._ipv4(data, 4, 0)
            if family in (10, 24, 28, 30):
                return self._ipv6(data, 4, 0)
            self.non_ip += 1
            return None
        raise ValueError(f"unsupported link type {linktype}")

    def _ethernet(self, data: bytes, off: int) -> Packet | None:
        (ethertype,) = unpack_from("!H", data, off + 12)
        return self._ethertype(data, off + 14, ethertype, 0)

    def _ethertype(self, data: bytes, off: int, ethertype: int, vlan: int) -> Packet | None:
        while ethertype in ETH_VLAN_TAGS:
            tci, ethertype = unpack_from("!HH", data, off)
            if not vlan:
                vlan = tci & 0x0FFF
            off += 4
        if ethertype == ETH_IPV4:
            return self._ipv4(data, off, vlan)
        if ethertype == ETH_IPV6:
            return self._ipv6(data, off, vlan)
        if ethertype == ETH_ARP:
            return self._arp(data, off, vlan)
        if ethertype == ETH_PPPOE_SESSION:
            (ppp_proto,) = unpack_from("!H", data, off + 6)
            if ppp_proto == 0x0021:
                return self._ipv4(data, off + 8, vlan)
            if ppp_proto == 0x0057:
                return self._ipv6(data, off + 8, vlan)
        elif ethertype in ETH_MPLS:
            while True:
                (label,) = unpack_from("!I", data, off)
                off += 4
                if label & 0x100:  # bottom of stack
                    break
            return self._ip_by_version(data, off, vlan)
        elif ethertype < 0x0600:
            # 802.3 length field (LLC, STP, ...): not IP.
            pass
        self.non_ip += 1
        return None

    def _ip_by_version(self, data: bytes, off: int, vlan: int = 0) -> Packet | None:
        version = data[off] >> 4
        if version == 4:
            return self._ipv4(data, off, vlan)
        if version == 6:
            return self._ipv6(data, off, vlan)
        raise ValueError(f"IP version {version}")

    def _arp(self, data: bytes, off: int, vlan: int) -> Packet:
        htype, ptype, hlen, plen, _op = unpack_from("!HHBBH", data, off)
        if ptype != ETH_IPV4 or plen != 4:
            raise ValueError("ARP for a protocol other than IPv4")
        base = off + 8
        spa = base + hlen
        tpa = spa + 4 + hlen
        if len(data) < tpa + 4:
            raise ValueError("short ARP")
        pkt = Packet()
        pkt.proto = ARP
        pkt.src = data[spa : spa + 4]
        pkt.dst = data[tpa : tpa + 4]
        pkt.vlan = vlan
        return pkt

    def _ipv4(self, data: bytes, off: int, vlan: int) -> Packet:
        vihl, _tos, total, ip_id, frag, ttl, proto, _csum, src, dst = unpack_from(
            "!BBHHHBBH4s4s", data, off
        )
        if vihl >> 4 != 4:
            raise ValueError("not IPv4")
        ihl = (vihl & 0x0F) * 4
        # A total length of 0 is what segmentation offload (TSO/BIG TCP) leaves in captures of
        # outgoing super-packets: take the captured length, as for IPv6 jumbograms.
        if ihl < 20 or (total < ihl and total != 0):
            raise ValueError("bad IPv4 header length")
        if len(data) < off + ihl:
            raise ValueError("short IPv4 header")
        pkt = Packet()
        pkt.ip_version = 4
        pkt.proto = proto
        pkt.src = src
        pkt.dst = dst
        pkt.ttl = ttl
        pkt.ip_id = ip_id
        pkt.df = bool(frag & 0x4000)
        if vlan:
            pkt.vlan = vlan
        pkt.ip_header_len = ihl
        # Ethernet pads short frames; the IP total length says where the datagram ends.
        end = off + total
        if end > len(data) or total == 0:
            end = len(data)
        if frag & 0x3FFF == 0:
            # Not a fragment: the common case, TCP and UDP inline.
            start = off + ihl
            if proto == TCP:
                sport, dport, seq, ack, offflags, window = unpack_from("!HHIIHH", data, start)
                doff = (offflags >> 12) * 4
                if doff < 20:
                    raise ValueError("bad TCP data offset")
                pkt.sport = sport
                pkt.dport = dport
                pkt.tcp_seq = seq
                pkt.tcp_ack = ack
                pkt.tcp_flags = offflags & 0x1FF
                pkt.tcp_window = window
                if doff > 20:
                    pkt.tcp_options = data[start + 20 : start + doff]
                start += doff
                if start < end:
                    pkt.payload = data[start : min(end, start + PAYLOAD_KEEP)]
            elif proto == UDP:
                sport, dport = unpack_from("!HH", data, start)
                pkt.sport = sport
                pkt.dport = dport
                start += 8
                if start < end:
                    pkt.payload = data[start : min(end, start + PAYLOAD_KEEP)]
            else:
                self._transport(pkt, data, start, end)
            return pkt
        if frag & 0x1FFF:
            pkt.fragment = 2
            self._join_fragment(pkt, (src, dst, ip_id, proto))
            return pkt
        # First fragment (more fragments follow): remember its ports for the others.
        pkt.fragment = 1
        self._transport(pkt, data, off + ihl, end)
        self._remember_fragment(pkt, (src, dst, ip_id, proto))
        return pkt

    def _ipv6(self, data: bytes, off: int, vlan: int) -> Packet:
        vtc, plen, nxt, hlim = unpack_from("!IHBB", data, off)
        if vtc >> 28 != 6:
            raise ValueError("not IPv6")
        pkt = Packet()
        pkt.ip_version = 6
        pkt.src = data[off + 8 : off + 24]
        pkt.dst = data[off + 24 : off + 40]
        if len(pkt.dst) != 16:
            raise ValueError("short IPv6 header")
        pkt.ttl = hlim
        pkt.vlan = vlan
        end = off + 40 + plen
        if plen == 0 or end > len(data):
            # plen 0 is a jumbogram or a capture of TSO output; take what we have.
            end = len(data)
        pos = off + 40
        frag_key: tuple[bytes, bytes, int, int] | None = None
        more = False
        while True:
            if nxt in IPV6_EXT_HEADERS:
                nxt_hdr, hlen = data[pos], data[pos + 1]
                pos += (hlen + 1) * 8
                nxt = nxt_hdr
            elif nxt == IPV6_AH:
                nxt_hdr, hlen = data[pos], data[pos + 1]
                pos += (hlen + 2) * 4
                nxt = nxt_hdr
            elif nxt == IPV6_FRAGMENT:
                nxt_hdr = data[pos]
                (offm, ident) = unpack_from("!HI", data, pos + 2)
                pos += 8
                nxt = nxt_hdr
                more = bool(offm & 1)
                frag_key = (pkt.src, pkt.dst, ident, nxt)
                if offm >> 3:
                    pkt.proto = nxt
                    pkt.fragment = 2
                    pkt.ip_header_len = pos - off
                    self._join_fragment(pkt, frag_key)
                    return pkt
            else:
                break
            if pos > end:
                raise ValueError("IPv6 extension headers run past the packet")
        pkt.proto = nxt
        pkt.ip_header_len = pos - off
        if nxt == IPV6_NO_NEXT:
            return pkt
        if more and frag_key is not None:
            pkt.fragment = 1
        self._transport(pkt, data, pos, end)
        if more and frag_key is not None:
            self._remember_fragment(pkt, frag_key)
        return pkt

    def _transport(self, pkt: Packet, data: bytes, off: int, end: int) -> None:
        proto = pkt.proto
        if proto == TCP:
            sport, dport, seq, ack, offflags, window = unpack_from("!HHIIHH", data, off)
            doff = (offflags >> 12) * 4
            if doff < 20:
                raise ValueError("bad TCP data offset")
            pkt.sport = sport
            pkt.dport = dport
            pkt.tcp_seq = seq
            pkt.tcp_ack = ack
            pkt.tcp_flags = offflags & 0x1FF
            pkt.tcp_window = window
            if doff > 20:
                pkt.tcp_options = data[off + 20 : off + doff]
            start = off + doff
            if start < end:
                pkt.payload = data[start : min(end, start + PAYLOAD_KEEP)]
        elif proto == UDP:
            sport, dport = unpack_from("!HH", data, off)
            pkt.sport = sport
            pkt.dport = dport
            start = off + 8
            if start < end:
                pkt.payload = data[start : min(end, start + PAYLOAD_KEEP)]
        elif proto in (ICMP, ICMP6):
            itype, code = data[off], data[off + 1]
            pkt.icmp_type = itype
            pkt.icmp_code = code
            if proto == ICMP:
                is_echo = itype in ICMP_QUERIES
            else:
                is_echo = itype in ICMP6_QUERIES
            if is_echo:
                # Request and reply share the identifier: key the flow on it, as if the
                # requester's "port" were the identifier and the responder's the request type,
                # so that both directions land in one flow.
                (ident,) = unpack_from("!H", data, off + 4)
                service = 8 if proto == ICMP else 128
                if itype in ICMP_REPLIES:
                    pkt.sport = service
                    pkt.dport = ident
                else:
                    pkt.sport = ident
                    pkt.dport = service
            else:
                pkt.sport = itype
                pkt.dport = code
            start = off + 4
            if start < end:
                pkt.payload = data[start : min(end, start + PAYLOAD_KEEP)]

    def _remember_fragment(self, pkt: Packet, key: tuple[bytes, bytes, int, int]) -> None:
        frags = self._fragments
        frags[key] = (pkt.sport, pkt.dport)
        if len(frags) > FRAGMENT_MEMORY:
            frags.popitem(last=False)

    def _join_fragment(self, pkt: Packet, key: tuple[bytes, bytes, int, int]) -> None:
        ports = self._fragments.get(key)
        if ports is not None:
            pkt.sport, pkt.dport = ports
