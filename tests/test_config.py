"""Settings: the documented defaults, the TOML overlay, and one clear line for every bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.errors import ConfigError, UsageError


def test_defaults_are_the_documented_ones() -> None:
    s = Settings()
    assert s.flows.max_flows == 50_000
    assert s.flows.idle_timeout == 300.0
    assert s.ui.refresh_interval == 0.1
    assert s.resolve.geo_rate_limit == 45
    assert s.resolve.geo_cache_size == 10_000
    assert s.resolve.dns_cache_size == 5_000
    assert s.store.retention_days == 30
    assert s.store.db_path.endswith("data.db")


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[flows]\nmax_flows = 10\nidle_timeout = 5\n[capture]\nbpf_filter = "tcp"\n')
    s = Settings.load(path)
    assert (s.flows.max_flows, s.flows.idle_timeout, s.capture.bpf_filter) == (10, 5.0, "tcp")
    assert isinstance(s.flows.idle_timeout, float) and s.config_file == str(path)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[flows]\nmax_flow = 3\n", "unknown key 'max_flow'"),
        ("[flows]\nmax_flows = 'many'\n", "[flows] max_flows: expected an integer"),
        ("[flows]\nmax_flows = true\n", "expected an integer"),
        ("[flows]\nidle_timeout = 'soon'\n", "expected a number"),
        ("[resolve]\nenabled = 1\n", "expected true or false"),
        ("[nosuch]\nx = 1\n", "unknown section [nosuch]"),
        ("flows = 3\n", "unknown section [flows]"),
        ("[flows\n", "config file"),
    ],
)
def test_bad_files_are_one_line_usage_errors(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        Settings.load(path)
    assert isinstance(exc.value, UsageError) and exc.value.exit_code == 2
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        Settings.load(tmp_path / "none.toml")


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.load(tmp_path)  # a directory
    assert "\n" not in str(exc.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"[flows]\nmax_flows = 1 # \xff\xfe\n")
    with pytest.raises(ConfigError) as exc:
        Settings.load(path)
    assert "\n" not in str(exc.value)
