"""Linux live capture: an AF_PACKET socket with a TPACKET_V3 memory-mapped ring.

The kernel writes packets into blocks of a ring shared with us; we walk a whole block of packets
per wake-up and hand it back, so there is no system call per packet (the reason TPACKET_V3 exists).
The BPF filter is compiled by libpcap and attached in the kernel before the socket is bound, so
no unfiltered packet ever reaches the ring. The reader runs in its own thread and hands frames to
the pipeline in batches through the bounded `BatchQueue`.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import socket
import struct
import threading
import time

from packettracer.capture.bpf import BpfProgram
from packettracer.capture.interfaces import (
    ANY,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    hardware_type,
    interface_names,
    is_loopback,
    link_type,
    printable,
)
from packettracer.capture.source import Batch, BatchQueue
from packettracer.errors import CaptureError, UsageError

# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_MR_PROMISC = 1
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1 (block_status, num_pkts,
# offset_to_first_pkt, ...).
BLOCK_HDR = struct.Struct("=III")
BLOCK_HDR_OFFSET = 8
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status, tp_mac,
# tp_net; then hv1 (tp_rxhash, tp_vlan_tci, tp_vlan_tpid).
PKT_HDR = struct.Struct("=IIIIIIHH")
VLAN_TCI_OFFSET = 32
VLAN_TPID_OFFSET = 36
# The struct sockaddr_ll that follows the header, at TPACKET_ALIGN(sizeof(tpacket3_hdr)) = 48.
SLL_OFFSET = 48
SLL = struct.Struct("=HHiHBB8s")  # family, protocol (network order), ifindex, hatype, pkttype, ...
PKTTYPE_OFFSET = SLL_OFFSET + 10
IFINDEX_OFFSET = SLL_OFFSET + 4
U16 = struct.Struct("=H")
I32 = struct.Struct("=i")
STATS_V3 = struct.Struct("=III")  # tp_packets, tp_drops, tp_freeze_q_cnt

FRAME_SIZE = 2048
BLOCK_SIZE = 1 << 18
"""256 KiB: room for a 64 KiB GSO packet, and many blocks per ring: at low rates each block holds
only what 50 ms brought, so the number of blocks is what lets a briefly stalled reader catch up."""
BLOCK_TIMEOUT_MS = 50
"""A block that is not full is handed to us after this long: the latency bound at low rates."""

PERMISSION_HINT = (
    "run with sudo, or grant the capability once: "
    "sudo setcap cap_net_raw,cap_net_admin=eip $(readlink -f .venv/bin/python3); "
    "or replay a file with -r FILE"
)


def permission_error(interface: str) -> CaptureError:
    return CaptureError(
        f"no permission to capture on {interface} (needs root or CAP_NET_RAW)", PERMISSION_HINT
    )


class AfPacketSource:
    """Live frames from one interface (or `any`) through a TPACKET_V3 ring."""

    live = True

    def __init__(
        self,
        interface: str,
        bpf_filter: str | None = None,
        snaplen: int = 262144,
        promiscuous: bool = False,
        batch_size: int = 512,
        ring_size_mb: int = 32,
    ) -> None:
        self.interface = interface
        self.description = interface
        self.bpf_filter = bpf_filter
        self.snaplen = snaplen
        self.batch_size = max(1, batch_size)
        self.received = 0
        self.kernel_dropped = 0
        self.kernel_packets = 0
        """What the kernel says it passed the filter (delivered plus dropped)."""
        self.finished = False
        self.error: str | None = None
        self.link_down = False
        """The kernel said the interface went down (capture resumes when it is up again)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

        if interface == ANY:
            self.ifindex = 0
            self.linktype, self.cooked = LINKTYPE_LINUX_SLL, True
            self._loop_indexes = frozenset(
                socket.if_nametoindex(n) for n in interface_names() if is_loopback(n)
            )
        else:
            try:
                self.ifindex = socket.if_nametoindex(interface)
            except OSError:
                known = ", ".join(printable(n) for n in interface_names()) or "none"
                raise UsageError(f"unknown interface {interface!r} (known: {known})") from None
            self.linktype, self.cooked = link_type(hardware_type(interface))
            self._loop_indexes = (
                frozenset([self.ifindex]) if is_loopback(interface) else frozenset()
            )
        # Compile first: a bad filter is a usage error whatever the permissions.
        program = BpfProgram(bpf_filter, self.linktype) if bpf_filter else None
        # A cooked (SOCK_DGRAM) socket's filter would need libpcap's offset rewriting to run in
        # the kernel; it runs here, in the capture thread, instead.
        self._userspace_filter = program if (program is not None and self.cooked) else None

        self.block_size = BLOCK_SIZE
        self.block_nr = max(2, ring_size_mb * (1 << 20) // BLOCK_SIZE)
        self.sock = self._open_socket(program, promiscuous)

    def _open_socket(self, program: BpfProgram | None, promiscuous: bool) -> socket.socket:
        kind = socket.SOCK_DGRAM if self.cooked else socket.SOCK_RAW
        # Protocol 0: nothing is received until start() binds the socket. Opened (and checked)
        # early, but the ring must not fill before the reader runs: at low rates the kernel
        # retires a block per 50 ms, so an unread ring is full of small blocks within seconds.
        try:
            sock = socket.socket(socket.AF_PACKET, kind, 0)
        except PermissionError:
            raise permission_error(self.interface) from None
        except OSError as exc:
            raise CaptureError(f"cannot open a packet socket: {exc.strerror or exc}") from None
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            if program is not None and not self.cooked:
                live = live_filter_code(program.expression, self.interface, self.linktype)
                if live is not None:
                    attach_code(sock, live)
                else:
                    program.attach(sock)
            frames_per_block = self.block_size // FRAME_SIZE
            req = struct.pack(
                "=7I",
                self.block_size,
                self.block_nr,
                FRAME_SIZE,
                frames_per_block * self.block_nr,
                BLOCK_TIMEOUT_MS,
                0,
                0,
            )
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self.ring = mmap.mmap(
                sock.fileno(),
                self.block_size * self.block_nr,
                mmap.MAP_SHARED,
                mmap.PROT_READ | mmap.PROT_WRITE,
            )
            if promiscuous and self.ifindex:
                mreq = struct.pack("=iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except PermissionError:
            sock.close()
            raise permission_error(self.interface) from None
        except OSError as exc:
            sock.close()
            if exc.errno == errno.ENOMEM:
                ring_mb = self.block_nr * self.block_size >> 20
                raise CaptureError(
                    f"cannot map a {ring_mb} MiB capture ring: out of memory",
                    "lower [capture] ring_size_mb",
                ) from None
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise UsageError(f"interface {self.interface!r} went away") from None
            if exc.errno == errno.ENETDOWN:
                raise CaptureError(f"interface {printable(self.interface)} is down") from None
            raise CaptureError(
                f"cannot capture on {self.interface}: {exc.strerror or exc}"
            ) from None
        return sock

    # -- PacketSource -----------------------------------------------------------------------

    def start(self, queue: BatchQueue) -> None:
        try:
            bind_packet_socket(self.sock, self.ifindex)
        except OSError as exc:
            self.error = f"cannot capture on {self.interface}: {exc.strerror or exc}"
            self.finished = True
            self.close()
            if queue.notify is not None:
                queue.notify()
            return
        self._thread = threading.Thread(
            target=self._run, args=(queue,), name=f"afpacket-{self.interface}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._thread is None or not self._thread.is_alive():
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._read_stats()
        except OSError:
            pass
        try:
            self.ring.close()
        except (BufferError, ValueError):
            pass
        self.sock.close()

    # -- the capture thread -----------------------------------------------------------------

    def _read_stats(self) -> None:
        """PACKET_STATISTICS resets the kernel's counters on each read: accumulate them."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, STATS_V3.size)
        packets, drops, _ = STATS_V3.unpack(raw)
        self.kernel_packets += packets
        self.kernel_dropped += drops

    def _run(self, queue: BatchQueue) -> None:
        try:
            self._loop(queue)
        except Exception as exc:  # shown in the status bar instead of dying silently
            self.error = f"capture on {self.interface} stopped: {exc}"
        finally:
            self.finished = True
            self.close()
            if queue.notify is not None:
                queue.notify()

    def _loop(self, queue: BatchQueue) -> None:
        ring = self.ring
        block_size = self.block_size
        block_nr = self.block_nr
        stop = self._stop
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLERR)
        block_hdr = BLOCK_HDR.unpack_from
        set_status = struct.Struct("=I").pack_into
        walk = self._walk_block
        batch: Batch = []
        block = 0
        next_stats = time.monotonic() + 0.5
        while not stop.is_set():
            base = block * block_size
            status, num_pkts, first = block_hdr(ring, base + BLOCK_HDR_OFFSET)
            if not status & TP_STATUS_USER:
                if batch:
                    self._offer(queue, batch)
                    batch = []
                now = time.monotonic()
                if now >= next_stats:
                    self._read_stats()
                    next_stats = now + 0.5
                # The timeout lets stop() end the thread even when no packet comes.
                for _fd, event in poller.poll(100):
                    if event & select.POLLERR and not self._socket_error():
                        return
                continue
            batch = walk(queue, batch, base + first, num_pkts)
            set_status(ring, base + BLOCK_HDR_OFFSET, TP_STATUS_KERNEL)
            block = block + 1 if block + 1 < block_nr else 0
            if time.monotonic() >= next_stats:
                self._read_stats()
                next_stats = time.monotonic() + 0.5
        # Stopping: still take what the kernel has already handed over.
        for _ in range(block_nr):
            base = block * block_size
            status, num_pkts, first = block_hdr(ring, base + BLOCK_HDR_OFFSET)
            if not status & TP_STATUS_USER:
                break
            batch = walk(queue, batch, base + first, num_pkts)
            set_status(ring, base + BLOCK_HDR_OFFSET, TP_STATUS_KERNEL)
            block = block + 1 if block + 1 < block_nr else 0
        if batch:
            self._offer(queue, batch)

    def _socket_error(self) -> bool:
        """Read (and so clear) the socket's pending error; False when capture cannot go on.

        The kernel flags ENETDOWN when the interface goes down; the socket keeps working once it
        is up again. When the interface is deleted, nothing will ever arrive: stop with a reason.
        """
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if self.ifindex:
            try:
                gone = socket.if_nametoindex(self.interface) != self.ifindex
            except OSError:
                gone = True
            if gone:
                self.error = f"interface {printable(self.interface)} went away"
                return False
        self.link_down = err == errno.ENETDOWN
        return True

    def _offer(self, queue: BatchQueue, batch: Batch) -> None:
        # `received` counts frames handed over; the queue counts the ones it had to drop.
        self.received += len(batch)
        queue.offer(batch)

    def _walk_block(self, queue: BatchQueue, batch: Batch, offset: int, count: int) -> Batch:
        """Turn the `count` packets of one block into frames; kept flat for speed."""
        ring = self.ring
        hdr = PKT_HDR.unpack_from
        linktype = self.linktype
        snaplen = self.snaplen
        batch_size = self.batch_size
        loop_indexes = self._loop_indexes
        skip_outgoing = bool(loop_indexes)
        single_loop = self.ifindex != 0
        cooked = self.cooked
        filt = self._userspace_filter
        append = batch.append
        ifindex_at = I32.unpack_from
        for _ in range(count):
            next_off, sec, nsec, caplen, wirelen, status, mac, _net = hdr(ring, offset)
            # On loopback each packet passes twice (sent, then received): keep the received copy.
            if (
                skip_outgoing
                and ring[offset + PKTTYPE_OFFSET] == PACKET_OUTGOING
                and (single_loop or ifindex_at(ring, offset + IFINDEX_OFFSET)[0] in loop_indexes)
            ):
                offset += next_off
                continue
            start = offset + mac
            data = ring[start : start + (caplen if caplen < snaplen else snaplen)]
            if cooked:
                data, wirelen = self._cook(offset, data, wirelen)
                if filt is not None and not filt.matches(data, wirelen):
                    offset += next_off
                    continue
            elif status & TP_STATUS_VLAN_VALID and linktype == LINKTYPE_ETHERNET:
                data, wirelen = _reinsert_vlan(ring, offset, status, data, wirelen)
            append((linktype, sec + nsec * 1e-9, data, wirelen))
            if len(batch) >= batch_size:
                self._offer(queue, batch)
                batch = []
                append = batch.append
            offset += next_off
        return batch

    def _cook(self, offset: int, data: bytes, wirelen: int) -> tuple[bytes, int]:
        """Prefix a Linux cooked (SLL) header built from the packet's sockaddr_ll, as libpcap
        does for `any` and for hardware types without a usable link header."""
        sll = SLL.unpack_from(self.ring, offset + SLL_OFFSET)
        _, protocol, _, hatype, pkttype, halen, addr = sll
        head = struct.pack(">HHH8s", pkttype, hatype, halen, addr) + U16.pack(protocol)
        return head + data, wirelen + len(head)


def _reinsert_vlan(
    ring: mmap.mmap, offset: int, status: int, data: bytes, wirelen: int
) -> tuple[bytes, int]:
    """The kernel strips 802.1Q tags into the ring header (hardware offload); put the tag back
    into the frame so it looks as it did on the wire."""
    tci = U16.unpack_from(ring, offset + VLAN_TCI_OFFSET)[0]
    tpid = 0x8100
    if status & TP_STATUS_VLAN_TPID_VALID:
        tpid = U16.unpack_from(ring, offset + VLAN_TPID_OFFSET)[0] or 0x8100
    tag = struct.pack(">HH", tpid, tci)
    return data[:12] + tag + data[12:], wirelen + 4


SO_ATTACH_FILTER = 26


def live_filter_code(expression: str, interface: str, linktype: int) -> bytes | None:
    """The filter compiled by libpcap for a live handle on `interface`, as raw instructions.

    A live Linux handle lets libpcap use the kernel's ancillary loads: the kernel moves 802.1Q tags
    out of the frame before filters run, so `vlan 100` only works in the kernel when compiled
    this way (a "dead" handle compiles a test on the frame's bytes, which never matches).
    None when libpcap cannot open the interface; the caller then uses the portable program.
    """
    try:
        from scapy.arch.common import bpf_program
        from scapy.libs import winpcapy as pcap
    except (ImportError, OSError):
        return None
    err = ctypes.create_string_buffer(pcap.PCAP_ERRBUF_SIZE)
    handle = pcap.pcap_open_live(interface.encode(), 65535, 0, 0, err)
    if not handle:
        return None
    try:
        if pcap.pcap_datalink(handle) != linktype:
            return None
        prog = bpf_program()
        if pcap.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, -1) != 0:
            return None
        try:
            return ctypes.string_at(prog.bf_insns, prog.bf_len * 8)
        finally:
            pcap.pcap_freecode(ctypes.byref(prog))
    finally:
        pcap.pcap_close(handle)


def attach_code(sock: socket.socket, code: bytes) -> None:
    """SO_ATTACH_FILTER with raw BPF instructions (struct sock_fprog {len; *filter})."""
    insns = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(insns))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def bind_packet_socket(sock: socket.socket, ifindex: int) -> None:
    """Bind to ETH_P_ALL on `ifindex` (0: every interface, which Python's bind() cannot name)."""
    sll = struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(ETH_P_ALL), ifindex, 0, 0, 0, b"")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.bind(sock.fileno(), sll, len(sll)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
