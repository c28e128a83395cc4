"""Passive TCP fingerprints in the p0f v3 format, matched the way p0f 3.09b matches them.

The database is a copy of p0f's `p0f.fp` (packettracer/data/p0f/, LGPL-2.1, see NOTICE.md there).
A SYN is matched against `[tcp:request]`, a SYN+ACK against `[tcp:response]`: same option
layout, EOL padding and IP option length; TTL at most 35 hops below the signature's initial TTL;
MSS, window scale and payload class unless wildcarded; window size as a constant, a modulus,
or a multiple of MSS/MTU; quirks equal, except that losing `df`/`id+` or gaining `id-`/`ecn`
still gives a fuzzy match. A non-generic exact match wins, then the first generic one, then the
first fuzzy one.

What our packets do not carry (IPv4 TOS/ECN bits, the IPv6 flow label, the urgent pointer) is
taken as absent; p0f would use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from packettracer.capture.packet import ACK, FIN, PSH, RST, SYN, URG, Packet

MAX_DIST = 35
MIN_TCP4 = 40
MIN_TCP6 = 60

WIN_NORMAL, WIN_ANY, WIN_MOD, WIN_MSS, WIN_MTU = range(5)

# quirk bits
Q_DF = 1 << 0
Q_NZ_ID = 1 << 1
Q_ZERO_ID = 1 << 2
Q_ECN = 1 << 3
Q_NZ_MBZ = 1 << 4
Q_FLOW = 1 << 5
Q_ZERO_SEQ = 1 << 6
Q_NZ_ACK = 1 << 7
Q_ZERO_ACK = 1 << 8
Q_NZ_URG = 1 << 9
Q_URG = 1 << 10
Q_PUSH = 1 << 11
Q_OPT_ZERO_TS1 = 1 << 12
Q_OPT_NZ_TS2 = 1 << 13
Q_OPT_EOL_NZ = 1 << 14
Q_OPT_EXWS = 1 << 15
Q_OPT_BAD = 1 << 16

QUIRK_NAMES: dict[str, int] = {
    "df": Q_DF,
    "id+": Q_NZ_ID,
    "id-": Q_ZERO_ID,
    "ecn": Q_ECN,
    "0+": Q_NZ_MBZ,
    "flow": Q_FLOW,
    "seq-": Q_ZERO_SEQ,
    "ack+": Q_NZ_ACK,
    "ack-": Q_ZERO_ACK,
    "uptr+": Q_NZ_URG,
    "urgf+": Q_URG,
    "pushf+": Q_PUSH,
    "ts1-": Q_OPT_ZERO_TS1,
    "ts2+": Q_OPT_NZ_TS2,
    "opt+": Q_OPT_EOL_NZ,
    "exws": Q_OPT_EXWS,
    "bad": Q_OPT_BAD,
}
OPT_EOL, OPT_NOP, OPT_MSS, OPT_WS, OPT_SOK, OPT_SACK, OPT_TS = 0, 1, 2, 3, 4, 5, 8
_OPT_NAMES = {"eol": OPT_EOL, "nop": OPT_NOP, "mss": OPT_MSS, "ws": OPT_WS, "sok": OPT_SOK,
              "sack": OPT_SACK, "ts": OPT_TS}  # fmt: skip
_OPT_SHOW = {v: k for k, v in _OPT_NAMES.items()}


class P0fFormatError(ValueError):
    """A line of p0f.fp that does not parse."""


@dataclass(frozen=True, slots=True)
class Signature:
    label: str
    """p0f's name for it: "Linux 3.11 and newer"."""
    os_class: str
    """win, unix, other, or ! for userland tools."""
    generic: bool
    ip_ver: int  # 4, 6, or -1 for any
    ttl: int
    bad_ttl: bool
    ip_opt_len: int
    mss: int  # -1: any
    win_type: int
    win: int
    wscale: int  # -1: any
    layout: tuple[int, ...]
    eol_pad: int
    quirks: int
    pay_class: int  # -1 any, 0 none, 1 some
    line: int


@dataclass(frozen=True, slots=True)
class Observation:
    """One SYN or SYN+ACK, reduced to what p0f compares."""

    ip_ver: int
    ttl: int
    ip_opt_len: int
    mss: int
    win: int
    wscale: int
    layout: tuple[int, ...]
    eol_pad: int
    quirks: int
    pay_class: int
    ts1: int
    tot_hdr: int

    def raw_sig(self, syn_mss: int = 0) -> str:
        """p0f's `raw_sig` notation (initial TTL guessed as p0f guesses it; the window as a
        multiple of MSS or MTU when it is one)."""
        dist = guess_dist(self.ttl)
        multi, use_mtu = _win_multi(self, syn_mss)
        win = f"{'mtu' if use_mtu else 'mss'}*{multi}" if multi > 0 else str(self.win)
        opts = ",".join(
            f"eol+{self.eol_pad}" if o == OPT_EOL else _OPT_SHOW.get(o, f"?{o}")
            for o in self.layout
        )
        quirks = ",".join(k for k, v in QUIRK_NAMES.items() if self.quirks & v)
        return (
            f"{self.ip_ver}:{self.ttl}+{dist}:{self.ip_opt_len}:{self.mss}:"
            f"{win},{self.wscale}:{opts}:{quirks}:{'+' if self.pay_class else '0'}"
        )


@dataclass(frozen=True, slots=True)
class Match:
    signature: Signature
    fuzzy: bool
    distance: int

    @property
    def label(self) -> str:
        return self.signature.label

    @property
    def generic(self) -> bool:
        return self.signature.generic


def guess_dist(ttl: int) -> int:
    for initial in (32, 64, 128):
        if ttl <= initial:
            return initial - ttl
    return 255 - ttl


def _parse_sig(text: str, label: str, os_class: str, generic: bool, line: int) -> Signature:
    parts = text.split(":")
    if len(parts) != 8:
        raise P0fFormatError(f"line {line}: expected 8 fields, got {len(parts)}")
    ver_s, ttl_s, olen_s, mss_s, win_s, layout_s, quirks_s, pclass_s = parts
    ip_ver = -1 if ver_s == "*" else int(ver_s)
    bad_ttl = ttl_s.endswith("-")
    if bad_ttl:
        ttl = int(ttl_s[:-1])
    elif "+" in ttl_s:
        base, add = ttl_s.split("+", 1)
        ttl = int(base) + int(add)
    else:
        ttl = int(ttl_s)
    mss = -1 if mss_s == "*" else int(mss_s)
    wsize, _, scale_s = win_s.partition(",")
    if wsize == "*":
        win_type, win = WIN_ANY, 0
    elif wsize.startswith("%"):
        win_type, win = WIN_MOD, int(wsize[1:])
    elif wsize.startswith("mss*"):
        win_type, win = WIN_MSS, int(wsize[4:])
    elif wsize.startswith("mtu*"):
        win_type, win = WIN_MTU, int(wsize[4:])
    else:
        win_type, win = WIN_NORMAL, int(wsize)
    wscale = -1 if scale_s == "*" else int(scale_s)
    layout: list[int] = []
    eol_pad = 0
    for opt in layout_s.split(",") if layout_s else []:
        if opt.startswith("eol+"):
            layout.append(OPT_EOL)
            eol_pad = int(opt[4:])
        elif opt.startswith("?"):
            layout.append(int(opt[1:]))
        elif opt in _OPT_NAMES:
            layout.append(_OPT_NAMES[opt])
        else:
            raise P0fFormatError(f"line {line}: unknown TCP option {opt!r}")
    quirks = 0
    for q in quirks_s.split(",") if quirks_s else []:
        if q not in QUIRK_NAMES:
            raise P0fFormatError(f"line {line}: unknown quirk {q!r}")
        quirks |= QUIRK_NAMES[q]
    pay_class = {"*": -1, "0": 0, "+": 1}.get(pclass_s)
    if pay_class is None:
        raise P0fFormatError(f"line {line}: bad payload class {pclass_s!r}")
    return Signature(
        label, os_class, generic, ip_ver, ttl, bad_ttl, int(olen_s), mss, win_type, win,
        wscale, tuple(layout), eol_pad, quirks, pay_class, line,
    )  # fmt: skip


class P0fDatabase:
    """The `[tcp:request]` and `[tcp:response]` signatures of a p0f.fp file."""

    def __init__(self, text: str) -> None:
        self.request: dict[tuple[int, ...], list[Signature]] = {}
        self.response: dict[tuple[int, ...], list[Signature]] = {}
        section: dict[tuple[int, ...], list[Signature]] | None = None
        label = ""
        os_class = ""
        generic = False
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith("["):
                name = line.strip("[]")
                section = {"tcp:request": self.request, "tcp:response": self.response}.get(name)
                continue
            if section is None:
                continue
            key, _, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if key == "label":
                kind, os_class, name, flavor = (value.split(":", 3) + ["", "", ""])[:4]
                generic = kind == "g"
                label = f"{name} {flavor}".strip() if flavor else name
            elif key == "sig":
                sig = _parse_sig(value, label, os_class, generic, lineno)
                section.setdefault(sig.layout, []).append(sig)
        self.count = sum(len(v) for v in self.request.values()) + sum(
            len(v) for v in self.response.values()
        )

    def match(self, obs: Observation, syn_ack: bool, syn_mss: int = 0) -> Match | None:
        candidates = (self.response if syn_ack else self.request).get(obs.layout, ())
        win_multi, use_mtu = _win_multi(obs, syn_mss)
        fmatch: Signature | None = None
        gmatch: Signature | None = None
        for ref in candidates:
            fuzzy = False
            ref_quirks = ref.quirks
            if ref.ip_ver == -1:
                ref_quirks &= ~Q_FLOW if obs.ip_ver == 4 else ~(Q_DF | Q_NZ_ID | Q_ZERO_ID)
            elif ref.ip_ver != obs.ip_ver:
                continue
            if ref_quirks != obs.quirks:
                deleted = (ref_quirks ^ obs.quirks) & ref_quirks
                added = (ref_quirks ^ obs.quirks) & obs.quirks
                if fmatch or deleted & ~(Q_DF | Q_NZ_ID) or added & ~(Q_ZERO_ID | Q_ECN):
                    continue
                fuzzy = True
            if ref.eol_pad != obs.eol_pad or ref.ip_opt_len != obs.ip_opt_len:
                continue
            if ref.bad_ttl:
                if ref.ttl < obs.ttl:
                    continue
            elif ref.ttl < obs.ttl or ref.ttl - obs.ttl > MAX_DIST:
                fuzzy = True
            if ref.mss != -1 and ref.mss != obs.mss:
                continue
            if ref.wscale != -1 and ref.wscale != obs.wscale:
                continue
            if ref.pay_class != -1 and ref.pay_class != obs.pay_class:
                continue
            wt = ref.win_type
            if wt == WIN_NORMAL:
                if ref.win != obs.win:
                    continue
            elif wt == WIN_MOD:
                if obs.win % ref.win:
                    continue
            elif wt == WIN_MSS:
                if use_mtu or ref.win != win_multi:
                    continue
            elif wt == WIN_MTU and (not use_mtu or ref.win != win_multi):
                continue
            if not fuzzy:
                if not ref.generic:
                    return Match(ref, False, ref.ttl - obs.ttl)
                if gmatch is None:
                    gmatch = ref
            elif fmatch is None:
                fmatch = ref
        if gmatch is not None:
            return Match(gmatch, False, gmatch.ttl - obs.ttl)
        if fmatch is None or fmatch.os_class == "!":
            return None
        if fmatch.ttl < obs.ttl or (not fmatch.bad_ttl and fmatch.ttl - obs.ttl > MAX_DIST):
            dist = guess_dist(obs.ttl)
        else:
            dist = fmatch.ttl - obs.ttl
        return Match(fmatch, True, dist)


def _win_multi(obs: Observation, syn_mss: int) -> tuple[int, bool]:
    """Is the window a multiple of the MSS or the MTU? (multiplier, uses MTU); -1 if neither."""
    win, mss = obs.win, obs.mss
    if not win or mss < 100:
        return -1, False
    divisors: list[tuple[int, bool]] = [(mss, False)]
    if obs.ts1:
        divisors.append((mss - 12, False))
    divisors += [(1500 - MIN_TCP4, False), (1500 - MIN_TCP4 - 12, False)]
    if obs.ip_ver == 6:
        divisors += [(1500 - MIN_TCP6, False), (1500 - MIN_TCP6 - 12, False)]
    divisors += [(mss + MIN_TCP4, True), (mss + obs.tot_hdr, True)]
    if obs.ip_ver == 6:
        divisors.append((mss + MIN_TCP6, True))
    divisors.append((1500, True))
    if syn_mss:
        divisors += [(syn_mss, False), (syn_mss - 12, False)]
    for div, use_mtu in divisors:
        if div and win % div == 0:
            return win // div, use_mtu
    return -1, False


def observe(pkt: Packet) -> Observation | None:
    """The p0f view of a SYN or SYN+ACK packet; None for other packets."""
    flags = pkt.tcp_flags
    if not flags & SYN or flags & (FIN | RST):
        return None
    quirks = 0
    if pkt.ip_version == 4:
        if pkt.df:
            quirks |= Q_DF
            if pkt.ip_id:
                quirks |= Q_NZ_ID
        elif pkt.ip_id == 0:
            quirks |= Q_ZERO_ID
        ip_opt_len = max(0, pkt.ip_header_len - 20)
    else:
        ip_opt_len = 0
    if flags & 0x1C0:  # ECE, CWR, NS
        quirks |= Q_ECN
    if pkt.tcp_seq == 0:
        quirks |= Q_ZERO_SEQ
    if flags & ACK:
        if pkt.tcp_ack == 0:
            quirks |= Q_ZERO_ACK
    elif pkt.tcp_ack:
        quirks |= Q_NZ_ACK
    if flags & URG:
        quirks |= Q_URG
    if flags & PSH:
        quirks |= Q_PUSH
    opts = pkt.tcp_options
    layout: list[int] = []
    mss = 0
    wscale = 0
    ts1 = 0
    eol_pad = 0
    pos = 0
    n = len(opts)
    while pos < n:
        kind = opts[pos]
        layout.append(kind)
        if kind == OPT_EOL:
            rest = opts[pos + 1 :]
            eol_pad = len(rest)
            if any(rest):
                quirks |= Q_OPT_EOL_NZ
            break
        if kind == OPT_NOP:
            pos += 1
            continue
        if pos + 1 >= n:
            quirks |= Q_OPT_BAD
            break
        olen = opts[pos + 1]
        if olen < 2 or pos + olen > n:
            quirks |= Q_OPT_BAD
            break
        body = opts[pos + 2 : pos + olen]
        if kind == OPT_MSS:
            if olen != 4:
                quirks |= Q_OPT_BAD
            else:
                mss = int.from_bytes(body, "big")
        elif kind == OPT_WS:
            if olen != 3:
                quirks |= Q_OPT_BAD
            else:
                wscale = body[0]
                if wscale > 14:
                    quirks |= Q_OPT_EXWS
        elif kind == OPT_TS:
            if olen != 10:
                quirks |= Q_OPT_BAD
            else:
                ts1 = int.from_bytes(body[0:4], "big")
                if ts1 == 0:
                    quirks |= Q_OPT_ZERO_TS1
                if int.from_bytes(body[4:8], "big") and not flags & ACK:
                    quirks |= Q_OPT_NZ_TS2
        elif kind == OPT_SOK and olen != 2:
            quirks |= Q_OPT_BAD
        pos += olen
    return Observation(
        ip_ver=pkt.ip_version,
        ttl=pkt.ttl,
        ip_opt_len=ip_opt_len,
        mss=mss,
        win=pkt.tcp_window,
        wscale=wscale,
        layout=tuple(layout),
        eol_pad=eol_pad,
        quirks=quirks,
        pay_class=1 if pkt.payload else 0,
        ts1=ts1,
        tot_hdr=pkt.ip_header_len + 20 + n,
    )


@lru_cache(maxsize=1)
def database() -> P0fDatabase:
    text = resources.files("packettracer").joinpath("data", "p0f", "p0f.fp").read_text("utf-8")
    return P0fDatabase(text)
