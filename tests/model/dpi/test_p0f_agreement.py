"""Agreement of our OS verdicts with p0f 3.09b (`p0f -r FILE`) on the corpus captures.

For every host p0f labels (a SYN or SYN+ACK matched with an OS other than ???), our host entry in
the report's summary must carry one of p0f's labels for that host. The test prints every
disagreement and fails below `FLOOR` (the level reached).
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from tests.model.dpi.ndpi_compare import P0F, PCAPS, our_report

FLOOR = 1.0

_LINE = re.compile(r"mod=(syn|syn\+ack)\|cli=([^|]+)\|srv=([^|]+)\|subj=(cli|srv)\|os=([^|]+)\|")


def p0f_labels(name: str) -> dict[str, set[str]]:
    labels: dict[str, set[str]] = defaultdict(set)
    text = (P0F / f"{name}.log").read_text("utf-8", "replace")
    for m in _LINE.finditer(text):
        _mod, cli, srv, subj, os_label = m.groups()
        if os_label == "???":
            continue
        endpoint = cli if subj == "cli" else srv
        labels[endpoint.rpartition("/")[0]].add(os_label)
    return labels


def compare() -> tuple[int, int, list[str]]:
    total = agreed = 0
    misses: list[str] = []
    for log in sorted(P0F.glob("*.log")):
        name = log.name[: -len(".log")]
        if not (PCAPS / name).exists():
            continue
        expected = p0f_labels(name)
        if not expected:
            continue
        ours = {h["ip"]: h for h in our_report(name)["summary"].get("hosts", [])}
        for host, labels in sorted(expected.items()):
            total += 1
            mine = ours.get(host, {}).get("os")
            if mine in labels:
                agreed += 1
            else:
                misses.append(f"{name}: {host} p0f {sorted(labels)} ours {mine!r}")
    return total, agreed, misses


@pytest.mark.skipif(not P0F.is_dir(), reason="../shared/corpus (p0f expected logs) is absent")
def test_agreement_with_p0f() -> None:
    total, agreed, misses = compare()
    share = agreed / total if total else 0.0
    print(f"\np0f agreement: {agreed}/{total} hosts = {share:.1%}")
    for line in misses:
        print("  " + line)
    assert total > 50
    assert share >= FLOOR, f"agreement {share:.1%} fell below {FLOOR:.1%}"
