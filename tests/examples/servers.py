#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tests/examples/servers.py — the README's server examples run as a test: each is started on a
free port, talked to over loopback, and stopped with SIGTERM (it must exit 0).

    servers.py ECHO HTTP_HELLO CHAT

  echo        every byte of several messages comes back, on two connections at once
  http_hello  two keep-alive GETs on one connection (the second pipelined) get "Hello, World!"
  chat        a line from one client reaches the other, and its leaving is announced

Each runs with one worker and with two.
"""
import select
import signal
import socket
import subprocess
import sys
import time


WORKERS = "2"


def start(path):
    p = subprocess.Popen([path, "--workers", WORKERS], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        p.kill()
        sys.exit(f"{path}: unexpected first line {line!r}")
    return p, int(line.rsplit(":", 1)[1])


def stop(p, name):
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=30)
    if rc != 0:
        sys.exit(f"{name}: exit status {rc} after SIGTERM")


def recv_until(s, needle, what):
    s.settimeout(30)
    data = b""
    while needle not in data:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"{what}: connection closed before {needle!r}; got {data!r}")
        data += chunk
    return data


def echo(path):
    p, port = start(path)
    a = socket.create_connection(("127.0.0.1", port))
    b = socket.create_connection(("127.0.0.1", port))
    for i, s in enumerate((a, b) * 3):
        msg = (f"message {i} " * (1 + 500 * i)).encode()
        s.sendall(msg)
        got = b""
        s.settimeout(30)
        while len(got) < len(msg):
            got += s.recv(65536)
        if got != msg:
            sys.exit(f"echo: sent {len(msg)} bytes, got back {len(got)} different ones")
    a.close()
    b.close()
    stop(p, "echo")


def http_hello(path):
    p, port = start(path)
    s = socket.create_connection(("127.0.0.1", port))
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(req)
    first = recv_until(s, b"Hello, World!", "http_hello")
    if not first.startswith(b"HTTP/1.1 200 OK"):
        sys.exit(f"http_hello: {first!r}")
    s.sendall(req + req)  # pipelined
    data = recv_until(s, b"Hello, World!", "http_hello")
    while data.count(b"Hello, World!") < 2:
        data += recv_until(s, b"Hello, World!", "http_hello")
    s.close()
    stop(p, "http_hello")


def chat(path):
    p, port = start(path)
    a = socket.create_connection(("127.0.0.1", port))
    b = socket.create_connection(("127.0.0.1", port))
    # Whichever joined the room second is announced to the other (the order of two joins is the
    # scheduler's): once one of them sees "joined", both are in.
    readable, _, _ = select.select([a, b], [], [], 30)
    if not readable:
        sys.exit("chat: no join announced within 30 s")
    recv_until(readable[0], b"joined", "chat")
    a.sendall(b"hello from a\n")
    recv_until(b, b"hello from a\n", "chat")
    a.close()
    recv_until(b, b"left", "chat")
    b.close()
    stop(p, "chat")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    for WORKERS in ("1", "2"):  # one worker: single-threaded mode must serve too
        echo(sys.argv[1])
        http_hello(sys.argv[2])
        chat(sys.argv[3])
        print(f"echo, http_hello, chat with {WORKERS} worker(s): ok")
