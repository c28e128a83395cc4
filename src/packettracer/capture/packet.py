"""The decoded form of one packet, as the decoder hands it to the pipeline."""

from __future__ import annotations

# IP protocol numbers the flow table and the report know by name.
TCP = 6
UDP = 17
ICMP = 1
ICMP6 = 58
# Pseudo protocol number for ARP (not an IP protocol; outside 0-255 so it cannot clash).
ARP = 0x10806

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
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20


class Packet:
    """One decoded packet. Addresses are packed bytes (4 or 16 long) to keep decoding cheap;
    the flow table formats them once per flow, not once per packet."""

    __slots__ = (
        "ts",
        "wirelen",
        "proto",
        "src",
        "dst",
        "sport",
        "dport",
        "ip_version",
        "ttl",
        "ip_id",
        "df",
        "tcp_flags",
        "tcp_seq",
        "tcp_ack",
        "tcp_window",
        "tcp_options",
        "icmp_type",
        "icmp_code",
        "payload",
        "vlan",
        "fragment",
        "ip_header_len",
        "raw",
    )

    def __init__(self) -> None:
        self.ts = 0.0
        self.wirelen = 0
        self.proto = 0
        self.src = b""
        self.dst = b""
        self.sport = 0
        self.dport = 0
        self.ip_version = 0
        self.ttl = 0
        self.ip_id = 0
        self.df = False
        self.tcp_flags = 0
        self.tcp_seq = 0
        self.tcp_ack = 0
        self.tcp_window = 0
        self.tcp_options = b""
        self.icmp_type = -1
        self.icmp_code = -1
        self.payload = b""
        self.vlan = 0
        # 0: not a fragment; 1: first fragment; 2: a later fragment (no transport header)
        self.fragment = 0
        self.ip_header_len = 0
        # The frame as captured, kept only when a consumer asked for it (pcap export).
        self.raw = b""

    @property
    def proto_name(self) -> str:
        name = PROTO_NAMES.get(self.proto)
        if name is not None:
            return name
        return OTHER_PROTO_NAMES.get(self.proto, f"ip-{self.proto}")
