"""Blocklist formats and the range lookup."""

from __future__ import annotations

import socket

from packettracer.model.reputation import ReputationDB, bogon, parse_lines

SPAMHAUS = """; Spamhaus DROP List 2024/01/01 - (c) 2024 The Spamhaus Project
; Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT
1.10.16.0/20 ; SBL256894
2.57.122.0/24 ; SBL636050
"""
FIREHOL = """#
# firehol_level1
#
# Maintainer      : FireHOL
0.0.0.0/8
5.188.10.0/23
31.184.196.4
2a0a:1234::/32
not-an-address
"""
TOR = """ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E
Published 2024-01-01 10:00:00
LastStatus 2024-01-01 11:00:00
ExitAddress 185.220.101.1 2024-01-01 11:02:42
ExitNode 0011C2B7B1E3A3D4E3F7C0B2A6C9C1B4E8A9F7A2
ExitAddress 185.220.101.7 2024-01-01 11:03:00
"""
ET = """# Emerging Threats compromised IPs
103.10.1.1
103.10.1.2
103.10.1.3  # note after
10.0.0.5-10.0.0.9
"""


def test_spamhaus_drop_with_notes() -> None:
    bl = parse_lines("drop", SPAMHAUS.splitlines())
    assert bl.entries == 2 and bl.skipped == 0
    db = ReputationDB()
    db.set_list(bl)
    m = db.lookup("1.10.20.1")
    assert (
        m is not None and m.list == "drop" and m.network == "1.10.16.0/20" and m.note == "SBL256894"
    )
    assert db.lookup("1.10.32.0") is None
    assert db.lookup("1.10.15.255") is None


def test_firehol_netset_v4_v6_and_skips() -> None:
    bl = parse_lines("firehol_level1", FIREHOL.splitlines())
    assert bl.entries == 4 and bl.skipped == 1
    db = ReputationDB()
    db.set_list(bl)
    assert db.lookup("5.188.11.200").network == "5.188.10.0/23"  # type: ignore[union-attr]
    assert db.lookup("31.184.196.4").network == "31.184.196.4"  # type: ignore[union-attr]
    assert db.lookup("31.184.196.5") is None
    assert db.lookup("2a0a:1234:ffff::1") is not None
    assert db.lookup("2a0b::1") is None
    assert db.lookup_packed(socket.inet_aton("0.1.2.3")) is not None


def test_tor_exit_list() -> None:
    bl = parse_lines("tor-exits", TOR.splitlines())
    assert bl.entries == 2 and bl.skipped == 0
    db = ReputationDB()
    db.set_list(bl)
    m = db.lookup("185.220.101.7")
    assert m is not None and m.note == "tor exit"
    assert db.lookup("185.220.101.2") is None


def test_plain_list_ranges_and_merging() -> None:
    bl = parse_lines("et", ET.splitlines())
    # three adjacent addresses merge into one range, plus the explicit range
    assert bl.entries == 4 and bl.ranges == 2
    db = ReputationDB()
    db.set_list(bl)
    assert db.lookup("103.10.1.2").network == "103.10.1.1-103.10.1.3"  # type: ignore[union-attr]
    assert db.lookup("10.0.0.7") is not None and db.lookup("10.0.0.10") is None


def test_first_list_wins_and_removal() -> None:
    db = ReputationDB()
    db.set_list(parse_lines("a", ["9.9.9.0/24"]))
    db.set_list(parse_lines("b", ["9.9.9.9"]))
    assert db.lookup("9.9.9.9").list == "a"  # type: ignore[union-attr]
    db.remove("a")
    assert db.lookup("9.9.9.9").list == "b"  # type: ignore[union-attr]
    assert len(db) == 1


def test_bogons() -> None:
    def b(text: str) -> str | None:
        m = bogon(socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text))
        return m.network if m else None

    assert b("192.0.2.55") == "192.0.2.0/24"
    assert b("240.1.1.1") == "240.0.0.0/4"
    assert b("2001:db8::1") == "2001:db8::/32"
    assert b("8.8.8.8") is None
    assert b("192.168.1.1") is None  # private space is normal on a LAN
    assert b("255.255.255.255") is None
