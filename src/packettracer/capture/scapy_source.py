"""Portable live capture through scapy's `AsyncSniffer`, with a raw link layer.

scapy dissects every packet it receives unless told otherwise (about 400 µs a packet here), so the
listening socket below returns the raw bytes in a tiny wrapper instead of a `Packet`; the decoder
does the rest. Frames are collected per batch and handed to the pipeline when the batch is full
or 50 ms old, never one loop wake-up per packet.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
import threading
import time
from typing import Any

from packettracer.capture.afpacket import (
    PACKET_OUTGOING,
    attach_code,
    live_filter_code,
    permission_error,
)
from packettracer.capture.bpf import BpfProgram
from packettracer.capture.interfaces import ANY, hardware_type, is_loopback, link_type
from packettracer.capture.pcapfile import Frame
from packettracer.capture.source import Batch, BatchQueue
from packettracer.errors import CaptureError

SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_RCVBUFFORCE = 33
RCVBUF = 8 << 20
"""The plain packet socket queues packets in its receive buffer: make room for bursts."""

FLUSH_INTERVAL = 0.05


class RawFrame:
    """What the listening socket hands to the sniffer: a frame, not a dissected Packet.
    `sniffed_on` is set by scapy's sniff loop."""

    __slots__ = ("frame", "sniffed_on")

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.sniffed_on: Any = None


def _raw_listen_socket_class() -> type[Any]:
    from scapy.config import conf

    if sys.platform.startswith("linux"):
        from scapy.arch.linux import L2ListenSocket
        from scapy.data import MTU

        class RawListenSocket(L2ListenSocket):
            linktype = 1
            skip_outgoing = False

            def recv(self, x: int = MTU, **kwargs: Any) -> RawFrame | None:  # type: ignore[override]
                data, sa_ll, ts = self._recv_raw(self.ins, x)
                if not data:
                    return None
                # sa_ll: (ifname, proto, pkttype, hatype, addr); on loopback keep one copy.
                if self.skip_outgoing and sa_ll[2] == PACKET_OUTGOING:
                    return None
                return RawFrame((self.linktype, ts or time.time(), data, len(data)))

        return RawListenSocket

    base = conf.L2listen
    layer2num = conf.l2types.layer2num

    class PortableRawListenSocket(base):  # type: ignore[misc,valid-type]
        linktype = 1
        skip_outgoing = False

        def recv(self, x: int = 65535, **kwargs: Any) -> RawFrame | None:
            cls, data, ts = self.recv_raw(x)
            if not data:
                return None
            # Elsewhere the link type is the capture library's (BSD loopback is DLT_NULL): scapy
            # names it by the class it would have dissected with.
            linktype = layer2num.get(cls, self.linktype)
            return RawFrame((linktype, ts or time.time(), data, len(data)))

    return PortableRawListenSocket


class ScapySource:
    """Live frames through scapy's sniffer (`--capture-backend scapy`)."""

    live = True

    def __init__(
        self,
        interface: str,
        bpf_filter: str | None = None,
        snaplen: int = 262144,
        promiscuous: bool = False,
        batch_size: int = 512,
    ) -> None:
        self.interface = interface
        self.description = interface
        self.snaplen = snaplen
        self.batch_size = max(1, batch_size)
        self.received = 0
        self.kernel_dropped = 0
        self.finished = False
        self.error: str | None = None
        if interface == ANY:
            raise CaptureError(
                "the scapy capture backend cannot capture on 'any'",
                "use --capture-backend afpacket, or name one interface",
            )
        linktype, cooked = link_type(hardware_type(interface))
        if cooked:
            raise CaptureError(
                f"the scapy capture backend cannot read {interface}'s link type "
                f"(hardware type {hardware_type(interface)})",
                "use --capture-backend afpacket",
            )
        self.linktype = linktype
        program = BpfProgram(bpf_filter, linktype) if bpf_filter else None
        cls = _raw_listen_socket_class()
        # scapy warns that it cannot guess a dissector for loopback; we never ask for one.
        scapy_log = logging.getLogger("scapy.runtime")
        level = scapy_log.level
        scapy_log.setLevel(logging.ERROR)
        try:
            # nofilter: scapy would compile the filter with its own error wording; ours is
            # attached below instead.
            self.sock = cls(iface=interface, promisc=promiscuous, nofilter=1)
        except PermissionError:
            raise permission_error(interface) from None
        except OSError as exc:
            raise CaptureError(f"cannot capture on {interface}: {exc.strerror or exc}") from None
        finally:
            scapy_log.setLevel(level)
        self.sock.linktype = linktype
        self.sock.skip_outgoing = is_loopback(interface)
        ins: socket.socket | None = getattr(self.sock, "ins", None)
        if ins is not None and isinstance(ins, socket.socket):
            for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
                try:
                    ins.setsockopt(socket.SOL_SOCKET, opt, RCVBUF)
                    break
                except OSError:
                    continue
            if program is not None:
                live = live_filter_code(program.expression, interface, linktype)
                if live is not None:
                    attach_code(ins, live)
                else:
                    program.attach(ins)
                _flush(ins)
        self._ins = ins
        self._lock = threading.Lock()
        self._batch: Batch = []
        self._last_flush = time.monotonic()
        self._queue: BatchQueue | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._sniffer: Any = None

    def start(self, queue: BatchQueue) -> None:
        from scapy.sendrecv import AsyncSniffer

        self._queue = queue
        if self._ins is not None:
            # Like the AF_PACKET source, deliver what passes from now on, not what queued on the
            # socket while the dashboard was starting.
            _flush(self._ins)
        self._sniffer = AsyncSniffer(opened_socket=self.sock, prn=self._on_frame, store=False)
        self._sniffer.start()
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"scapy-flush-{self.interface}", daemon=True
        )
        self._flusher.start()

    def stop(self) -> None:
        self._stop.set()
        sniffer = self._sniffer
        if sniffer is not None and sniffer.running:
            try:
                sniffer.stop(join=True)
            except Exception:  # stopping a sniffer whose socket already failed
                pass
        if self._flusher is not None:
            self._flusher.join(timeout=2)
        self._flush_now()
        self._read_stats()
        try:
            self.sock.close()
        except OSError:
            pass
        # A live source is finished once stopped: the capture pump drains the rest and ends.
        self.finished = True
        if self._queue is not None and self._queue.notify is not None:
            self._queue.notify()

    def _on_frame(self, item: RawFrame) -> None:
        """Called by the sniffer thread for each frame: append, hand over when full or old."""
        frame = item.frame
        if len(frame[2]) > self.snaplen:
            frame = (frame[0], frame[1], frame[2][: self.snaplen], frame[3])
        with self._lock:
            self._batch.append(frame)
            if (
                len(self._batch) < self.batch_size
                and time.monotonic() - self._last_flush < FLUSH_INTERVAL
            ):
                return
            batch = self._take()
        self._offer(batch)

    def _take(self) -> Batch:
        batch = self._batch
        self._batch = []
        self._last_flush = time.monotonic()
        return batch

    def _offer(self, batch: Batch) -> None:
        if batch and self._queue is not None:
            self.received += len(batch)
            self._queue.offer(batch)

    def _flush_now(self) -> None:
        with self._lock:
            batch = self._take()
        self._offer(batch)

    def _flush_loop(self) -> None:
        """Hands over a part-filled batch when traffic is slow, and notices a dead sniffer."""
        next_stats = time.monotonic()
        while not self._stop.wait(FLUSH_INTERVAL):
            if self._batch and time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
                self._flush_now()
            if time.monotonic() >= next_stats:
                self._read_stats()
                next_stats = time.monotonic() + 0.5
            thread = getattr(self._sniffer, "thread", None)
            if thread is not None and not thread.is_alive() and not self._stop.is_set():
                self._flush_now()
                self.error = f"capture on {self.interface} stopped (the sniffer socket failed)"
                self.finished = True
                if self._queue is not None and self._queue.notify is not None:
                    self._queue.notify()
                return

    def _read_stats(self) -> None:
        if self._ins is None or not sys.platform.startswith("linux"):
            return
        try:
            raw = self._ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return
        _, drops = struct.unpack("=II", raw[:8])
        self.kernel_dropped += drops


def _flush(sock: socket.socket) -> None:
    """Drop what queued on the socket before the filter was attached."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65535)
    except OSError:
        pass
    finally:
        sock.setblocking(True)
