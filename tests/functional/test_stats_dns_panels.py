"""Stats (3) and DNS (6) panels, driven through the real app over fixture captures."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, Sparkline

from packettracer.model.dnsparse import DnsMessage

from .dashboard_helpers import DATA, make_app, replayed, wait_for

SIZE = (160, 45)


def rows(table: DataTable) -> list[list[str]]:
    return [[c.plain for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_stats_panel_breakdowns_talkers_and_sparkline() -> None:
    app = make_app(DATA / "http.pcap", panel="3")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = app.query_one("#panel-stats")
        feature = app.runtime.features["resolution"]
        await wait_for(pilot, lambda: feature.geo.offline.loaded or bool(feature.geo.offline.error))
        panel.invalidate()
        await pilot.pause()
        protocols = rows(panel.query_one("#stats-protocol", DataTable))
        assert protocols and abs(sum(float(r[4].rstrip("%")) for r in protocols) - 100) < 0.5
        remote = rows(panel.query_one("#stats-remote", DataTable))
        by_address = {r[0]: r for r in remote}
        assert by_address["65.208.228.223"][1] == "www.ethereal.com ʰ"  # name + source marker
        # every address in this capture is public: the client counts as a remote talker too
        assert by_address["145.254.160.237"][4] == "3"
        assert rows(panel.query_one("#stats-local", DataTable)) == []
        if feature.geo.offline.loaded:
            countries = {r[0] for r in rows(panel.query_one("#stats-country", DataTable))}
            assert "US" in countries
            orgs = {r[0] for r in rows(panel.query_one("#stats-as", DataTable))}
            assert "UNITAS-AOS" in orgs
        spark = panel.query_one("#stats-spark", Sparkline)
        assert max(spark.data) > 0


async def test_dns_panel_queries_resolvers_latency_and_recent() -> None:
    app = make_app(DATA / "dns.pcap", panel="6")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = app.query_one("#panel-dns")
        panel.invalidate()
        await pilot.pause()
        names = {r[0] for r in rows(panel.query_one("#dns-names", DataTable))}
        assert {"www.example.com", "e7.whatsapp.net"} <= names
        resolvers = {r[0]: r for r in rows(panel.query_one("#dns-resolvers", DataTable))}
        assert resolvers["192.168.170.20"][6] == "233.1 ms"
        assert resolvers["82.178.158.181"][6] == "3.5 ms"
        app.runtime.pipeline.finish()  # end the flows: LAN talkers land in the local table
        await pilot.press("3")
        stats = app.query_one("#panel-stats")
        stats.invalidate()
        await pilot.pause()
        local = {r[0] for r in rows(stats.query_one("#stats-local", DataTable))}
        assert "192.168.170.8" in local and "192.168.170.20" in local
        countries = {r[0] for r in rows(stats.query_one("#stats-country", DataTable))}
        assert "LAN" in countries
        await pilot.press("6")
        rcodes = rows(panel.query_one("#dns-rcodes", DataTable))
        assert rcodes == [["NOERROR", "3", "100.0%"]]
        recent = rows(panel.query_one("#dns-recent", DataTable))
        answer = next(r for r in recent if r[3] == "e7.whatsapp.net")
        assert answer[5] == "NOERROR" and answer[7].startswith("169.45.219.235")


async def test_dns_panel_shows_names_literally_and_marks_tunnels() -> None:
    app = make_app(DATA / "dns.pcap", panel="6")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        feature = app.runtime.features["resolution"]
        hostile = "[bold red]x[/]\x1b[2J.example.com"
        tunnel = "dgvzdcbkyxrhihrozxjligzvcibleglsdhjhdglvbia0mjq0.t.example.com"
        for i, name in enumerate((hostile, tunnel)):
            msg = DnsMessage(100 + i, False, 0, "NOERROR", name, "TXT")
            feature.dns.on_message(msg, "10.0.0.2", "10.0.0.1", 1_700_000_000.0 + i)
        panel = app.query_one("#panel-dns")
        panel.invalidate()
        await pilot.pause()
        table = panel.query_one("#dns-recent", DataTable)
        cells = {table.get_row_at(i)[3].plain: table.get_row_at(i)[3] for i in range(2)}
        literal = cells["[bold red]x[/]\ufffd[2J.example.com"]
        assert isinstance(literal, Text) and not literal.spans
        marked = cells[f"⚠ {tunnel}"]
        assert marked.spans  # only the marker is styled
        summary = str(panel.query_one("#dns-summary").render())
        assert "1 suspicious names" in summary


async def test_panel_keys_switch_to_stats_and_dns() -> None:
    app = make_app(DATA / "dns.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        await pilot.press("3")
        assert app.current_key == "3"
        await pilot.press("6")
        assert app.current_key == "6"
        assert app.query_one("#panel-dns").display


def test_fixtures_present() -> None:
    assert Path(DATA / "http.pcap").exists()


async def test_stats_panel_shows_the_owner_of_the_remote_talker_under_the_cursor() -> None:
    import json
    import time

    from packettracer.services.ownership import parse_rdap

    recorded = json.loads((DATA / "ownership" / "rdap.json").read_text())
    owner = parse_rdap(recorded["74.125.225.229"]["response"], "arin")
    owner.fetched_at = time.time()
    app = make_app(DATA / "http.pcap", panel="3")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        feature = app.runtime.features["resolution"]
        feature.ownership.warm("65.208.228.223", owner)
        panel = app.query_one("#panel-stats")
        panel.invalidate()
        await pilot.pause()
        table = panel.query_one("#stats-remote", DataTable)
        row = next(i for i, r in enumerate(rows(table)) if r[0] == "65.208.228.223")
        assert rows(table)[row][6] == "Google Inc."
        table.move_cursor(row=row)
        panel.invalidate()
        await pilot.pause()
        detail = str(panel.query_one("#stats-detail").render())
        for part in ("net GOOGLE", "cidr 74.125.0.0/16", "registry ARIN", "arin-contact@google"):
            assert part in detail
