"""BPF filters compiled by libpcap (through scapy), attached in the kernel for live capture and
run in user space (libpcap's own `bpf_filter`) for capture files."""

from __future__ import annotations

import ctypes
import re
import socket
from typing import Any

from packettracer.errors import CaptureError, UsageError

SO_ATTACH_FILTER = 26


class BpfProgram:
    """A compiled filter for one link type."""

    def __init__(self, expression: str, linktype: int) -> None:
        self.expression = expression
        self.linktype = linktype
        self._prog = compile_bpf(expression, linktype)
        lib = _libpcap()
        self._bpf_filter = lib.bpf_filter
        self._bpf_filter.restype = ctypes.c_uint
        self._bpf_filter.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_uint,
            ctypes.c_uint,
        ]
        self._insns = ctypes.cast(self._prog.bf_insns, ctypes.c_void_p)

    def matches(self, data: bytes, wirelen: int) -> bool:
        return bool(self._bpf_filter(self._insns, data, wirelen, len(data)))

    def attach(self, sock: socket.socket) -> None:
        """Attach to a socket so the kernel drops non-matching packets before we see them."""
        from scapy.arch.common import bpf_program  # noqa: F401 - ensures struct layout loaded

        # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
        fprog = ctypes.create_string_buffer(16)
        ctypes.memmove(fprog, ctypes.byref(ctypes.c_ushort(self._prog.bf_len)), 2)
        ptr = ctypes.cast(self._prog.bf_insns, ctypes.c_void_p).value or 0
        ctypes.memmove(ctypes.addressof(fprog) + 8, ctypes.byref(ctypes.c_void_p(ptr)), 8)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog.raw)


_LIB: Any = None


def _libpcap() -> Any:
    global _LIB
    if _LIB is None:
        try:
            from scapy.libs import winpcapy

            _LIB = winpcapy._lib
        except (ImportError, OSError):
            raise CaptureError(
                "libpcap is not installed, so BPF filters cannot be compiled",
                "install it: apt-get install libpcap0.8",
            ) from None
    return _LIB


def compile_bpf(expression: str, linktype: int) -> Any:
    """Compile `expression` for `linktype`; a bad filter is a UsageError with libpcap's words."""
    _libpcap()
    from scapy.arch.common import compile_filter
    from scapy.error import Scapy_Exception

    try:
        return compile_filter(expression, linktype=linktype)
    except Scapy_Exception as exc:
        text = str(exc)
        match = re.search(r"\((.*)\)\s*$", text)
        reason = match.group(1) if match else text
        raise UsageError(f"invalid BPF filter {expression!r}: {reason}") from None
    except ImportError:
        raise CaptureError(
            "libpcap is not installed, so BPF filters cannot be compiled",
            "install it: apt-get install libpcap0.8",
        ) from None


class FrameFilter:
    """User-space filtering of frames from files, one compiled program per link type."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._programs: dict[int, BpfProgram] = {}

    def validate(self, linktype: int = 1) -> None:
        self.program(linktype)

    def program(self, linktype: int) -> BpfProgram:
        prog = self._programs.get(linktype)
        if prog is None:
            prog = self._programs[linktype] = BpfProgram(self.expression, linktype)
        return prog

    def matches(self, linktype: int, data: bytes, wirelen: int) -> bool:
        return self.program(linktype).matches(data, wirelen)
