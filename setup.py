"""The build: the pure-Python package, plus the DPI's own modules compiled with mypyc when a C
compiler and Python's headers are at hand. Same source either way; compiled, the DPI costs
`report` about a fifth less CPU (README, "DPI"). Metadata lives in pyproject.toml.

PACKETTRACER_COMPILE=0 builds pure Python only. A machine that cannot compile them gets the pure
modules, with one line saying why: the compiled ones are a speed-up, never a requirement.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The DPI engine and its parsers: per-flow work on untrusted bytes, no I/O, no Textual. Only
# these: the shared pipeline runs as Python with or without the DPI, so the DPI's cost figure
# compares like with like.
COMPILED = [
    f"src/packettracer/model/dpi/{name}.py"
    for name in (
        "aggregates",
        "anomaly",
        "categories",
        "http",
        "inspector",
        "osfp",
        "p0f",
        "protocols",
        "quic",
        "rules",
        "tls",
    )
]


def _say(text: str) -> None:
    print(f"packettracer: {text}", file=sys.stderr)


def _why_not_compile() -> str | None:
    if os.environ.get("PACKETTRACER_COMPILE", "1") == "0":
        return "PACKETTRACER_COMPILE=0"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python headers ({include}/Python.h; Debian: python3-dev)"
    return None


def _extensions() -> list[Any]:
    reason = _why_not_compile()
    if reason is None:
        try:
            from mypyc.build import mypycify

            return list(mypycify(COMPILED, opt_level="3"))
        except (Exception, SystemExit) as exc:  # mypyc exits on a type error
            reason = f"mypyc: {exc}"
    _say(f"pure-Python DPI modules ({reason})")
    return []


class OptionalBuildExt(build_ext):
    """Compile every module or none: mypyc's modules share one library, and a failed compile
    must leave the pure modules importable."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            inplace = self.inplace
            for ext in self.extensions:
                for self.inplace in (False, True):  # the build copy and the in-place one
                    path = self.get_ext_fullpath(ext.name)
                    if os.path.exists(path):
                        os.remove(path)
            self.inplace = inplace
            _say(f"pure-Python DPI modules (the compile failed: {exc})")


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
