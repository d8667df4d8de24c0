"""The subscriber side of bench/fanout.py: one process holding N/K board-feed WebSocket connections.

Run by the driver as `python bench/fanout_client.py --host H --port P --path /ws/branches/1 --n N`;
it talks to the driver over stdin/stdout, one JSON line per step:
  -> {"event": "ready", ...}         every connection open and its first message (snapshot) read
  <- go                              the measured phase starts (CPU is marked)
  <- finish PATH                     PATH: the driver's JSON {first, last, send: {seq: send time}}
  -> {"event": "drained", ...}       every connection has seq `last` (or the drain timeout passed)
  -> {"event": "result", ...}        gaps, duplicates, order, closes and latency histograms

The lean reader (default) is a plain epoll loop, no asyncio: non-blocking sockets, the upgrade
request written by hand, server frames (never masked) parsed in place, pings answered with a
masked pong. Each socket asks for kernel receive timestamps (SO_TIMESTAMPNS): a read returns the
time the last byte it returns reached the socket (CLOCK_REALTIME, turned into CLOCK_MONOTONIC with
the offset read at the same moment), so a client that is busy elsewhere does not add its own lag
to the figures. Only the last frame of a read gets an exact time; earlier frames of the same read
(the client read late and several had queued) get that time too, an upper bound, flagged
`inexact`. The time the client actually read the bytes (time.monotonic()) is kept as well.

`--impl websockets` uses websockets' own asyncio client instead (arrival = when `recv` returns):
slower, for cross-checking the lean reader at small N.
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import resource
import select
import socket
import struct
import sys
import time
import zlib
from array import array
from collections import Counter, deque

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)      # Linux; SCM_TIMESTAMPNS has the same value
SEQ = re.compile(rb'"seq":(\d+)')
CONNECTING, HANDSHAKE, OPEN, DEAD = range(4)


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, need), hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


# -- latency histogram (clients build it, the driver merges) ------------------------------------------

def bucket(us: int) -> int:
    """Lower bound of a latency's bin in µs: 10 µs bins to 5 ms, 100 µs to 200 ms, then 1 ms."""
    if us < 5000:
        return us - us % 10
    if us < 200_000:
        return us - us % 100
    return us - us % 1000


def hist_pcts(hist: dict) -> dict:
    """Percentiles (ms, nearest rank, to the bin's lower bound) of a merged histogram."""
    total = sum(hist.values())
    out = {"n": total}
    marks = [("p50", .5), ("p90", .9), ("p99", .99), ("p999", .999)]
    if not total:
        return {**out, **{k: float("nan") for k, _ in marks}, "max": float("nan"), "mean": float("nan")}
    seen, j = 0, 0
    for k in sorted(hist):
        seen += hist[k]
        while j < len(marks) and seen >= math.ceil(marks[j][1] * total):
            out[marks[j][0]] = k / 1000
            j += 1
    out["max"] = max(hist) / 1000
    out["mean"] = sum(k * c for k, c in hist.items()) / total / 1000
    return out


# -- the lean reader ----------------------------------------------------------------------------------

class Conn:
    __slots__ = ("sock", "fd", "slot", "state", "buf", "deadline", "start_seq", "seqs", "times", "reads",
                 "inexact", "close_code", "bad", "inflate")

    def __init__(self, sock: socket.socket, slot: int, deadline: float):
        self.sock, self.fd, self.slot, self.deadline = sock, sock.fileno(), slot, deadline
        self.state = CONNECTING
        self.buf = b""
        self.start_seq = None
        self.seqs = array("i")
        self.times = array("d")       # kernel arrival, as CLOCK_MONOTONIC
        self.reads = array("d")       # when this process read it
        self.inexact = array("b")     # 1: not the last frame of its read (its time is an upper bound)
        self.close_code = None
        self.bad = 0
        self.inflate = None           # permessage-deflate (--deflate): made at the first compressed frame

    @property
    def lost(self) -> bool:
        return self.state == DEAD

    def read(self, offset: float) -> int:
        """Read what is there; returns -1 when the connection ended, else frames parsed."""
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(262144, 64)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return -1
        if not data:
            return -1
        now = time.monotonic()
        arrival = now
        for _level, kind, payload in anc:
            if kind == SO_TIMESTAMPNS and len(payload) >= 16:
                sec, ns = struct.unpack_from("qq", payload)
                arrival = sec + ns * 1e-9 - offset
        buf = self.buf + data if self.buf else data
        if self.start_seq is None:                               # the HTTP answer to the upgrade
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return 0
            if b" 101 " not in buf[:buf.find(b"\r\n")]:
                return -1
            buf = buf[end + 4:]
            self.buf = b""
            self.start_seq = -1                                  # upgraded; first message not yet read
        i, n, got = 0, len(buf), 0
        seqs, times, inexact = self.seqs, self.times, self.inexact
        while n - i >= 2:
            ln = buf[i + 1] & 0x7F
            if ln < 126:
                hl = 2
            elif ln == 126:
                if n - i < 4:
                    break
                ln, hl = (buf[i + 2] << 8) | buf[i + 3], 4
            else:
                if n - i < 10:
                    break
                ln, hl = int.from_bytes(buf[i + 2:i + 10], "big"), 10
            end = i + hl + ln
            if end > n:
                break
            op = buf[i] & 0x0F
            if op == 1 and buf[i] & 0x40:                        # RSV1: compressed (--deflate), read apart
                if self.inflate is None:
                    self.inflate = zlib.decompressobj(-15)
                text = self.inflate.decompress(buf[i + hl:end] + b"\x00\x00\xff\xff")
                m = SEQ.search(text)
                if self.start_seq == -1:
                    self.start_seq = json.loads(text)["seq"]
                    self.state = OPEN
                elif m is None:
                    self.bad += 1
                else:
                    seqs.append(int(m.group(1)))
                    times.append(arrival)
                    inexact.append(1)
                    got += 1
            elif op == 1:
                if self.start_seq == -1:                         # the snapshot (or the bare hello)
                    self.start_seq = json.loads(buf[i + hl:end])["seq"]
                    self.state = OPEN
                else:
                    # board frames end with "seq":N}; anything else is searched
                    j = buf.rfind(b":", i + hl, end)
                    if j > 5 and buf[j - 5:j] == b'"seq"' and buf[end - 1] == 0x7D:
                        seq = int(buf[j + 1:end - 1])
                    else:
                        m = SEQ.search(buf, i + hl, end)
                        if m is None:
                            self.bad += 1
                            i = end
                            continue
                        seq = int(m.group(1))
                    seqs.append(seq)
                    times.append(arrival)
                    inexact.append(1)
                    got += 1
            elif op == 9:                                        # ping: a masked pong, zero mask key
                payload = buf[i + hl:end]
                try:
                    self.sock.send(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
                except OSError:
                    pass
            elif op == 8:
                self.close_code = int.from_bytes(buf[i + hl:i + hl + 2], "big") if ln >= 2 else 1005
                return -1
            elif op != 10:
                self.bad += 1                                    # fragments or binary: not expected
            i = end
        if got:
            inexact[-1] = 0                                      # the last frame of the read: exact
            self.reads.extend([now] * got)
        self.buf = buf[i:] if i < n else b""
        return got


def lean_client(args) -> int:
    raise_nofile(args.n + 100)
    if args.nice:
        os.nice(args.nice)
    ep = select.epoll()
    # --deflate: offer permessage-deflate as browsers do (the server may take it: a zlib context each)
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if args.deflate else ""
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\n{offer}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ").encode()
    by_fd: dict[int, Conn] = {}
    opened: list[Conn] = []
    failures: Counter = Counter()
    attempts = [0] * args.n
    queue: deque = deque(range(args.n))
    retry: list[tuple[float, int]] = []
    inflight: set[Conn] = set()
    failed = 0
    started = time.monotonic()
    phase_end = started + args.connect_timeout

    def drop(c: Conn, why: str) -> None:
        nonlocal failed
        failures[why] += 1
        inflight.discard(c)
        by_fd.pop(c.fd, None)
        try:
            ep.unregister(c.fd)
        except (OSError, ValueError):
            pass
        c.sock.close()
        c.state = DEAD
        attempts[c.slot] += 1
        if attempts[c.slot] < args.retries:
            retry.append((time.monotonic() + min(0.2 * 2 ** attempts[c.slot], 3.0), c.slot))
        else:
            failed += 1

    while len(opened) + failed < args.n and time.monotonic() < phase_end:
        now = time.monotonic()
        if retry:
            due = [r for r in retry if r[0] <= now]
            if due:
                retry[:] = [r for r in retry if r[0] > now]
                queue.extend(slot for _, slot in due)
        while queue and len(inflight) < args.concurrency:
            slot = queue.popleft()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Conn(s, slot, now + 30)
            err = s.connect_ex((args.host, args.port))
            if err not in (0, 115):                               # EINPROGRESS
                s.close()
                failures[os.strerror(err)] += 1
                attempts[slot] += 1
                if attempts[slot] < args.retries:
                    retry.append((now + 0.5, slot))
                else:
                    failed += 1
                continue
            by_fd[c.fd] = c
            inflight.add(c)
            ep.register(c.fd, select.EPOLLOUT)
        offset = time.time() - time.monotonic()
        for fd, ev in ep.poll(0.02):
            c = by_fd.get(fd)
            if c is None:
                continue
            if c.state == CONNECTING:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err or ev & (select.EPOLLERR | select.EPOLLHUP):
                    drop(c, os.strerror(err) if err else "hangup")
                    continue
                key = base64.b64encode(os.urandom(16))
                try:
                    c.sock.send(request + key + b"\r\n\r\n")
                except OSError as e:
                    drop(c, type(e).__name__)
                    continue
                c.state = HANDSHAKE
                ep.modify(fd, select.EPOLLIN)
                continue
            r = c.read(offset)
            if r < 0:
                drop(c, f"closed {c.close_code}" if c.close_code else "lost during handshake")
            elif c.state == OPEN and c in inflight:
                inflight.discard(c)
                opened.append(c)
        now = time.monotonic()
        for c in [c for c in inflight if c.deadline < now]:
            drop(c, "timeout")
    for c in list(inflight):
        drop(c, "connect phase over")
    emit({"event": "ready", "connected": len(opened), "failed": args.n - len(opened), "failures": dict(failures),
          "connect_s": round(time.monotonic() - started, 2)})

    # -- listening: frames, and the driver's commands on stdin
    ep.register(0, select.EPOLLIN)
    pending = b""
    cpu_go = wall_go = None
    sendmap = None
    drain_end = checked = 0.0
    while True:
        offset = time.time() - time.monotonic()
        for fd, _ev in ep.poll(0.05):
            if fd == 0:
                chunk = os.read(0, 65536)
                if not chunk:
                    return 1                                      # the driver went away
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    cmd = line.decode().strip()
                    if cmd == "go":
                        cpu_go, wall_go = sum(os.times()[:2]), time.monotonic()
                        emit({"event": "going", "frames_before": sum(len(c.seqs) for c in opened)})
                    elif cmd.startswith("finish "):
                        with open(cmd.split(" ", 1)[1]) as f:
                            sendmap = json.load(f)
                        drain_end = time.monotonic() + args.drain
                continue
            c = by_fd.get(fd)
            if c is None:
                continue
            if c.read(offset) < 0:
                c.state = DEAD
                by_fd.pop(fd, None)
                ep.unregister(fd)
                c.sock.close()
        if sendmap is not None:
            now = time.monotonic()
            if now - checked > 0.02 or now > drain_end:
                checked = now
                last = sendmap["last"]
                if now > drain_end or all(c.state == DEAD or (c.seqs and c.seqs[-1] >= last) for c in opened):
                    break
    drained = time.monotonic()
    cpu_end = sum(os.times()[:2])
    emit({"event": "drained", "t": drained, "timed_out": drained >= drain_end})
    emit({"event": "result", **analyse(opened, sendmap), "cpu_s": cpu_end - (cpu_go or cpu_end),
          "wall_s": drained - (wall_go or drained), "connect_failures": dict(failures),
          "failed": args.n - len(opened)})
    for c in opened:
        if c.state != DEAD:
            c.sock.close()
    return 0


# -- websockets' own client (cross-check) -------------------------------------------------------------

class WsConn:
    def __init__(self):
        self.start_seq = None
        self.seqs, self.times, self.reads, self.inexact = array("i"), array("d"), array("d"), array("b")
        self.close_code = None
        self.state = OPEN
        self.bad = 0

    @property
    def lost(self) -> bool:
        return self.state == DEAD

    async def run(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed
        try:
            async for msg in ws:
                now = time.monotonic()
                m = SEQ.search(msg.encode() if isinstance(msg, str) else msg)
                if m is None:
                    self.bad += 1
                    continue
                self.seqs.append(int(m.group(1)))
                self.times.append(now)
                self.reads.append(now)
                self.inexact.append(0)
        except ConnectionClosed:
            pass
        self.close_code = ws.close_code
        self.state = DEAD


async def ws_client(args) -> int:
    import asyncio

    from websockets.asyncio.client import connect

    raise_nofile(args.n + 100)
    if args.nice:
        os.nice(args.nice)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    sem = asyncio.Semaphore(args.concurrency)
    conns: list = []
    failures: Counter = Counter()
    tasks = []

    async def open_one() -> None:
        for attempt in range(args.retries):
            try:
                async with sem:
                    ws = await asyncio.wait_for(connect(f"ws://{args.host}:{args.port}{args.path}", compression=None,
                                                        max_queue=None, open_timeout=30, ping_interval=None,
                                                        close_timeout=1), 35)
                    first = await asyncio.wait_for(ws.recv(), 30)
                c = WsConn()
                c.start_seq = json.loads(first)["seq"]
                tasks.append(asyncio.create_task(c.run(ws)))
                conns.append(c)
                return
            except Exception as e:
                failures[type(e).__name__] += 1
                await asyncio.sleep(min(0.2 * 2 ** attempt, 3))

    await asyncio.gather(*(open_one() for _ in range(args.n)))
    emit({"event": "ready", "connected": len(conns), "failed": args.n - len(conns), "failures": dict(failures),
          "connect_s": round(time.monotonic() - started, 2)})
    lines: asyncio.Queue = asyncio.Queue()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cpu_go = wall_go = None
    while True:
        line = await reader.readline()
        if not line:
            return 1
        cmd = line.decode().strip()
        if cmd == "go":
            cpu_go, wall_go = sum(os.times()[:2]), time.monotonic()
            emit({"event": "going", "frames_before": sum(len(c.seqs) for c in conns)})
        elif cmd.startswith("finish "):
            break
    del lines
    with open(cmd.split(" ", 1)[1]) as f:
        sendmap = json.load(f)
    deadline = time.monotonic() + args.drain
    while time.monotonic() < deadline:
        if all(c.lost or (c.seqs and c.seqs[-1] >= sendmap["last"]) for c in conns):
            break
        await asyncio.sleep(0.005)
    drained = time.monotonic()
    cpu_end = sum(os.times()[:2])
    emit({"event": "drained", "t": drained, "timed_out": drained >= deadline})
    emit({"event": "result", **analyse(conns, sendmap), "cpu_s": cpu_end - (cpu_go or cpu_end),
          "wall_s": drained - (wall_go or drained), "connect_failures": dict(failures),
          "failed": args.n - len(conns)})
    for t in tasks:
        t.cancel()
    return 0


# -- analysis -----------------------------------------------------------------------------------------

def analyse(conns: list, sendmap: dict) -> dict:
    """Each connection against the expected seqs (first..last): gaps, duplicates, order; and latency
    histograms (arrival - send time of the call that made the event): every frame, exact frames only,
    and when the client read them."""
    first, last = sendmap["first"], sendmap["last"]
    send = {int(k): v for k, v in sendmap["send"].items()}
    nseq = last - first + 1
    ideal = array("i", range(first, last + 1))
    hist, exact_hist, read_hist = Counter(), Counter(), Counter()
    latest = [0.0] * nseq                       # per seq: the last arrival among this client's connections
    earliest = [math.inf] * nseq
    gaps = dups = disorder = perfect = frames = unmatched = out_of_range = bad = inexact = 0
    conns_with_gaps = 0
    closes: Counter = Counter()
    start_seqs: Counter = Counter()
    for c in conns:
        start_seqs[c.start_seq] += 1
        seqs = c.seqs
        frames += len(seqs)
        bad += c.bad
        if c.lost:
            closes[str(c.close_code)] += 1
        if seqs == ideal:
            perfect += 1
        else:
            got = set(seqs)
            dups += len(seqs) - len(got)
            missing = sum(1 for s in range(first, last + 1) if s not in got)
            gaps += missing
            conns_with_gaps += missing > 0
            out_of_range += sum(1 for s in seqs if s < first or s > last)
            disorder += sum(1 for a, b in zip(seqs, seqs[1:]) if b <= a)
        for s, t, rt, inx in zip(seqs, c.times, c.reads, c.inexact):
            st = send.get(s)
            if st is None:
                unmatched += 1
                continue
            us = int((t - st) * 1e6)
            b = bucket(us if us > 0 else 0)
            hist[b] += 1
            if inx:
                inexact += 1
            else:
                exact_hist[b] += 1
            us = int((rt - st) * 1e6)
            read_hist[bucket(us if us > 0 else 0)] += 1
            j = s - first
            if 0 <= j < nseq:
                if t > latest[j]:
                    latest[j] = t
                if t < earliest[j]:
                    earliest[j] = t
    return {"connections": len(conns), "frames": frames, "perfect": perfect, "gaps": gaps, "dups": dups,
            "disorder": disorder, "out_of_range": out_of_range, "conns_with_gaps": conns_with_gaps,
            "unmatched": unmatched, "bad_frames": bad, "inexact": inexact, "closed": dict(closes),
            "start_seqs": {str(k): v for k, v in start_seqs.items()},
            "hist": {str(k): v for k, v in hist.items()}, "exact_hist": {str(k): v for k, v in exact_hist.items()},
            "read_hist": {str(k): v for k, v in read_hist.items()}, "latest": latest,
            "earliest": [t if t != math.inf else None for t in earliest]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="fan-out benchmark subscriber process (run by bench/fanout.py)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/ws/branches/1")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--retries", type=int, default=6)
    p.add_argument("--connect-timeout", type=float, default=240.0)
    p.add_argument("--drain", type=float, default=20.0)
    p.add_argument("--nice", type=int, default=0)
    p.add_argument("--impl", choices=("lean", "websockets"), default="lean")
    p.add_argument("--deflate", action="store_true", help="offer permessage-deflate (lean reader)")
    args = p.parse_args(argv)
    if args.impl == "websockets":
        import asyncio
        return asyncio.run(ws_client(args))
    return lean_client(args)


if __name__ == "__main__":
    sys.exit(main())
