"""`e`/`E` export the current panel's rows, `w` writes the selected flows' packets as pcapng
(checked by reading it back with our reader, and with tshark when it is installed)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

from functional.dashboard_helpers import dashboard_settings, make_app, replayed, wait_for

from packettracer.app import PacketTracerApp
from packettracer.capture.pcapfile import CaptureReader
from packettracer.screens.traffic import TrafficPanel


def _app(tmp_path: Path) -> PacketTracerApp:
    settings = dashboard_settings()
    settings.ui.export_dir = str(tmp_path / "exports")
    return make_app(settings=settings)


def _traffic(app: PacketTracerApp) -> TrafficPanel:
    panel = app.panels["1"]
    assert isinstance(panel, TrafficPanel)
    return panel


async def test_e_exports_the_selected_flows_as_csv_and_json(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await replayed(pilot)
        traffic = _traffic(app)
        first_two = traffic.shown[:2]
        await pilot.press("space", "down", "space")
        assert traffic.view.selected == {f.id for f in first_two}
        await pilot.press("e")
        await wait_for(pilot, lambda: app.last_export is not None)
        with open(str(app.last_export), newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert sorted((r["src"], int(r["sport"])) for r in rows) == sorted(
            (f.src, f.sport) for f in first_two
        )
        app.last_export = None
        await pilot.press("E")
        await wait_for(pilot, lambda: app.last_export is not None)
        data = json.loads(Path(str(app.last_export)).read_text())
        assert {r["dport"] for r in data} == {f.dport for f in first_two}
        assert all(set(r) >= {"proto", "packets_fwd", "bytes_rev"} for r in data)


async def test_e_without_selection_exports_the_rows_shown(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await replayed(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: app.last_export is not None)
        with open(str(app.last_export), newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == len(_traffic(app).shown) > 1


async def test_w_writes_the_packets_of_the_selected_flow(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await replayed(pilot)
        traffic = _traffic(app)
        small = next(f for f in traffic.shown if 2 <= f.packets <= 64)
        traffic.view.toggle([small.id])
        await pilot.press("w")
        await wait_for(pilot, lambda: app.last_export is not None)
        path = Path(str(app.last_export))
        assert path.suffix == ".pcapng"
        with CaptureReader(path) as reader:
            frames = list(reader)
        assert len(frames) == small.packets
        assert sum(f[3] for f in frames) == small.bytes
        tshark = shutil.which("tshark")
        if tshark is not None:  # Wireshark's own reader agrees
            out = subprocess.run(
                [tshark, "-r", str(path), "-T", "fields", "-e", "frame.len"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert sum(int(x) for x in out.stdout.split()) == small.bytes
