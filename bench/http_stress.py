#!/usr/bin/env python3
"""HTTP-layer stress for `fourcast serve` (standard library only; loopback).

  slowdrip  N connections that send a request head one byte per second (reconnecting when the
            server cuts them), held for --seconds, while --normal clients send short chat
            requests back to back: prints the normal clients' latency (p50/p99/max) and
            failures, and how the slow connections fared.
  streams   N concurrent streaming chat clients, each one request of --max-tokens: prints how
            many completed, errors, wall time and time to first byte.

It starts the server itself (`--fourcast BIN --model DIR`, extra flags after `--`) with the
open-file limit raised to the hard limit, or uses --base-url. Examples (docs/benchmarks.md):

  bench/http_stress.py slowdrip --conns 1000 --seconds 30 --normal 4
  bench/http_stress.py streams --conns 2000 --max-tokens 16 -- --max-num-seqs 256
"""
import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_server(binary, model, flags):
    log = tempfile.NamedTemporaryFile(prefix="fourcast-stress-", suffix=".log", delete=False)
    args = [binary, "serve", model, "--host", "127.0.0.1", "--port", "0"] + flags
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = open(log.name, errors="replace").read()
        m = re.search(r"ready: serving .* on http://[^:]+:(\d+)", text)
        if m:
            return proc, int(m.group(1)), log.name
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}:\n{text}")
        time.sleep(0.1)
    proc.kill()
    sys.exit("server not ready within 120 s")


async def http_request(port, method, path, body=None, timeout=60.0):
    """One request on a fresh connection; returns (status, body bytes)."""
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    w.write(head.encode() + b"\r\n" + data)
    await w.drain()
    out = await asyncio.wait_for(r.read(), timeout)
    w.close()
    status = int(out[9:12]) if out.startswith(b"HTTP/1.1 ") else -1
    return status, out.partition(b"\r\n\r\n")[2]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))] if xs else float("nan")


async def prometheus(port):
    status, body = await http_request(port, "GET", "/metrics")
    out = {}
    for line in body.decode(errors="replace").splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def proc_status(pid):
    """(threads, RSS MiB) of a process from /proc."""
    threads = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return threads, rss


async def sample_process(pid, stop, out):
    """Peak threads and RSS of the server while the load runs."""
    while not stop.is_set():
        try:
            t, r = proc_status(pid)
            out["threads"] = max(out.get("threads", 0), t)
            out["rss"] = max(out.get("rss", 0), r)
        except OSError:
            return
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


async def with_sampler(pid, coro):
    stop, peak = asyncio.Event(), {}
    task = asyncio.create_task(sample_process(pid, stop, peak)) if pid else None
    rc = await coro
    stop.set()
    if task:
        await task
        print(f"server process peak: {peak.get('threads', 0)} threads, "
              f"{peak.get('rss', 0):.0f} MiB RSS")
    return rc


# ---------------------------------------------------------------- slowdrip
async def slow_client(port, end, st):
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4000
    while time.monotonic() < end:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            st["connect_errors"] += 1
            await asyncio.sleep(1)
            continue
        st["open"] += 1
        t0 = time.monotonic()
        try:
            for b in head:
                if time.monotonic() >= end:
                    break
                w.write(bytes([b]))
                await w.drain()
                try:  # one byte per second; an answer (408) or EOF ends the connection
                    got = await asyncio.wait_for(r.read(4096), 1.0)
                    st["cut"] += 1
                    st["held_s"].append(time.monotonic() - t0)
                    if got.startswith(b"HTTP/1.1 408"):
                        st["got_408"] += 1
                    break
                except asyncio.TimeoutError:
                    pass
        except OSError:
            st["cut"] += 1
        finally:
            st["open"] -= 1
            w.close()


async def normal_client(port, end, i, st):
    n = 0
    while time.monotonic() < end:
        body = {"messages": [{"role": "user", "content": f"Hello {i} {n}"}], "max_tokens": 4,
                "temperature": 0}
        t0 = time.monotonic()
        try:
            status, _ = await http_request(port, "POST", "/v1/chat/completions", body, 30)
            st["lat"].append(time.monotonic() - t0)
            if status != 200:
                st["fail"].append(status)
        except (OSError, asyncio.TimeoutError) as e:
            st["fail"].append(repr(e))
        n += 1


async def sample_open(end, st):
    while time.monotonic() < end:
        await asyncio.sleep(0.5)
        st["open_samples"].append(st["open"])


async def run_slowdrip(port, a):
    st = {"open": 0, "cut": 0, "got_408": 0, "connect_errors": 0, "held_s": [], "lat": [],
          "fail": [], "open_samples": []}
    end = time.monotonic() + a.seconds
    slow = [asyncio.create_task(slow_client(port, end, st)) for _ in range(a.conns)]
    await asyncio.sleep(2)  # let the slow connections pile up first
    t0 = time.monotonic()
    await asyncio.gather(sample_open(end, st), *[normal_client(port, end, i, st)
                                                 for i in range(a.normal)])
    normal_s = time.monotonic() - t0
    await asyncio.gather(*slow)
    m = await prometheus(port)
    lat = st["lat"]
    samples = st["open_samples"] or [0]
    print(f"slow-drip connections: {a.conns} clients for {a.seconds:.0f} s at 1 byte/s; open at "
          f"once: min {min(samples)}, median {pct(samples, 0.5)}, max {max(samples)}; cut by the "
          f"server {st['cut']} times ({st['got_408']} with a 408), held {pct(st['held_s'], 0.5):.1f} "
          f"s median before the cut; connect errors {st['connect_errors']}")
    print(f"normal clients: {a.normal} for {normal_s:.1f} s: {len(lat)} requests, failures "
          f"{len(st['fail'])}, latency p50 {pct(lat, 0.5) * 1000:.1f} ms, p99 "
          f"{pct(lat, 0.99) * 1000:.1f} ms, max {max(lat or [0]) * 1000:.1f} ms")
    print("server: " + ", ".join(f"{k} {v:.0f}" for k, v in m.items()
                                 if k.startswith("fourcast:http_timeouts_total")
                                 or k.startswith("fourcast:http_rejected_total")))
    if st["fail"]:
        print("failures:", st["fail"][:5])
    return 0 if not st["fail"] and pct(lat, 0.99) < 1.0 else 1


# ---------------------------------------------------------------- streams
async def stream_client(port, a, i, st):
    body = {"messages": [{"role": "user", "content": f"Tell me a story {i}"}],
            "max_tokens": a.max_tokens, "ignore_eos": True, "stream": True}
    data = json.dumps(body).encode()
    t0 = time.monotonic()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: " + str(len(data)).encode()
                + b"\r\n\r\n" + data)
        await w.drain()
        first = await r.readuntil(b"\r\n\r\n")
        if not first.startswith(b"HTTP/1.1 200"):
            st["errors"].append(first[:60])
            w.close()
            return
        raw = b""
        got_first = False
        while True:
            chunk = await r.read(65536)
            if not chunk:
                break
            if not got_first and b"data: " in chunk:
                st["ttfb"].append(time.monotonic() - t0)
                got_first = True
            raw += chunk
        w.close()
        text = raw.decode(errors="replace")
        events = [ln[6:] for ln in text.split("\n") if ln.startswith("data: ")]
        if not events or events[-1].strip() != "[DONE]":
            st["errors"].append("no [DONE]")
            return
        n = sum(1 for e in events[:-1] if '"content":' in e)
        if '"finish_reason":"length"' not in text:
            st["errors"].append("no finish_reason length")
            return
        st["done"] += 1
        st["chunks"] += n
        st["e2e"].append(time.monotonic() - t0)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        st["errors"].append(repr(e))


async def run_streams(port, a):
    st = {"done": 0, "errors": [], "ttfb": [], "e2e": [], "chunks": 0}
    t0 = time.monotonic()
    await asyncio.gather(*[stream_client(port, a, i, st) for i in range(a.conns)])
    wall = time.monotonic() - t0
    m = await prometheus(port)
    peak = m.get("fourcast:http_connections_open", 0)
    print(f"streams: {a.conns} concurrent, {a.max_tokens} tokens each: completed {st['done']}, "
          f"errors {len(st['errors'])}, wall {wall:.1f} s; first byte p50 "
          f"{pct(st['ttfb'], 0.5):.2f} s, p99 {pct(st['ttfb'], 0.99):.2f} s; end-to-end p50 "
          f"{pct(st['e2e'], 0.5):.2f} s, max {max(st['e2e'] or [0]):.2f} s; content chunks "
          f"{st['chunks']}; server connections open after: {peak:.0f}")
    if st["errors"]:
        print("errors:", st["errors"][:5])
    return 0 if st["done"] == a.conns else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter,
                                usage="%(prog)s MODE [options] [-- fourcast serve flags]")
    p.add_argument("mode", choices=["slowdrip", "streams"])
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--normal", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--port", type=int, help="use a running server on this loopback port")
    p.add_argument("--fourcast", default=os.path.join(ROOT, "build", "apps", "cli", "fourcast"))
    p.add_argument("--model", default=os.path.join(ROOT, "models", "tiny-gemma4"))
    argv = sys.argv[1:]
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.flags = flags
    limit = raise_nofile()
    print(f"open-file limit {limit}")
    proc = None
    port = a.port
    if port is None:
        proc, port, log = start_server(a.fourcast, a.model, a.flags)
        print(f"server: {' '.join(a.flags) or '(default flags)'}; log {log}")
    try:
        run = run_slowdrip(port, a) if a.mode == "slowdrip" else run_streams(port, a)
        rc = asyncio.run(with_sampler(proc.pid if proc else None, run))
    finally:
        if proc:
            proc.terminate()
            proc.wait(60)
    return rc


if __name__ == "__main__":
    sys.exit(main())
