"""What every dashboard panel is: a widget bound to the Runtime, refreshed on the UI timer."""

from __future__ import annotations

from typing import ClassVar

from textual.widget import Widget

from packettracer.services.runtime import Runtime


class Panel(Widget):
    """A panel reads Runtime state in `refresh_view()` (called on the dashboard timer while the
    panel is visible) and never does I/O itself. Subclasses set the three class variables."""

    PANEL_KEY: ClassVar[str] = ""
    """The digit that shows it: "1".."9", "0"."""
    PANEL_ID: ClassVar[str] = ""
    """Short name, used by `--panel NAME` (traffic, paths, stats, analysis, ports, dns, ...)."""
    PANEL_TITLE: ClassVar[str] = ""

    DEFAULT_CSS = """
    Panel {
        height: 1fr;
    }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(id=f"panel-{self.PANEL_ID}")
        self.runtime = runtime

    def refresh_view(self) -> None:
        """Pull the latest state from the runtime and update the widgets."""
