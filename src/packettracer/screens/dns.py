"""Panel 6, DNS: the queries and answers seen on the wire. Top queried names and domains, query
types, response codes (NXDOMAIN and SERVFAIL rates), the resolvers in use with their answer
latency, and the most recent queries. Names that look like DNS tunnelling (very long, or long
high-entropy labels) carry a warning marker and their score."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from packettracer.model.dnsstats import SUSPICIOUS_SCORE, DnsEvent, tunnel_score
from packettracer.screens.base import Panel
from packettracer.screens.dpi_common import Throttle, cell, fill, share
from packettracer.services.runtime import Runtime
from packettracer.widgets.flow_table import human_count, sanitize

TOP_ROWS = 15
RECENT_ROWS = 60
WARNING = "⚠"
RCODE_STYLE = {"NOERROR": "green", "NXDOMAIN": "yellow", "SERVFAIL": "bold red"}


def _ms(seconds: float | None) -> Text:
    if seconds is None:
        return Text("-", "dim", justify="right")
    return Text(f"{seconds * 1000:.1f} ms", justify="right")


def name_cell(name: str, score: float) -> Text:
    """A queried name; a suspicious one gets the warning marker (the name itself stays literal)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if score >= SUSPICIOUS_SCORE:
        text.append(f"{WARNING} ", "bold yellow")
    text.append(sanitize(name or "."))
    return text


class DnsPanel(Panel):
    PANEL_KEY = "6"
    PANEL_ID = "dns"
    PANEL_TITLE = "DNS"

    DEFAULT_CSS = """
    DnsPanel #dns-summary { height: 1; background: $boost; }
    DnsPanel #dns-top { height: 1fr; }
    DnsPanel #dns-names { width: 3fr; }
    DnsPanel #dns-domains { width: 2fr; }
    DnsPanel #dns-codes { width: 1fr; }
    DnsPanel #dns-qtypes, DnsPanel #dns-rcodes { height: 1fr; }
    DnsPanel #dns-resolvers { height: auto; max-height: 8; }
    DnsPanel #dns-recent { height: 1fr; }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.throttle = Throttle(0.5)
        self._fresh = False

    def compose(self) -> ComposeResult:
        yield Static(id="dns-summary")
        with Horizontal(id="dns-top"):
            yield self._table("dns-names", ("Queried name", "Queries", "Score"))
            yield self._table("dns-domains", ("Domain", "Queries", "Share"))
            with Vertical(id="dns-codes"):
                yield self._table("dns-qtypes", ("Type", "Count", "Share"))
                yield self._table("dns-rcodes", ("Rcode", "Count", "Share"))
        yield self._table(
            "dns-resolvers",
            ("Resolver", "Name", "Queries", "Answers", "NXDOMAIN", "SERVFAIL", "Avg", "Max"),
        )
        yield self._table(
            "dns-recent",
            ("Time", "Client", "Resolver", "Name", "Type", "Rcode", "Latency", "Answers"),
        )

    @staticmethod
    def _table(ident: str, titles: tuple[str, ...]) -> DataTable[Text]:
        table: DataTable[Text] = DataTable(id=ident, cursor_type="row")
        for title in titles:
            table.add_column(title, key=title.lower())
        return table

    def focus_main(self) -> None:
        self.query_one("#dns-recent", DataTable).focus()

    def invalidate(self) -> None:
        """Recompute now (after a replay settled, for snapshots), not on the next second."""
        self.throttle.last = 0.0
        self._fresh = True
        self.refresh_view()

    @property
    def resolution(self) -> Any:
        return self.runtime.features.get("resolution")

    def refresh_view(self) -> None:
        feature = self.resolution
        summary = self.query_one("#dns-summary", Static)
        if feature is None:
            summary.update(Text(" No resolution feature: DNS is not analysed", "dim"))
            return
        if not self.throttle.due():
            return
        dns = feature.dns
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f" {human_count(dns.queries)} queries", "bold")
        line.append(f"  {human_count(dns.responses)} answers")
        line.append(f"  NXDOMAIN {dns.rate('NXDOMAIN') * 100:.1f}%", "yellow")
        line.append(f"  SERVFAIL {dns.rate('SERVFAIL') * 100:.1f}%", "red")
        line.append(f"  unanswered {human_count(dns.unanswered)}")
        line.append(f"  malformed {human_count(dns.malformed)}")
        if dns.suspicious:
            line.append(f"  {WARNING} {len(dns.suspicious)} suspicious names", "bold yellow")
        summary.update(line)
        self._fill_names(dns)
        self._fill_counts("dns-domains", dns.by_domain, dns.queries, name_col=True)
        self._fill_counts("dns-qtypes", dns.qtypes, dns.queries)
        self._fill_counts("dns-rcodes", dns.rcodes, dns.responses, styles=RCODE_STYLE)
        self._fill_resolvers(dns, feature)
        self._fill_recent(list(dns.recent))

    def _fill_names(self, dns: Any) -> None:
        rows = []
        for name, count in dns.by_name.most_common(TOP_ROWS):
            score = tunnel_score(name)
            rows.append(
                (
                    f"n:{name}",
                    [
                        name_cell(name, score),
                        cell(count, right=True),
                        cell(f"{score:.2f}" if score else None, right=True),
                    ],
                )
            )
        fill(self.query_one("#dns-names", DataTable), rows)

    def _fill_counts(
        self,
        ident: str,
        counter: Any,
        total: int,
        name_col: bool = False,
        styles: dict[str, str] | None = None,
    ) -> None:
        rows = []
        for key, count in counter.most_common(TOP_ROWS):
            style = (styles or {}).get(key, "")
            rows.append(
                (
                    f"{ident}:{key}",
                    [
                        cell(key, style),
                        cell(count, right=True),
                        share(count / total if total else 0.0),
                    ],
                )
            )
        fill(self.query_one(f"#{ident}", DataTable), rows)

    def _fill_resolvers(self, dns: Any, feature: Any) -> None:
        rows = []
        resolvers = sorted(dns.resolvers.values(), key=lambda r: (-r.queries, r.address))
        for res in resolvers[:TOP_ROWS]:
            entry = feature.names.best(res.address)
            name = entry.name if entry is not None else feature.ptr_name(res.address)
            answered = res.responses or 1
            rows.append(
                (
                    f"r:{res.address}",
                    [
                        cell(res.address, "bold"),
                        cell(name),
                        cell(res.queries, right=True),
                        cell(res.responses, right=True),
                        share(res.nxdomain / answered),
                        share(res.servfail / answered),
                        _ms(res.latency_avg),
                        _ms(res.latency_max if res.latency_n else None),
                    ],
                )
            )
        fill(self.query_one("#dns-resolvers", DataTable), rows)

    def _fill_recent(self, events: list[DnsEvent]) -> None:
        rows = []
        for i, event in enumerate(reversed(events[-RECENT_ROWS:])):
            stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
            rows.append(
                (
                    f"q:{i}",
                    [
                        cell(stamp),
                        cell(event.client),
                        cell(event.server),
                        name_cell(event.qname, event.score),
                        cell(event.qtype),
                        cell(event.rcode or "…", RCODE_STYLE.get(event.rcode or "", "dim")),
                        _ms(event.latency),
                        cell(", ".join(event.answers) if event.answers else None),
                    ],
                )
            )
        fill(self.query_one("#dns-recent", DataTable), rows)
