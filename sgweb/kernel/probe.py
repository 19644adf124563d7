"""Single-packet traffic probes, run as a script inside a namespace.

Kept free of sgweb imports so it runs as ``python -I probe.py ...`` in any namespace without the
project on the path. Each probe sends exactly one packet (an ICMP echo, a TCP SYN via connect(),
a UDP datagram) and waits at most ``--timeout`` for the answer, so per-rule counters move by a
known amount. Results are one JSON object on stdout; the exit status is 0 when the traffic got
through (echo reply / connection / datagram sent), 1 when it did not.

Using our own probes instead of ping/nc means no extra packages and full control of the source
address and port (DHCP probes need udp source port 67 or 68).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import threading
import time

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _icmp_packet(v6: bool, icmp_type: int, code: int, ident: int, sequence: int) -> bytes:
    payload = b"sgweb-probe" + bytes(45)
    packet = struct.pack("!BBHHH", icmp_type, code, 0, ident, sequence) + payload
    if v6:  # the kernel fills in the ICMPv6 checksum itself (it needs the pseudo-header)
        return packet
    checksum = _checksum(packet)
    return struct.pack("!BBHHH", icmp_type, code, checksum, ident, sequence) + payload


def _await_echo_reply(
    sock: socket.socket, v6: bool, dst: str, ident: int, sequence: int, timeout: float
) -> bool:
    started = time.monotonic()
    reply_type = ICMPV6_ECHO_REPLY if v6 else ICMP_ECHO_REPLY
    while (remaining := timeout - (time.monotonic() - started)) > 0:
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready:
            return False
        data, peer = sock.recvfrom(65535)
        icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
        kind, _code, _sum, got_ident, got_sequence = struct.unpack("!BBHHH", icmp[:8])
        if (kind, got_ident, got_sequence, peer[0]) == (reply_type, ident, sequence, dst):
            return True
    return False


def icmp_echo(
    dst: str,
    src: str | None,
    timeout: float,
    icmp_type: int | None = None,
    icmp_code: int = 0,
    count: int = 1,
    interval: float = 0.05,
) -> dict[str, object]:
    """`count` echo requests of one identifier (one conntrack flow, like `ping -c`), each
    waiting for its reply; or, with another `icmp_type` (a router advertisement, say), that
    message sent once with nothing to wait for. ok: every request was answered."""
    family = _family(dst)
    v6 = family == socket.AF_INET6
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    ident = os.getpid() & 0xFFFF
    echo_type = ICMPV6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
    request_type = echo_type if icmp_type is None else icmp_type
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        if src:
            sock.bind((src, 0))
        if v6 and request_type == 134:
            # Router advertisements are only valid with hop limit 255 (RFC 4861).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        if request_type != echo_type:
            sock.sendto(_icmp_packet(v6, request_type, icmp_code, ident, 1), (dst, 0))
            return {"ok": True, "sent": True}
        answered = []
        sent_at = time.time()  # when the first request left (latency measurements)
        for sequence in range(1, count + 1):
            if sequence > 1:
                time.sleep(interval)
            else:
                sent_at = time.time()
            sock.sendto(_icmp_packet(v6, request_type, icmp_code, ident, sequence), (dst, 0))
            answered.append(_await_echo_reply(sock, v6, dst, ident, sequence, timeout))
        return {"ok": all(answered), "answered": answered, "sent_at": sent_at}


def tcp_connect(dst: str, port: int, src: str | None, timeout: float) -> dict[str, object]:
    family = _family(dst)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # One SYN only: the first retransmission comes after 1 s, so keep timeouts below that.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
        sock.settimeout(timeout)
        if src:
            sock.bind((src, 0))
        started = time.monotonic()
        try:
            sock.connect((dst, port))
        except (TimeoutError, OSError) as exc:
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True, "rtt_s": time.monotonic() - started}


def udp_send(
    dst: str, port: int, src: str | None, sport: int, timeout: float, expect_reply: bool
) -> dict[str, object]:
    family = _family(dst)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if src or sport:
            sock.bind((src or ("::" if family == socket.AF_INET6 else "0.0.0.0"), sport))
        sock.sendto(b"sgweb-probe", (dst, port))
        if not expect_reply:
            return {"ok": True}
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return {"ok": False}
        data, _peer = sock.recvfrom(65535)
        return {"ok": data == b"sgweb-probe"}


def stream(dst: str, port: int, interval: float, timeout: float) -> None:
    """Keep one TCP connection and exchange a byte every `interval`; one JSON line per try.

    Shows whether an *established* connection survives a firewall change (it does until its
    conntrack entry is deleted, which is why removing a rule must also flush conntrack)."""
    with socket.create_connection((dst, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        print(json.dumps({"connected": True}), flush=True)
        sequence = 0
        while True:
            sequence += 1
            try:
                sock.sendall(b"x")
                ok = sock.recv(1) == b"x"
            except OSError:
                ok = False
            print(json.dumps({"seq": sequence, "ok": ok}), flush=True)
            time.sleep(interval)


def _echo_connection(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


def listen(protocol: str, address: str, port: int, echo: bool) -> None:
    """Accept connections / datagrams forever, one JSON line per arrival (flushed)."""
    family = _family(address)
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(64)
        print(json.dumps({"listening": port}), flush=True)
        while True:
            if kind == socket.SOCK_STREAM:
                conn, peer = sock.accept()
                if echo:
                    threading.Thread(target=_echo_connection, args=(conn,), daemon=True).start()
                else:
                    conn.close()
            else:
                data, peer = sock.recvfrom(65535)
                if echo:
                    sock.sendto(data, peer)
            print(json.dumps({"from": peer[0], "sport": peer[1]}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="probe")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("icmp", "tcp", "udp"):
        command = sub.add_parser(name)
        command.add_argument("dst")
        command.add_argument("--src")
        command.add_argument("--timeout", type=float, default=0.5)
        if name != "icmp":
            command.add_argument("--port", type=int, required=True)
        else:
            command.add_argument("--type", type=int, dest="icmp_type")
            command.add_argument("--code", type=int, dest="icmp_code", default=0)
            command.add_argument("--count", type=int, default=1)
        if name == "udp":
            command.add_argument("--sport", type=int, default=0)
            command.add_argument("--expect-reply", action="store_true")
    streamer = sub.add_parser("stream")
    streamer.add_argument("dst")
    streamer.add_argument("--port", type=int, required=True)
    streamer.add_argument("--interval", type=float, default=0.1)
    streamer.add_argument("--timeout", type=float, default=0.3)
    listener = sub.add_parser("listen")
    listener.add_argument("protocol", choices=("tcp", "udp"))
    listener.add_argument("--port", type=int, required=True)
    listener.add_argument("--address", default="::")
    listener.add_argument("--echo", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "listen":
        listen(args.protocol, args.address, args.port, args.echo)
        return 0
    if args.command == "stream":
        stream(args.dst, args.port, args.interval, args.timeout)
        return 0
    if args.command == "icmp":
        result = icmp_echo(
            args.dst, args.src, args.timeout, args.icmp_type, args.icmp_code, args.count
        )
    elif args.command == "tcp":
        result = tcp_connect(args.dst, args.port, args.src, args.timeout)
    else:
        result = udp_send(
            args.dst, args.port, args.src, args.sport, args.timeout, args.expect_reply
        )
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
