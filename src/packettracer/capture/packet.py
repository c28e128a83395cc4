"""The decoded form of one packet, as the decoder hands it to the pipeline."""

from __future__ import annotations

from typing import Final

# IP protocol numbers the flow table and the report know by name. Final: compiled modules (the
# DPI) use them as constants, not a lookup each time.
TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMP6: Final = 58
# Pseudo protocol number for ARP (not an IP protocol; outside 0-255 so it cannot clash).
ARP: Final = 0x10806

PROTO_NAMES: dict[int, str] = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMP6: "icmp6"}

# Names for the protocols that land in the "other" bucket, shown in the dashboard.
OTHER_PROTO_NAMES: dict[int, str] = {
    ARP: "arp",
    2: "igmp",
    4: "ipip",
    41: "ipv6-in-ip",
    47: "gre",
    50: "esp",
    51: "ah",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
}

# TCP flag bits.
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20


class Packet:
    """One decoded packet. Addresses are packed bytes (4 or 16 long) to keep decoding cheap;
    the flow table formats them once per flow, not once per packet."""

    # Class-level defaults instead of __slots__ and an __init__ that sets 23 fields: the decoder
    # creates one Packet per frame and sets only what the frame has, so a bare instance is
    # cheaper (measured: ~0.7 us per packet less). Every default is immutable.
    ts: float = 0.0
    wirelen: int = 0
    proto: int = 0
    src: bytes = b""
    dst: bytes = b""
    sport: int = 0
    dport: int = 0
    ip_version: int = 0
    ttl: int = 0
    ip_id: int = 0
    df: bool = False
    tcp_flags: int = 0
    tcp_seq: int = 0
    tcp_ack: int = 0
    tcp_window: int = 0
    tcp_options: bytes = b""
    icmp_type: int = -1
    icmp_code: int = -1
    payload: bytes = b""
    vlan: int = 0
    fragment: int = 0
    """0: not a fragment; 1: first fragment; 2: a later fragment (no transport header)"""
    ip_header_len: int = 0
    raw: bytes = b""
    """The frame as captured, kept only when a consumer asked for it (pcap export)."""
    linktype: int = 0
    """The frame's link type, set with `raw`."""

    @property
    def proto_name(self) -> str:
        name = PROTO_NAMES.get(self.proto)
        if name is not None:
            return name
        return OTHER_PROTO_NAMES.get(self.proto, f"ip-{self.proto}")
