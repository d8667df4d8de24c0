"""Kernel cost of a send as a function of the order sockets are written in (for docs/fanout.md).

Opens N loopback TCP connections in one process pinned to one CPU, then writes one 175-byte message
to every accepted socket, in creation order, in a shuffled order and in the orders the servers were
seen to use (`order-*.json` written by bench/fanout_probe.py: subscriber fds in fan-out order; fd
order is creation order, so their rank order is replayed here). CPU time per send (process time:
the sender's syscall and, on loopback, the receiver's TCP processing in the same softirq) is printed
for each, several rounds interleaved; the receiving sides are drained between rounds.

  .venv/bin/python bench/fanout_order.py [--n 8000] [ORDER.json ...]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import socket
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=8000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument("orders", nargs="*", type=Path)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * args.n + 100), hard))
    os.sched_setaffinity(0, [args.cpu])
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4096)
    pairs = []
    try:
        for _ in range(args.n):
            c = socket.create_connection(lst.getsockname())
            s, _ = lst.accept()
            for sock in (s, c):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pairs.append((s, c))
        orders = {"creation order": list(range(args.n)), "shuffled": random.sample(range(args.n), args.n)}
        for path in args.orders:
            fds = json.loads(path.read_text())
            rank = {fd: i for i, fd in enumerate(sorted(fds))}       # fd order = creation order
            scale = args.n / len(fds)
            orders[f"{path.parent.name}/{path.name}"] = [min(args.n - 1, int(rank[fd] * scale)) for fd in fds]
        msg = b"x" * 175
        results: dict[str, list[float]] = {k: [] for k in orders}
        for _ in range(args.rounds):
            for name, order in orders.items():
                socks = [pairs[i][0] for i in order]
                t0 = time.process_time()
                for s in socks:
                    s.send(msg)
                results[name].append((time.process_time() - t0) / len(socks) * 1e6)
                for _s, c in pairs:                                   # drain the receivers
                    try:
                        while c.recv(65536):
                            pass
                    except BlockingIOError:
                        pass
        for name, us in results.items():
            us.sort()
            print(f"{name:<48} median {us[len(us) // 2]:5.2f} µs/send  (min {us[0]:.2f}, max {us[-1]:.2f})")
    finally:
        for s, c in pairs:
            s.close()
            c.close()
        lst.close()


if __name__ == "__main__":
    main()
