"""The topology builder and renderer: hundreds of hosts fold into '+N others' and the picture keeps
its exact size; edges are weighted by bytes; alerting hosts are styled."""

from __future__ import annotations

from typing import Any

from packettracer.widgets.graph import build_topology, render_topology, stroke


class F:
    """The few Flow attributes the graph reads."""

    def __init__(self, src: str, dst: str, nbytes: int, **ext: Any) -> None:
        self.src, self.dst = src, dst
        self.bytes_fwd, self.bytes_rev = nbytes, 0
        self.ext = ext

    def get(self, key: str, default: Any = None) -> Any:
        return self.ext.get(key, default)


def many_flows() -> list[F]:
    flows = []
    for i in range(300):
        local = f"192.168.1.{i % 20 + 1}"
        flows.append(F(local, f"203.0.{i // 250}.{i % 250 + 1}", 1000 * (300 - i)))
    return flows


def test_hundreds_of_hosts_fold_and_fit_80x24() -> None:
    topo = build_topology(many_flows(), max_locals=6, max_remotes=30)
    assert topo.total_locals == 20 and topo.total_remotes == 300
    assert len(topo.locals) == 6 and topo.locals[-1].label == "+15 local"
    assert len(topo.remotes) == 30 and topo.remotes[-1].label == "+271 others"
    assert topo.remotes[-1].aggregate and topo.remotes[-1].address is None
    assert topo.remotes[0].address == "203.0.0.1"
    text, placed = render_topology(topo, 80, 24)
    lines = text.plain.split("\n")
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    assert "+271 others" in text.plain and "[+15 local]" in text.plain
    assert lines[0].startswith(" 20 local, 300 remote")
    assert {p.side for p in placed} == {"L", "M", "R"}


def test_wide_layout_and_strokes() -> None:
    flows = [
        F("10.0.0.1", "198.18.0.1", 200_000_000),
        F("10.0.0.1", "198.18.0.2", 5_000_000),
        F("10.0.0.2", "198.18.0.3", 10_000),
    ]
    topo = build_topology(flows)
    text, placed = render_topology(topo, 160, 50)
    assert len(text.plain.split("\n")) == 50
    assert "═" in text.plain and "━" in text.plain and "─" in text.plain
    assert stroke(999_999) == "─" and stroke(1_000_000) == "━" and stroke(100_000_000) == "═"


def test_alerting_hosts_are_highlighted_and_focus_reversed() -> None:
    flows = [F("10.0.0.1", "198.18.0.1", 1000), F("10.0.0.1", "198.18.0.2", 500)]
    topo = build_topology(flows, alerting={"198.18.0.2": "critical"})
    bad = next(n for n in topo.remotes if n.hosts == ["198.18.0.2"])
    assert bad.severity == "critical"
    text, _ = render_topology(topo, 80, 24, focus=bad.key)
    spans = [(text.plain[s.start : s.end], str(s.style)) for s in text.spans]
    assert any("!198.18.0.2" in t and "red" in st and "reverse" in st for t, st in spans)


def test_group_by_organisation() -> None:
    flows = [
        F("10.0.0.1", "198.18.0.1", 1000, as_org="Example AS"),
        F("10.0.0.1", "198.18.0.2", 500, as_org="Example AS"),
        F("10.0.0.1", "198.18.9.9", 10),
    ]
    topo = build_topology(flows, by_org=True)
    labels = [n.label for n in topo.remotes]
    assert labels == ["Example AS", "198.18.9.9"]
    assert topo.remotes[0].hosts == ["198.18.0.1", "198.18.0.2"]
    assert topo.remotes[0].address is None  # an AS: Enter has no single host to filter on
