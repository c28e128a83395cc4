"""The status bar: source, filter, rates, drops, flows, paused state, elapsed time, warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import Static

from packettracer.widgets.flow_table import human_count, human_rate, sanitize


@dataclass
class Status:
    """Everything the bar shows, read from the Runtime by the app on each refresh."""

    source: str = "-"
    bpf_filter: str | None = None
    pps: float = 0.0
    bps: float = 0.0
    packets: int = 0
    kernel_drops: int = 0
    queue_drops: int = 0
    flows: int = 0
    paused: bool = False
    finished: bool = False
    elapsed: float = 0.0
    alerts: int | None = None
    warnings: list[str] = field(default_factory=list)


def format_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def render_status(status: Status) -> Text:
    """One line, most important first so a narrow terminal cuts the least useful end; warnings
    go on a second line. Packet-derived text (names, errors) is appended as plain text."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(" ")
    if status.paused:
        text.append("PAUSED", style="bold reverse yellow")
    elif status.finished:
        text.append("done", style="bold")
    else:
        text.append("live", style="bold green")
    text.append(" ")
    text.append(sanitize(status.source), style="bold")
    text.append(f"  {human_count(round(status.pps))} pkt/s {human_rate(status.bps)}")
    text.append(f"  flows {human_count(status.flows)}")
    drops = status.kernel_drops + status.queue_drops
    if drops:
        text.append(
            f"  drops {drops} (kernel {status.kernel_drops}, queue {status.queue_drops})",
            style="bold red",
        )
    else:
        text.append("  drops 0")
    if status.alerts:
        text.append(f"  alerts {status.alerts}", style="bold reverse red")
    text.append(f"  {format_elapsed(status.elapsed)}")
    text.append(f"  pkts {human_count(status.packets)}")
    text.append(f"  filter {sanitize(status.bpf_filter) if status.bpf_filter else '-'}")
    if status.warnings:
        text.append("\n ")
        text.append(sanitize(" | ".join(status.warnings)), style="bold yellow")
    return text


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar {
        height: auto;
        max-height: 2;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        background: $panel;
        color: $text;
    }
    """

    def __init__(self) -> None:
        super().__init__(id="status-bar")
        self.status = Status()

    def show(self, status: Status) -> None:
        if status != self.status:
            self.status = status
            self.update(render_status(status))

    def on_mount(self) -> None:
        self.update(render_status(self.status))
