"""The packaged sample capture behind `packettracer --demo`."""

from __future__ import annotations

from importlib import resources

from packettracer.errors import CaptureFileError


def demo_capture() -> str:
    path = resources.files("packettracer") / "data" / "demo.pcapng"
    if not path.is_file():
        raise CaptureFileError("the demo capture is missing from this installation")
    return str(path)
