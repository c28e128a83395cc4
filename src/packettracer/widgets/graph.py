"""The connection topology drawn with box-drawing characters: local hosts in a middle column,
remote hosts (or their AS/organisation) on both sides, joined by edges whose stroke says how many
bytes went over them (─ < 1 MB, ━ < 100 MB, ═ beyond). Beyond what fits, the smallest remotes are
folded into one "+N others" node, so hundreds of hosts stay readable at 80x24.

`build_topology` (flows -> nodes and edges) and `render_topology` (-> rich Text of exactly
width x height) are pure; `GraphView` is the widget around them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rich.text import Text
from textual.widget import Widget

from packettracer.widgets.flow_table import human_bytes, sanitize

SEVERITY_STYLE = {
    "critical": "bold reverse red",
    "high": "bold red",
    "medium": "bold yellow",
    "low": "yellow",
    "info": "cyan",
}
OTHERS = "others"


@lru_cache(maxsize=65536)
def is_local(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_private or ip.is_link_local or ip.is_loopback


@dataclass
class Node:
    key: str
    label: str
    local: bool
    bytes: int = 0
    hosts: list[str] = field(default_factory=list)
    """Addresses behind the node (one for a host; several for an AS or 'others')."""
    peers: dict[str, int] = field(default_factory=dict)
    """Other side's node key -> bytes."""
    severity: str | None = None
    aggregate: bool = False

    @property
    def address(self) -> str | None:
        """The one address Enter filters on (None for an aggregate)."""
        return self.hosts[0] if len(self.hosts) == 1 and not self.aggregate else None


@dataclass
class Topology:
    locals: list[Node]
    remotes: list[Node]
    total_locals: int
    total_remotes: int


def _endpoint_roles(flow: Any) -> tuple[str, str]:
    """(local, remote) addresses of a flow; the initiator is local when both or neither are."""
    src, dst = flow.src, flow.dst
    if is_local(src) or not is_local(dst):
        return src, dst
    return dst, src


def build_topology(
    flows: Iterable[Any],
    alerting: dict[str, str] | None = None,
    max_locals: int = 8,
    max_remotes: int = 20,
    by_org: bool = False,
) -> Topology:
    """Aggregate flows into local and remote nodes; keep the top `max_*` by bytes."""
    alerting = alerting or {}
    local_nodes: dict[str, Node] = {}
    remote_nodes: dict[str, Node] = {}
    for flow in flows:
        local, remote = _endpoint_roles(flow)
        nbytes = flow.bytes_fwd + flow.bytes_rev
        ln = local_nodes.get(local)
        if ln is None:
            ln = local_nodes[local] = Node(local, local, True, hosts=[local])
        # Remote keys are prefixed: a LAN host may be a local node and another's remote peer.
        rkey, rlabel = f"r:{remote}", remote
        if by_org:
            org = flow.get("as_org") or (f"AS{flow.get('asn')}" if flow.get("asn") else None)
            if org:
                rkey, rlabel = f"as:{org}", str(org)
        rn = remote_nodes.get(rkey)
        if rn is None:
            rn = remote_nodes[rkey] = Node(rkey, rlabel, False, aggregate=by_org and rkey[0] == "a")
        if remote not in rn.hosts and len(rn.hosts) < 64:
            rn.hosts.append(remote)
        name = flow.get("name")
        if name and rn.label == remote:
            rn.label = f"{remote} {name}"
        ln.bytes += nbytes
        rn.bytes += nbytes
        ln.peers[rkey] = ln.peers.get(rkey, 0) + nbytes
        rn.peers[local] = rn.peers.get(local, 0) + nbytes
    rank = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
    for node in (*local_nodes.values(), *remote_nodes.values()):
        worst = None
        for h in node.hosts:
            sev = alerting.get(h)
            if sev is not None and (worst is None or rank[sev] > rank[worst]):
                worst = sev
        node.severity = worst
    order = sorted(local_nodes.values(), key=lambda n: (-n.bytes, n.key))
    locals_ = order[:max_locals]
    if len(order) > max_locals:
        rest = order[max_locals - 1 :]
        locals_ = order[: max_locals - 1] + [_fold(rest, True)]
    shown_locals = {n.key for n in locals_ if not n.aggregate}
    folded_local = next((n.key for n in locals_ if n.aggregate), None)
    rorder = sorted(remote_nodes.values(), key=lambda n: (-n.bytes, n.key))
    remotes = rorder[:max_remotes]
    if len(rorder) > max_remotes:
        remotes = rorder[: max_remotes - 1] + [_fold(rorder[max_remotes - 1 :], False)]
    # Peers of remotes that point at folded locals point at the local "others" node instead.
    for node in remotes:
        peers: dict[str, int] = {}
        for key, b in node.peers.items():
            target = key if key in shown_locals else folded_local
            if target is not None:
                peers[target] = peers.get(target, 0) + b
        node.peers = peers
    return Topology(locals_, remotes, len(local_nodes), len(remote_nodes))


def _fold(nodes: list[Node], local: bool) -> Node:
    folded = Node(
        f"{OTHERS}:{'local' if local else 'remote'}",
        f"+{len(nodes)} {'local' if local else 'others'}",
        local,
        aggregate=True,
    )
    for n in nodes:
        folded.bytes += n.bytes
        for k, b in n.peers.items():
            folded.peers[k] = folded.peers.get(k, 0) + b
        if len(folded.hosts) < 64:
            folded.hosts.extend(n.hosts[: 64 - len(folded.hosts)])
    return folded


# -- drawing --------------------------------------------------------------------------------

UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
LIGHT = {
    LEFT | RIGHT: "─",
    UP | DOWN: "│",
    DOWN | RIGHT: "┌",
    DOWN | LEFT: "┐",
    UP | RIGHT: "└",
    UP | LEFT: "┘",
    UP | DOWN | RIGHT: "├",
    UP | DOWN | LEFT: "┤",
    DOWN | LEFT | RIGHT: "┬",
    UP | LEFT | RIGHT: "┴",
    UP | DOWN | LEFT | RIGHT: "┼",
    LEFT: "─",
    RIGHT: "─",
    UP: "│",
    DOWN: "│",
}


def stroke(nbytes: int) -> str:
    if nbytes >= 100_000_000:
        return "═"
    if nbytes >= 1_000_000:
        return "━"
    return "─"


@dataclass
class Placed:
    node: Node
    row: int
    x0: int
    x1: int
    side: str  # "L" | "M" | "R"


def _rows(count: int, top: int, bottom: int) -> list[int]:
    """`count` rows spread evenly over [top, bottom]."""
    span = bottom - top + 1
    if count <= 0:
        return []
    if count >= span:
        return list(range(top, bottom + 1))  # the caller folds what does not fit
    step = span / count
    return [top + int(step * i + step / 2) for i in range(count)]


def layout(topo: Topology, width: int, height: int) -> list[Placed]:
    """Where each node goes: locals in the middle, remotes alternately left and right."""
    mid_w = max(12, min(24, width // 4))
    mid_x0 = (width - mid_w) // 2
    side_w = mid_x0 - 4
    top, bottom = 1, height - 2
    placed: list[Placed] = []
    for node, row in zip(topo.locals, _rows(len(topo.locals), top, bottom), strict=False):
        # The box is as wide as its label, centred in the middle column.
        n = min(mid_w, len(_local_body(node, mid_w)))
        x0 = mid_x0 + (mid_w - n) // 2
        placed.append(Placed(node, row, x0, x0 + n - 1, "M"))
    left = topo.remotes[0::2]
    right = topo.remotes[1::2]
    # Remote rows avoid the locals' rows when there is room, so that a remote's edge is never
    # drawn straight through into a local it does not talk to.
    taken = {p.row for p in placed}
    free = [r for r in range(top, bottom + 1) if r not in taken]
    for nodes, x0, x1, side in (
        (left, 0, side_w - 1, "L"),
        (right, width - side_w, width - 1, "R"),
    ):
        if len(free) >= len(nodes):
            rows = [free[i] for i in _rows(len(nodes), 0, len(free) - 1)]
        else:
            rows = _rows(len(nodes), top, bottom)
        for node, row in zip(nodes, rows, strict=False):
            placed.append(Placed(node, row, x0, x1, side))
    return placed


def render_topology(
    topo: Topology, width: int, height: int, focus: str | None = None
) -> tuple[Text, list[Placed]]:
    """The picture, exactly `height` lines of `width` cells, and where the nodes went."""
    width = max(width, 40)
    height = max(height, 6)
    grid = [[" "] * width for _ in range(height)]
    masks = [[0] * width for _ in range(height)]
    strokes: dict[tuple[int, int], str] = {}
    styles: dict[tuple[int, int], str] = {}
    placed = layout(topo, width, height)
    where = {p.node.key: p for p in placed if p.side == "M"}
    mids = [p for p in placed if p.side == "M"]
    bus_l = min(p.x0 for p in mids) - 2 if mids else width // 2
    bus_r = max(p.x1 for p in mids) + 2 if mids else width // 2

    def hline(row: int, a: int, b: int, ch: str | None = None) -> None:
        lo, hi = min(a, b), max(a, b)
        for x in range(lo, hi + 1):
            if x > lo:
                masks[row][x] |= LEFT
            if x < hi:
                masks[row][x] |= RIGHT
            if ch is not None and ch != "─":
                strokes[(row, x)] = ch

    def vline(x: int, a: int, b: int) -> None:
        lo, hi = min(a, b), max(a, b)
        for y in range(lo, hi + 1):
            if y > lo:
                masks[y][x] |= UP
            if y < hi:
                masks[y][x] |= DOWN

    for p in placed:
        if p.side == "M":
            continue
        # One edge per remote, to the local it exchanged the most bytes with.
        for peer_key, _ in sorted(p.node.peers.items(), key=lambda kv: (-kv[1], kv[0]))[:1]:
            target = where.get(peer_key)
            if target is None:
                continue
            ch = stroke(p.node.bytes)
            if p.side == "L":
                hline(p.row, p.x1 + 1, bus_l, ch)
                vline(bus_l, p.row, target.row)
                hline(target.row, bus_l, target.x0 - 1)
            else:
                hline(p.row, bus_r, p.x0 - 1, ch)
                vline(bus_r, p.row, target.row)
                hline(target.row, target.x1 + 1, bus_r)
    for y in range(height):
        for x in range(width):
            m = masks[y][x]
            if m:
                heavy = strokes.get((y, x))
                grid[y][x] = heavy if heavy and m in (LEFT | RIGHT, LEFT, RIGHT) else LIGHT[m]
    for p in placed:
        _label(grid, styles, p, focus)
    total = f" {topo.total_locals} local, {topo.total_remotes} remote  ─ <1MB ━ <100MB ═ more"
    _put(grid, 0, 0, total[: width - 1])
    text = Text(no_wrap=True, overflow="crop")
    for y in range(height):
        row = grid[y]
        x = 0
        while x < width:
            style = styles.get((y, x), "")
            x2 = x
            while x2 < width and styles.get((y, x2), "") == style:
                x2 += 1
            text.append("".join(row[x:x2]), style=style)
            x = x2
        if y < height - 1:
            text.append("\n")
    return text, placed


def _local_body(node: Node, room: int) -> str:
    mark = "!" if node.severity in ("high", "critical") else ""
    body = f"[{mark}{sanitize(node.label)}"
    return body[: room - 1] + "]" if len(body) >= room else body + "]"


def _put(grid: list[list[str]], row: int, x: int, s: str) -> None:
    for i, ch in enumerate(s):
        if 0 <= x + i < len(grid[row]):
            grid[row][x + i] = ch


def _label(
    grid: list[list[str]], styles: dict[tuple[int, int], str], p: Placed, focus: str | None
) -> None:
    node = p.node
    room = p.x1 - p.x0 + 1
    size = human_bytes(node.bytes)
    name = sanitize(node.label)
    mark = "!" if node.severity in ("high", "critical") else ""
    if p.side == "M":
        body = _local_body(node, room)
        start = p.x0
    else:
        body = f"{mark}{name} {size}"
        if len(body) > room:
            keep = room - len(size) - 2 - len(mark)
            body = f"{mark}{name[: max(1, keep)]}… {size}"[:room]
        start = p.x1 - len(body) + 1 if p.side == "L" else p.x0
    _put(grid, p.row, start, body)
    style = SEVERITY_STYLE.get(node.severity or "", "bold" if p.side == "M" else "")
    if node.aggregate:
        style = "dim" if not node.severity else style
    if focus == node.key:
        style = (style + " reverse").strip()
    for i in range(len(body)):
        styles[(p.row, start + i)] = style


class GraphView(Widget):
    """Renders a Topology to its own size; the panel sets `topology` and `focus`."""

    DEFAULT_CSS = """
    GraphView {
        height: 1fr;
    }
    """

    def __init__(self, id: str | None = None) -> None:  # noqa: A002 (Textual's name)
        super().__init__(id=id)
        self.topology = Topology([], [], 0, 0)
        self.focus_key: str | None = None
        self.placed: list[Placed] = []

    def set_topology(self, topology: Topology, focus: str | None) -> None:
        self.topology = topology
        self.focus_key = focus
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if width <= 0 or height <= 0:
            return Text("")
        text, self.placed = render_topology(self.topology, width, height, self.focus_key)
        return text
