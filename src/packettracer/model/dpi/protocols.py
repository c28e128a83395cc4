"""Payload detectors for the protocols other than TLS, QUIC and HTTP.

Each detector looks at one payload (plus the ports and its direction) and returns a `Detection`
or None. Plain prefix rules live in `PREFIX_RULES` (a table: adding a banner is adding a row);
structural checks are small functions listed in `UDP_DETECTORS` / `TCP_DETECTORS`. Every check
is gated on ports or the first bytes before it parses anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from struct import unpack_from
from typing import Any

from packettracer.model import dnsparse


@dataclass
class Detection:
    protocol: str
    details: dict[str, Any] = field(default_factory=dict)
    app: str | None = None
    """An application the payload names by itself (e.g. STUN SOFTWARE, a DHCP vendor)."""


# (transport, byte prefix, protocol, who sends it: "c" client, "s" server, "*" either)
PREFIX_RULES: list[tuple[str, bytes, str, str]] = [
    ("tcp", b"SSH-", "SSH", "*"),
    ("tcp", b"\x13BitTorrent protocol", "BitTorrent", "*"),
    ("udp", b"\x13BitTorrent protocol", "BitTorrent", "*"),
    ("tcp", b"RFB 003.", "VNC", "*"),
    ("tcp", b"* OK", "IMAP", "s"),
    ("tcp", b"+OK", "POP3", "s"),
    ("tcp", b"RTSP/1.0 ", "RTSP", "s"),
    ("tcp", b"OPTIONS rtsp://", "RTSP", "c"),
    ("tcp", b"DESCRIBE rtsp://", "RTSP", "c"),
    ("tcp", b"SETUP rtsp://", "RTSP", "c"),
    ("tcp", b"PLAY rtsp://", "RTSP", "c"),
    ("tcp", b"GET_PARAMETER rtsp://", "RTSP", "c"),
    ("tcp", b"ANNOUNCE rtsp://", "RTSP", "c"),
    ("udp", b"SIP/2.0 ", "SIP", "*"),
    ("tcp", b"SIP/2.0 ", "SIP", "*"),
    ("udp", b"M-SEARCH * HTTP/1.1", "SSDP", "*"),
    ("udp", b"NOTIFY * HTTP/1.1", "SSDP", "*"),
    ("tcp", b"<?xml version='1.0'?><stream:stream", "XMPP", "c"),
    ("tcp", b"<stream:stream", "XMPP", "c"),
    ("udp", b"\xff\xff\xff\xffTSource Engine Query", "Source_Engine", "c"),
    ("udp", b"\xff\xff\xff\xffI", "Source_Engine", "s"),
    ("udp", b"\xff\xff\xff\xffU", "Source_Engine", "c"),
    ("udp", b"\xff\xff\xff\xffV", "Source_Engine", "c"),
    ("udp", b"\xff\xff\xff\xffA", "Source_Engine", "s"),
    ("udp", b"\xff\xff\xff\xffD", "Source_Engine", "s"),
    ("udp", b"\xff\xff\xff\xffE", "Source_Engine", "s"),
    ("tcp", b"\x04\xd2\x16\x2f", "PostgreSQL", "c"),
    ("tcp", b'{"id":', "Stratum", "c"),
    ("tcp", b"WA\x01", "WhatsApp", "c"),
    ("tcp", b"WA\x02", "WhatsApp", "c"),
    ("tcp", b"ED\x00\x01", "WhatsApp", "c"),
    ("udp", b"SpotUdp0", "Spotify", "*"),
    ("udp", b'{"version": [', "Dropbox", "*"),
]
_SIP_METHODS = (
    b"INVITE sip:",
    b"REGISTER sip:",
    b"OPTIONS sip:",
    b"ACK sip:",
    b"BYE sip:",
    b"CANCEL sip:",
    b"SUBSCRIBE sip:",
    b"NOTIFY sip:",
    b"MESSAGE sip:",
    b"INFO sip:",
    b"PRACK sip:",
    b"UPDATE sip:",
    b"REFER sip:",
    b"PUBLISH sip:",
)
for _m in _SIP_METHODS:
    PREFIX_RULES.append(("udp", _m, "SIP", "c"))
    PREFIX_RULES.append(("tcp", _m, "SIP", "c"))

_PREFIX_BY_FIRST: dict[tuple[str, int], list[tuple[bytes, str, str]]] = {}
for _t, _p, _name, _who in PREFIX_RULES:
    _PREFIX_BY_FIRST.setdefault((_t, _p[0]), []).append((_p, _name, _who))

# SSH banner "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3" -> software "OpenSSH_8.9p1"
_SSH_RE = re.compile(rb"^SSH-(\d\.\d+)-([^\s\r\n]+)")
_STRATUM_RE = re.compile(rb'"method"\s*:\s*"mining\.(subscribe|authorize|submit)')


def prefix_match(transport: str, data: bytes, forward: bool) -> Detection | None:
    rules = _PREFIX_BY_FIRST.get((transport, data[0]))
    if rules is None:
        return None
    for prefix, name, who in rules:
        if data.startswith(prefix) and (who == "*" or (who == "c") == forward):
            det = Detection(name)
            if name == "SSH":
                m = _SSH_RE.match(data)
                if m:
                    det.details["ssh_version"] = m.group(1).decode()
                    key = "ssh_client" if forward else "ssh_server"
                    det.details[key] = m.group(2).decode("ascii", "replace")[:80]
            elif name == "Stratum" and not _STRATUM_RE.search(data):
                continue
            return det
    return None


# ---------------------------------------------------------------- DNS family


def _looks_like_dns(data: bytes) -> bool:
    """A header with the counts of a real DNS message (one question or a few), so that other
    protocols on these ports are not taken for it."""
    if len(data) < 17:
        return False
    _ident, flags, qd, an, ns, ar = unpack_from("!HHHHHH", data, 0)
    return 0 < qd <= 8 and (flags >> 11) & 0xF <= 6 and an <= 200 and ns <= 200 and ar <= 200


def _dns_detection(name: str, data: bytes) -> Detection | None:
    if not _looks_like_dns(data):
        return None
    # The resolution feature parses the same payload next: dnsparse hands it the same message.
    msg = dnsparse.parse(data)
    det = Detection(name)
    if msg is None:
        det.details["malformed"] = "DNS message does not parse"
        return det
    det.details["dns_query"] = msg.qname
    det.details["_dns"] = msg
    return det


def _dns_udp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    ports = (sport, dport)
    if 53 in ports:
        name = "DNS"
    elif 5353 in ports:
        name = "mDNS"
    elif 5355 in ports:
        name = "LLMNR"
    elif 137 in ports:
        name = "NetBIOS"
    else:
        return None
    return _dns_detection(name, data)


# ---------------------------------------------------------------- UDP structure


_DHCP_COOKIE = b"\x63\x82\x53\x63"


def _dhcp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if not ({sport, dport} & {67, 68}) or len(data) < 240 or data[236:240] != _DHCP_COOKIE:
        return None
    det = Detection("DHCP")
    details = det.details
    details["dhcp_client_mac"] = data[28:34].hex(":")
    pos = 240
    while pos < len(data):
        code = data[pos]
        if code == 0:
            pos += 1
            continue
        if code == 255 or pos + 1 >= len(data):
            break
        length = data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
        if code == 53 and value:
            details["dhcp_type"] = value[0]
        elif code == 55:
            details["dhcp_params"] = ",".join(str(b) for b in value)
        elif code == 60:
            details["dhcp_vendor"] = value.decode("ascii", "replace")[:64]
        elif code == 12:
            details["dhcp_hostname"] = value.decode("ascii", "replace")[:64]
        elif code == 50 and len(value) == 4:
            details["dhcp_requested_ip"] = ".".join(str(b) for b in value)
    return det


def _dhcpv6(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if {sport, dport} & {546, 547} and data and 1 <= data[0] <= 13:
        return Detection("DHCPv6")
    return None


def _ntp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if 123 not in (sport, dport) or len(data) < 48:
        return None
    version = (data[0] >> 3) & 7
    mode = data[0] & 7
    if 1 <= version <= 4 and 1 <= mode <= 5:
        return Detection("NTP", {"ntp_version": version})
    return None


def _snmp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if not ({sport, dport} & {161, 162}) or len(data) < 10 or data[0] != 0x30:
        return None
    # SEQUENCE, then INTEGER version 0/1/3 right after the length
    pos = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
    if data[pos : pos + 2] == b"\x02\x01" and data[pos + 2] in (0, 1, 3):
        return Detection("SNMP", {"snmp_version": {0: 1, 1: 2, 3: 3}[data[pos + 2]]})
    return None


_STUN_TYPES = frozenset(
    {0x0001, 0x0101, 0x0111, 0x0003, 0x0103, 0x0113, 0x0004, 0x0104, 0x0006, 0x0016,
     0x0017, 0x0008, 0x0108, 0x0009, 0x0109, 0x000A, 0x010A, 0x0002, 0x0102, 0x0800,
     0x0801, 0x0802, 0x0803, 0x0804, 0x0805, 0x0806, 0x0807}
)  # fmt: skip
# STUN attributes only one application's stack sends.
_STUN_ATTRIBUTE_APPS: dict[int, str] = {
    0x4000: "WhatsApp",
    0x4001: "WhatsApp",
    0x4002: "WhatsApp",
    0x8008: "Teams",  # MS-VERSION
    0x8054: "Teams",  # MS candidate identifier
    0x8055: "Teams",  # MS-SERVICE-QUALITY
    0x8070: "Teams",  # MS-IMPLEMENTATION-VERSION
}
_STUN_SOFTWARE_APPS = (
    (b"WhatsApp", "WhatsApp"),
    (b"Zoom", "Zoom"),
    (b"Telegram", "Telegram"),
    (b"Microsoft", "Teams"),
    (b"Skype", "Teams"),
)


def parse_stun(data: bytes) -> Detection | None:
    if len(data) < 20 or data[0] & 0xC0:
        return None
    mtype, mlen = unpack_from("!HH", data, 0)
    cookie = data[4:8] == b"\x21\x12\xa4\x42"
    # Several STUN messages or a TURN ChannelData tail: accept only with the cookie.
    if (mlen + 20 != len(data) or mlen % 4) and not (cookie and mlen + 20 < len(data)):
        return None
    if mtype not in _STUN_TYPES and not (cookie and mtype < 0x0200):
        return None
    det = Detection("STUN")
    pos = 20
    end = min(len(data), 20 + mlen)
    while pos + 4 <= end:
        atype, alen = unpack_from("!HH", data, pos)
        value = data[pos + 4 : pos + 4 + alen]
        if atype == 0x8022:  # SOFTWARE
            det.details["stun_software"] = value.decode("utf-8", "replace")[:64]
            for needle, app in _STUN_SOFTWARE_APPS:
                if needle in value:
                    det.app = app
        elif atype in _STUN_ATTRIBUTE_APPS and det.app is None:
            det.app = _STUN_ATTRIBUTE_APPS[atype]
        pos += 4 + alen + (-alen % 4)
    return det


def _stun(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if data[0] > 1:
        return None
    return parse_stun(data)


def parse_rtp(data: bytes) -> tuple[str, int, int] | None:
    """("RTP"|"RTCP", ssrc, sequence) of a plausible RTP/RTCP packet."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    pt = data[1] & 0x7F
    if 72 <= pt <= 76 or data[1] in (200, 201, 202, 203, 204, 205, 206, 207):
        (ssrc,) = unpack_from("!I", data, 4)
        return ("RTCP", ssrc, 0)
    if pt <= 34 or 96 <= pt <= 127:
        seq, _ts, ssrc = unpack_from("!HII", data, 2)
        return ("RTP", ssrc, seq)
    return None


def _bittorrent_dht(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if data[0] != 0x64 or len(data) < 12:  # 'd'
        return None
    if (
        data.startswith((b"d1:ad2:id20:", b"d1:rd2:id20:", b"d2:ip", b"d1:eli"))
        or (b"1:y1:q" in data or b"1:y1:r" in data)
        and b"2:id20:" in data
    ):
        return Detection("BitTorrent", {"bittorrent": "dht"})
    return None


def _utp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    # uTP (BEP 29): type/version byte, extension 0..2, 20-byte header; a SYN has seq_nr set
    # and ack_nr 0. Only the SYN (type 4) and the state packet answering it are strong enough.
    if len(data) < 20 or data[0] not in (0x41, 0x21) or data[1] > 2:
        return None
    if data[0] == 0x41 and len(data) != 20 + (0 if data[1] == 0 else len(data) - 20):
        return None
    (wnd,) = unpack_from("!I", data, 12)
    if data[0] == 0x41 and data[1] == 0 and len(data) == 20 and wnd > 0:
        return Detection("BitTorrent", {"bittorrent": "utp"})
    if data[0] == 0x21 and len(data) == 20 and wnd > 0:
        return Detection("BitTorrent", {"bittorrent": "utp"})
    return None


def _wireguard(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if data[1:4] != b"\x00\x00\x00":
        return None
    kind, n = data[0], len(data)
    if (kind == 1 and n == 148) or (kind == 2 and n == 92) or (kind == 3 and n == 64):
        return Detection("WireGuard")
    if kind == 4 and n >= 32 and n % 16 == 0 and 51820 in (sport, dport):
        return Detection("WireGuard")
    return None


def _openvpn_udp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    # P_CONTROL_HARD_RESET_CLIENT_V2/V3 (opcode 7 / 10, key id 0) + 8-byte session id,
    # packet-id array length 0, packet id 0.
    if data[0] in (0x38, 0x50) and len(data) >= 14 and data[9] == 0 and data[10:14] == b"\0" * 4:
        return Detection("OpenVPN")
    return None


def _ike(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if not ({sport, dport} & {500, 4500}):
        return None
    if 4500 in (sport, dport):
        if data[:4] != b"\0\0\0\0":
            return Detection("IPsec", {"ipsec": "esp-in-udp"}) if len(data) > 8 else None
        data = data[4:]
    if len(data) < 28:
        return None
    version, exchange = data[17], data[18]
    (length,) = unpack_from("!I", data, 24)
    known = exchange in (2, 4, 5, 6, 32) or 34 <= exchange <= 37
    if version in (0x10, 0x20) and known and length >= 28:
        return Detection("IPsec", {"ike_version": version >> 4})
    return None


_RAKNET_MAGIC = bytes.fromhex("00ffff00fefefefefdfdfdfd12345678")


def _raknet(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if data[0] in (0x01, 0x02, 0x05, 0x06, 0x07, 0x08, 0x1C) and _RAKNET_MAGIC in data[:40]:
        return Detection("RakNet")
    return None


def _netbios_dgm(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if sport == 138 and dport == 138 and len(data) >= 14 and 0x10 <= data[0] <= 0x16:
        return Detection("NetBIOS")
    return None


def _discord(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    # Discord voice IP discovery: type 1 (request) or 2 (response), length 70, SSRC, address.
    if len(data) == 74 and data[0:4] in (b"\x00\x01\x00\x46", b"\x00\x02\x00\x46"):
        return Detection("Discord")
    return None


def _gquic(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    # Google QUIC (Q0xx) with a cleartext CHLO: public flags with version and 8-byte CID.
    if not (data[0] & 0x09 == 0x09 and len(data) > 40 and data[9] == 0x51):
        return None
    pos = data.find(b"CHLO", 10, 64)
    det = Detection("QUIC", {"quic_version": data[9:13].decode("ascii", "replace")})
    if pos < 0:
        return det
    (count,) = unpack_from("<H", data, pos + 4)
    base = pos + 8 + 8 * count
    start = 0
    for i in range(min(count, 64)):
        tag = data[pos + 8 + 8 * i : pos + 12 + 8 * i]
        (end,) = unpack_from("<I", data, pos + 12 + 8 * i)
        # A malformed tag list may end a value before it starts: an empty value, as Python
        # slices give (spelled out: compiled slices do not clamp an end before the start).
        stop = base + max(start, end)
        if tag == b"SNI\x00":
            det.details["sni"] = data[base + start : stop].decode("ascii", "replace")
        elif tag == b"UAID":
            det.details["user_agent"] = data[base + start : stop].decode("ascii", "replace")
        start = end
    return det


def _syslog(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if dport == 514 and data[0] == 0x3C and re.match(rb"<\d{1,3}>", data):
        return Detection("Syslog")
    return None


dns_udp = _dns_udp
UdpDetector = Callable[[bytes, int, int, bool], Detection | None]
UDP_DETECTORS: list[UdpDetector] = [
    _dns_udp,
    _gquic,
    _discord,
    _dhcp,
    _dhcpv6,
    _ntp,
    _snmp,
    _stun,
    _bittorrent_dht,
    _wireguard,
    _openvpn_udp,
    _ike,
    _raknet,
    _netbios_dgm,
    _syslog,
    _utp,
]


def detect_udp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    det = prefix_match("udp", data, forward)
    if det is not None:
        return det
    for detector in UDP_DETECTORS:
        det = detector(data, sport, dport, forward)
        if det is not None:
            return det
    return None


# ---------------------------------------------------------------- TCP structure

_SMTP_CLIENT = (b"EHLO ", b"HELO ", b"ehlo ", b"helo ")
_FTP_CLIENT = (b"USER ", b"AUTH TLS", b"AUTH SSL", b"FEAT", b"SYST", b"user ")
_POP_CLIENT = (b"CAPA", b"USER ", b"STLS", b"APOP ", b"AUTH ")


def _banner_220(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if forward or not data.startswith((b"220 ", b"220-")):
        return None
    head = data[:200].upper()
    if b"FTP" in head or sport == 21:
        return Detection("FTP")
    if b"SMTP" in head or b"MAIL" in head or sport in (25, 587, 465, 2525):
        return Detection("SMTP")
    return None


def _client_commands(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if not forward:
        return None
    if data.startswith(_SMTP_CLIENT):
        return Detection("SMTP")
    if data.startswith(_POP_CLIENT) and dport in (110, 995):
        return Detection("POP3")
    if data.startswith(_FTP_CLIENT) and dport in (21, 990):
        return Detection("FTP")
    # IMAP: "<tag> CAPABILITY|LOGIN|STARTTLS|AUTHENTICATE"
    m = re.match(rb"^[A-Za-z0-9.]{1,10} (CAPABILITY|LOGIN|STARTTLS|AUTHENTICATE|ID)\b", data)
    if m:
        return Detection("IMAP")
    return None


def _smb(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if data[0] == 0 and len(data) >= 8 and data[5:8] == b"SMB" and data[4] in (0xFF, 0xFE, 0xFD):
        return Detection("SMB", {"smb_version": 1 if data[4] == 0xFF else 2})
    if data[0] == 0x81 and 139 in (sport, dport):
        return Detection("NetBIOS")
    return None


def _tpkt(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    # RDP: TPKT header, X.224 Connection Request/Confirm (0xE0/0xD0).
    if data[0] != 3 or data[1] != 0 or len(data) < 11:
        return None
    (length,) = unpack_from("!H", data, 2)
    if length != len(data) or data[5] not in (0xE0, 0xD0):
        return None
    det = Detection("RDP")
    cookie = data.find(b"Cookie: mstshash=")
    if cookie >= 0:
        det.details["rdp_cookie"] = data[cookie + 17 : data.find(b"\r\n", cookie)].decode(
            "ascii", "replace"
        )[:64]
    return det


def _mqtt(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if data[0] != 0x10 or len(data) < 12:
        return None
    pos = 1
    for _ in range(4):
        if data[pos] & 0x80:
            pos += 1
        else:
            break
    pos += 1
    if data[pos : pos + 6] == b"\x00\x04MQTT" or data[pos : pos + 8] == b"\x00\x06MQIsdp":
        return Detection("MQTT")
    return None


def _openvpn_tcp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if len(data) >= 16 and data[2] in (0x38, 0x50):
        (length,) = unpack_from("!H", data, 0)
        if length == len(data) - 2 and data[11] == 0:
            return Detection("OpenVPN")
    return None


def _mysql(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    # Server greeting: 3-byte length, sequence 0, protocol 10, "5.7.x\0"
    if forward or len(data) < 10 or data[3] != 0 or data[4] != 0x0A:
        return None
    length = int.from_bytes(data[0:3], "little")
    if length + 4 == len(data) and 0x30 <= data[5] <= 0x39:
        return Detection("MySQL")
    return None


def _postgres(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    startup = forward and len(data) >= 8 and data[4:8] == b"\x00\x03\x00\x00"
    if startup and int.from_bytes(data[0:4], "big") == len(data):
        return Detection("PostgreSQL")
    return None


def _tds(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    header = data[0] in (0x12, 0x10, 0x01) and len(data) >= 8 and data[1] in (0x00, 0x01)
    if header and int.from_bytes(data[2:4], "big") == len(data) and dport == 1433:
        return Detection("MsSQL-TDS")
    return None


def _redis(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if forward and re.match(rb"^\*\d{1,3}\r\n\$\d{1,3}\r\n[A-Za-z]+\r\n", data):
        return Detection("Redis")
    return None


def _dns_tcp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if 53 not in (sport, dport) or len(data) < 19:
        return None
    (length,) = unpack_from("!H", data, 0)
    if length + 2 < len(data):
        return None
    det = _dns_detection("DNS", data[2:])
    if det is None or "malformed" in det.details:
        return None
    return det


def _edonkey(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if data[0] in (0xE3, 0xC5, 0xD4) and len(data) >= 6:
        length = int.from_bytes(data[1:5], "little")
        if length + 5 == len(data) and data[5] in (0x01, 0x4C, 0x38, 0x40):
            return Detection("eDonkey")
    return None


def _telnet(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if data[0] == 0xFF and len(data) >= 3 and 0xFB <= data[1] <= 0xFE and data[2] < 50:
        return Detection("Telnet")
    return None


def _git(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    if forward and re.match(rb"^[0-9a-f]{4}git-(upload|receive)-pack ", data):
        return Detection("Git")
    return None


def _irc(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    command = forward and data.startswith((b"NICK ", b"USER ", b"CAP LS"))
    if command and b"\r\n" in data[:200] and (6660 <= dport < 6700 or b"NICK " in data):
        return Detection("IRC")
    return None


TcpDetector = Callable[[bytes, int, int, bool], Detection | None]
TCP_DETECTORS: list[TcpDetector] = [
    _banner_220,
    _client_commands,
    _smb,
    _tpkt,
    _mqtt,
    _openvpn_tcp,
    _mysql,
    _postgres,
    _tds,
    _redis,
    _dns_tcp,
    _edonkey,
    _telnet,
    _git,
    _irc,
]


def detect_tcp(data: bytes, sport: int, dport: int, forward: bool) -> Detection | None:
    det = prefix_match("tcp", data, forward)
    if det is not None:
        return det
    for detector in TCP_DETECTORS:
        det = detector(data, sport, dport, forward)
        if det is not None:
            return det
    return None
