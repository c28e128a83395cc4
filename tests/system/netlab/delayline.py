#!/usr/bin/env python3
"""Userspace L2 'netem' replacement: forwards every frame between two interfaces
after a fixed one-way delay. Used because this kernel has no sch_netem.
Copied unchanged in behaviour from the shared netlab example (shared/netlab/delayline.py).
usage: delayline.py IF1 IF2 DELAY_MS
"""

import collections
import select
import socket
import sys
import time

ETH_P_ALL, PACKET_IGNORE_OUTGOING, SOL_PACKET, PACKET_OUTGOING = 3, 23, 263, 4
if1, if2, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000.0
socks = {}
for name in (if1, if2):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass
    s.bind((name, ETH_P_ALL))
    s.setblocking(False)
    socks[name] = s
peer = {socks[if1]: socks[if2], socks[if2]: socks[if1]}
q = collections.deque()  # (due, out_sock, frame) -- FIFO is enough for a constant delay
while True:
    timeout = max(0.0, q[0][0] - time.monotonic()) if q else 1.0
    r, _, _ = select.select(list(peer), [], [], timeout)
    now = time.monotonic()
    for s in r:
        while True:
            try:
                frame, addr = s.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            q.append((now + delay, peer[s], frame))
    now = time.monotonic()
    while q and q[0][0] <= now:
        _, out, frame = q.popleft()
        try:
            out.send(frame)
        except OSError:
            pass
