#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""peer.py - a Python client and server for the torture runner.

    peer.py server|client xfer [--optin] [--port P]

The client sends 4 MiB of little-endian uint64 counters with non-blocking
send() after select() says writable, half-closes, then reads the server's
4 MiB with blocking recv() until EOF. The server reads the client's bytes
with blocking recv() until EOF, then sends its own with sendall() and
closes. Each side checks every counter. Outcomes go to stdout in the
runner's line protocol (see torture.h).
"""
import array
import random
import select
import socket
import sys

SOL_LOOPFAST = 0x4C46
LOOPFAST_FAST_PATH = 1
LOOPFAST_STATE = 2
TOTAL = 4 << 20
C2S_BASE = 0
S2C_BASE = 1 << 40


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def counters(base, n):
    return array.array("Q", range(base, base + n // 8)).tobytes()


def first_bad(data, base):
    want = counters(base, len(data) - len(data) % 8) + bytes(len(data) % 8)
    if data == want[: len(data)]:
        return -1
    for i, (a, b) in enumerate(zip(data, want)):
        if a != b:
            return i
    return min(len(data), len(want))


def new_socket(optin):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if optin:
        try:
            s.setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH, 1)
        except OSError as e:
            out("i optin_errno %d" % e.errno)
    return s


def state(s):
    try:
        return s.getsockopt(SOL_LOOPFAST, LOOPFAST_STATE)
    except OSError:
        return -1


def recv_all(s, base, rng):
    """Blocking recv() of random sizes until EOF."""
    parts, err = [], None
    try:
        while True:
            b = s.recv(rng.choice((1, 100, 4096, 65536, 1 << 20)))
            if not b:
                break
            parts.append(b)
    except OSError as e:
        err = e
    data = b"".join(parts)
    out("k rx.bytes %d" % len(data))
    out("i rx.want %d" % TOTAL)
    out("k rx.bad %d" % first_bad(data, base))
    out("k rx.eof %d" % (0 if err else 1))
    out("k rx.err %s" % (err.errno if err else 0))
    if err:
        out("x recv: %s" % err)


def send_select(s, data, rng):
    """Non-blocking send() of random sizes after select() says writable."""
    s.setblocking(False)
    off, err = 0, None
    try:
        while off < len(data):
            select.select([], [s], [], 5.0)
            n = rng.choice((7, 4096, 65536, 1 << 20, 4 << 20))
            try:
                off += s.send(data[off : off + n])
            except BlockingIOError:
                pass
    except OSError as e:
        err = e
    s.setblocking(True)
    out("k tx.bytes %d" % off)
    out("i tx.want %d" % len(data))
    out("k tx.err %s" % (err.errno if err else 0))


def server(optin, rng):
    ls = new_socket(optin)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    out("port %d" % ls.getsockname()[1])
    s, _ = ls.accept()
    recv_all(s, C2S_BASE, rng)
    try:
        s.sendall(counters(S2C_BASE, TOTAL))
        out("k tx.err 0")
    except OSError as e:
        out("k tx.err %d" % e.errno)
    out("i state.0 %d" % state(s))
    s.close()
    ls.close()


def client(optin, port, rng):
    s = new_socket(optin)
    s.connect(("127.0.0.1", port))
    out("conn 0")
    send_select(s, counters(C2S_BASE, TOTAL), rng)
    s.shutdown(socket.SHUT_WR)
    recv_all(s, S2C_BASE, rng)
    out("i state.0 %d" % state(s))
    s.close()


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: peer.py server|client xfer [--optin] [--port P]\n")
        return 2
    optin = "--optin" in argv
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 0
    rng = random.Random(port)
    if argv[1] == "server":
        server(optin, rng)
    else:
        client(optin, port, rng)
    out("end")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
