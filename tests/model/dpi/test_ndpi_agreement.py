"""Agreement of our application labels with nDPI's on the corpus captures.

For every TCP/UDP flow nDPI identifies (its upstream expected results, the better ground truth),
our flow with the same 5-tuple must carry the same application or protocol, after mapping nDPI's
names to ours with `NDPI_NAMES`. The test prints every class of disagreement and fails when the
agreement drops below `FLOOR` (the level reached; raise it when detection improves).
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.model.dpi.ndpi_compare import NDPI, PCAPS, flow_index, ndpi_flows, our_report

FLOOR = 0.925

# nDPI name -> our names that count as the same (our app or our protocol). Unlisted: same name.
NDPI_NAMES: dict[str, set[str]] = {
    "NetFlix": {"Netflix"},
    "GoogleServices": {"Google"},
    "GoogleCall": {"GoogleMeet"},
    "GoogleClassroom": {"Google"},
    "MS_OneDrive": {"OneDrive"},
    "Skype_TeamsCall": {"Teams"},
    "Skype_Teams": {"Teams"},
    "WhatsAppCall": {"WhatsApp"},
    "FacebookVoip": {"Facebook"},
    "FacebookMessenger": {"Messenger"},
    "DoH_DoT": {"DoH", "DoT"},
    "HTTP_Proxy": {"HTTP_Proxy", "HTTP"},
    "MDNS": {"mDNS"},
    "DHCPV6": {"DHCPv6"},
    "ICMPV6": {"ICMPv6"},
    "SMBv23": {"SMB"},
    "SMBv1": {"SMB"},
    "FTP_CONTROL": {"FTP"},
    "MpegDash": {"HTTP"},
    "SteamDatagramRelay": {"Steam"},
    "Microsoft365": {"Microsoft365", "Microsoft"},
    "Outlook": {"Outlook", "Microsoft"},
    "Apple": {"Apple"},
    "AppleSiri": {"AppleSiri", "Apple"},
    "Starcraft": {"WorldOfWarcraft"},
}
# nDPI masters that carry a name; the application part is what must agree.
CARRIERS = {"TLS", "QUIC", "HTTP", "STUN", "DTLS", "RTP", "SIP"}
# nDPI masters whose application part comes from the query name, not the flow: ours says DNS.
NAME_PROTOCOLS = {"DNS", "MDNS", "LLMNR", "NetBIOS"}


def ours_for(label: str) -> set[str]:
    return NDPI_NAMES.get(label, {label})


def agrees(ndpi_label: str, flow: dict[str, object]) -> bool:
    mine = {str(flow.get("app")), str(flow.get("protocol"))}
    master, _, app = ndpi_label.partition(".")
    if not app:
        return bool(ours_for(master) & mine)
    if master in NAME_PROTOCOLS:
        return bool(ours_for(master) & mine)
    if master in CARRIERS:
        return bool(ours_for(app) & mine)
    # e.g. "NetBIOS.SMBv1": either part may be what we name
    return bool((ours_for(master) | ours_for(app)) & mine)


def compare() -> tuple[int, int, Counter[tuple[str, str]], int]:
    total = agreed = missing = 0
    classes: Counter[tuple[str, str]] = Counter()
    for out in sorted(NDPI.glob("*.out")):
        name = out.name[: -len(".out")]
        if not (PCAPS / name).exists():
            continue
        index = flow_index(our_report(name))
        for proto, (a, ap), (b, bp), label in ndpi_flows(name):
            if label == "Unknown":
                continue
            flow = index.get((proto, a, ap, b, bp))
            if flow is None:
                missing += 1
                continue
            total += 1
            if agrees(label, flow):
                agreed += 1
            else:
                ours = f"{flow.get('app')}/{flow.get('protocol')} ({flow.get('confidence')})"
                classes[(label, ours)] += 1
    return total, agreed, classes, missing


@pytest.mark.skipif(not NDPI.is_dir(), reason="../shared/corpus (nDPI expected results) is absent")
def test_agreement_with_ndpi() -> None:
    total, agreed, classes, missing = compare()
    share = agreed / total if total else 0.0
    print(
        f"\nnDPI agreement: {agreed}/{total} flows = {share:.1%} ({missing} nDPI flows not matched)"
    )
    for (label, ours), n in classes.most_common():
        print(f"  {n:4d}  nDPI {label:32s} ours {ours}")
    assert total > 300
    assert share >= FLOOR, f"agreement {share:.1%} fell below {FLOOR:.1%}"
