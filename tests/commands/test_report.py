"""The report command's entry point in process (cli.main): exit statuses and one-line errors for
what fails before any analysis starts. The subprocess tests in tests/system cover the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packettracer.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"


def test_report_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "-r", str(DATA / "arp.pcap"), "--format", "json", "-n"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["packets"] == 6
    assert {f["proto_name"] for f in out["flows"]} == {"arp"}


@pytest.mark.parametrize(
    ("argv", "status", "words"),
    [
        (["report"], 2, "-r FILE is required"),
        (["report", "-r", "x.pcap", "--bogus"], 2, "unrecognized arguments"),
        (["report", "-r", str(DATA)], 1, "is a directory"),
        (["report", "-r", str(DATA / "dns.pcap" / "x")], 1, "dns.pcap/x"),
        (["report", "-r", str(DATA / "dns.pcap"), "--config", "/nonexistent.toml"], 2, "no such"),
    ],
)
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], status: int, words: str
) -> None:
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and err.startswith("packettracer")


def test_a_closed_pipe_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    class Closed:
        def write(self, text: str) -> int:
            raise BrokenPipeError

        def flush(self) -> None:
            raise BrokenPipeError

        def close(self) -> None:
            pass

    import sys

    real = sys.stdout
    sys.stdout = Closed()  # type: ignore[assignment]
    try:
        assert main(["report", "-r", str(DATA / "arp.pcap"), "--format", "csv", "-n"]) == 0
    finally:
        sys.stdout = real
