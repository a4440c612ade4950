#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""py_pair.py - a Python client/server pair on the loopback fast path.

Both ends opt in with the loopfast socket option, the way a program that
knows about loopfast does it (no shim, no ioctl):

    sock.setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH, 1)

on the listening socket before listen() (every accepted socket inherits it)
and on the client socket before connect(). They exchange a message, then
each end prints LOOPFAST_STATE (getsockopt(SOL_LOOPFAST, LOOPFAST_STATE)):
1 when the connection is paired on the fast path, 0 when it took the
regular TCP path.

Run it where loopfastd covers this process's cgroup (by default loopfastd
attaches to the cgroup v2 root, so any process):

    python3 examples/py_pair.py [--host 127.0.0.1|::1] [--message TEXT]

Exit status: 0 fast on both ends, 1 regular path, 2 loopfast not available
here (ENOPROTOOPT), 3 any other error.
"""

import argparse
import errno
import socket
import struct
import sys
import threading

SOL_LOOPFAST = 0x4C46  # include/loopfast.h
LOOPFAST_FAST_PATH = 1  # int, set/get: opt this socket in
LOOPFAST_STATE = 2  # int, get only: 1 while paired fast

NOT_AVAILABLE = """\
setsockopt(SOL_LOOPFAST=0x4c46, LOOPFAST_FAST_PATH) failed with ENOPROTOOPT:
the kernel itself does not know this option level; loopfastd's BPF hooks
answer it, and only for processes in the cgroup loopfastd is attached to.
So either loopfastd is not running, or it is attached to a cgroup this
process is not in (loopfastd --cgroup DIR covers DIR and below).

  sudo loopfastctl status        is loopfastd up, which cgroup?
  sudo loopfastctl check         does this kernel have what loopfast needs?
  sudo systemctl start loopfast  (or: sudo loopfastd)

Without loopfastd the same program still works, on plain TCP: a program
that wants to run either way should treat ENOPROTOOPT as "no fast path".
"""


def opt_in(sock, what):
    """Opt sock in; raises OSError (ENOPROTOOPT: loopfast not here)."""
    sock.setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH, 1)
    on = struct.unpack("i", sock.getsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH, 4))[0]
    print(f"{what}: opted in (LOOPFAST_FAST_PATH reads back {on})")


def state(sock):
    return struct.unpack("i", sock.getsockopt(SOL_LOOPFAST, LOOPFAST_STATE, 4))[0]


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def serve(listener, result):
    """Accept one connection, echo the message back upper-cased."""
    try:
        conn, peer = listener.accept()
        with conn:
            conn.settimeout(10)
            (n,) = struct.unpack("!I", recv_exactly(conn, 4))
            msg = recv_exactly(conn, n)
            reply = msg.upper()
            conn.sendall(struct.pack("!I", len(reply)) + reply)
            # The client's "done" byte: it read the reply and its state.
            recv_exactly(conn, 1)
            result["state"] = state(conn)
            result["peer"] = peer
            conn.sendall(b"k")
    except Exception as e:  # reported by the main thread
        result["error"] = e


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="loopback address (127.0.0.1, ::1)")
    ap.add_argument("--message", default="hello over the loopback fast path")
    args = ap.parse_args()

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    result = {}
    try:
        listener = socket.socket(family, socket.SOCK_STREAM)
        with listener:
            listener.bind((args.host, 0))
            opt_in(listener, "server")  # before listen()
            listener.listen(1)
            listener.settimeout(10)
            port = listener.getsockname()[1]
            print(f"server: listening on {args.host} port {port}")
            t = threading.Thread(target=serve, args=(listener, result), daemon=True)
            t.start()

            client = socket.socket(family, socket.SOCK_STREAM)
            with client:
                opt_in(client, "client")  # before connect()
                client.settimeout(10)
                client.connect((args.host, port))
                msg = args.message.encode()
                client.sendall(struct.pack("!I", len(msg)) + msg)
                (n,) = struct.unpack("!I", recv_exactly(client, 4))
                reply = recv_exactly(client, n)
                print(f"client: sent {msg.decode()!r}, got {reply.decode()!r}")
                cstate = state(client)
                client.sendall(b"d")
                recv_exactly(client, 1)
            t.join(10)
    except OSError as e:
        if e.errno == errno.ENOPROTOOPT:
            sys.stderr.write(NOT_AVAILABLE)
            return 2
        print(f"py_pair: {e}", file=sys.stderr)
        return 3
    if "error" in result:
        print(f"py_pair: server: {result['error']}", file=sys.stderr)
        return 3
    if "state" not in result:
        print("py_pair: the server thread did not finish", file=sys.stderr)
        return 3

    sstate = result["state"]
    print(f"client: LOOPFAST_STATE {cstate}")
    print(f"server: LOOPFAST_STATE {sstate}")
    if cstate == 1 and sstate == 1:
        print("both ends are on the loopback fast path")
        return 0
    print(
        "the connection took the regular TCP path: see 'loopfastctl stats' for the\n"
        "reason (regular-mode-off: mode is off; regular-veto: a packet filter hook\n"
        "is present, see 'loopfastctl status'; regular-no-heartbeat: loopfastd is\n"
        "not running any more)"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
