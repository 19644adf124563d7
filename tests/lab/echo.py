"""A long-lived TCP echo server and client for "existing connections are cut" checks.

Run inside namespaces as ``python -I echo.py serve PORT`` / ``python -I echo.py client ADDR PORT``.
The client sends a byte every 0.1 s on ONE connection and prints one JSON line per exchange.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time


def serve(port: int) -> None:
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", port))
    server.listen(16)

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(64):
                conn.sendall(data)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def client(address: str, port: int) -> None:
    sock = socket.create_connection((address, port), timeout=1)
    sock.settimeout(0.3)
    print(json.dumps({"connected": True, "t": time.time()}), flush=True)
    while True:
        try:
            sock.sendall(b"x")
            ok = sock.recv(1) == b"x"
        except OSError:
            ok = False
        print(json.dumps({"ok": ok, "t": time.time()}), flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        client(sys.argv[2], int(sys.argv[3]))
