"""`python -m bench.livewatchers PORT COOKIE PORT_ID...`: the browsers of `bench.live`.

They run in a process of their own, as browsers do: fifty client threads inside the agent's
process would compete with its counter thread for the interpreter lock at every one of its
netlink calls, which no real agent has to. One websocket per port id; prints `ready N` once
every socket got its `chains` message, then one line per `counters` message:
`<watcher index> <time.monotonic() at arrival> <total packets> <seconds since the agent
published it> <time.time() at arrival>` (both clocks are the machine's, so the parent compares
them with its own). Stops when stdin closes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from bench.wsclient import WsClient


def _watch(client: WsClient, index: int, lock: threading.Lock, stopping: threading.Event) -> None:
    while not stopping.is_set():
        try:
            message = client.receive(timeout=1.0)
        except TimeoutError:
            continue
        except OSError:
            return
        if message.get("type") == "counters":
            arrived, wall = time.monotonic(), time.time()
            total = sum(rule["packets"] for chain in message["chains"] for rule in chain["rules"])
            transit = wall - float(message.get("at") or wall)
            with lock:
                sys.stdout.write(f"{index} {arrived:.6f} {total} {transit:.6f} {wall:.6f}\n")
                sys.stdout.flush()


def main(argv: list[str]) -> int:
    port, cookie, port_ids = int(argv[0]), argv[1], argv[2:]
    clients = []
    for port_id in port_ids:
        client = WsClient("127.0.0.1", port, f"/ws/ports/{port_id}", cookie=cookie)
        client.receive_type("chains", timeout=60)
        clients.append(client)
    lock = threading.Lock()
    stopping = threading.Event()
    threads = [
        threading.Thread(target=_watch, args=(client, index, lock, stopping), daemon=True)
        for index, client in enumerate(clients)
    ]
    sys.stdout.write(f"ready {len(clients)}\n")  # first: counters lines follow it
    sys.stdout.flush()
    for thread in threads:
        thread.start()
    sys.stdin.read()  # until the parent closes it
    stopping.set()
    for client in clients:
        with contextlib.suppress(OSError):
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
