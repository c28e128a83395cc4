"""The p0f v3 matcher: the packaged database parses, our raw signatures of real SYNs and SYN+ACKs
are the ones p0f 3.09b printed for the same packets, and matching follows p0f's rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from packettracer.capture.decoder import Decoder
from packettracer.capture.packet import ACK, SYN, TCP
from packettracer.capture.pcapfile import CaptureReader
from packettracer.model.dpi import p0f

DATA = Path(__file__).resolve().parents[2] / "data"


def syn_packets(name: str) -> list:
    decoder = Decoder()
    out = []
    with CaptureReader(str(DATA / name)) as reader:
        for linktype, ts, data, wirelen in reader:
            pkt = decoder.decode(linktype, data, ts, wirelen)
            if pkt is not None and pkt.proto == TCP and pkt.tcp_flags & SYN:
                out.append(pkt)
    return out


def test_database_has_every_tcp_signature() -> None:
    db = p0f.database()
    assert db.count == 192
    labels = {s.label for sigs in db.request.values() for s in sigs}
    assert {"Linux 3.11 and newer", "Windows 7 or 8", "Mac OS X"} <= labels


def test_bad_signature_line_is_one_clear_error() -> None:
    with pytest.raises(p0f.P0fFormatError, match="line 3"):
        p0f.P0fDatabase("[tcp:request]\nlabel = s:unix:X:1\nsig = 4:64:0:*:mss*4,7:mss,zz:df:0\n")


@pytest.mark.parametrize("capture", ["443-safari.pcap", "tcpdump_ssh.pcap"])
def test_raw_signatures_match_p0f_output(capture: str) -> None:
    log = (DATA / capture.replace(".pcap", ".p0f.log")).read_text()
    expected = re.findall(r"mod=(syn|syn\+ack)\|.*?raw_sig=([^|\n]+)", log)
    assert expected
    ours = []
    syn_mss = 0
    for pkt in syn_packets(capture):
        obs = p0f.observe(pkt)
        assert obs is not None
        synack = bool(pkt.tcp_flags & ACK)
        ours.append(("syn+ack" if synack else "syn", obs.raw_sig(syn_mss if synack else 0)))
        if not synack:
            syn_mss = obs.mss
    assert ours[: len(expected)] == expected


def test_match_labels_like_p0f() -> None:
    # 443-safari: p0f says "Mac OS X" (generic fuzzy) for the client SYN.
    syn = next(p for p in syn_packets("443-safari.pcap") if not p.tcp_flags & ACK)
    obs = p0f.observe(syn)
    assert obs is not None
    match = p0f.database().match(obs, syn_ack=False)
    assert match is not None and match.label == "Mac OS X" and match.fuzzy


def test_window_multiples_and_ttl_distance() -> None:
    db = p0f.P0fDatabase(
        "[tcp:request]\nlabel = s:unix:Linux:test\n"
        "sig = *:64:0:*:mss*10,7:mss,sok,ts,nop,ws:df,id+:0\n"
    )
    base = dict(ip_ver=4, ip_opt_len=0, wscale=7, layout=(2, 4, 8, 1, 3), eol_pad=0,
                quirks=p0f.Q_DF | p0f.Q_NZ_ID, pay_class=0, ts1=1, tot_hdr=60)  # fmt: skip
    good = p0f.Observation(ttl=57, mss=1460, win=14600, **base)
    match = db.match(good, syn_ack=False)
    assert match is not None and not match.fuzzy and match.distance == 7
    assert db.match(p0f.Observation(ttl=57, mss=1460, win=14601, **base), False) is None
    far = db.match(p0f.Observation(ttl=20, mss=1460, win=14600, **base), False)
    assert far is not None and far.fuzzy  # more than 35 hops: only a fuzzy match
