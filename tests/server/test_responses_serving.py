"""The Responses API on the event-driven HTTP layer: no Responses request holds a worker thread
while the engine generates (streamed, non-streamed, background and cancel, with one HTTP
worker), a client that leaves aborts its foreground response (not a background one), and
SIGTERM drains in-flight responses (they finish; after --shutdown-timeout a non-streaming one
answers 503 and a stream ends with an error event). CORS runs before routing: a preflight needs
no API key, and errors (401, 404) carry the CORS headers."""
import asyncio
import json
import signal
import socket
import time

import requests

from conftest import BEHAVIOUR_FLAGS, Server
from helpers import dechunk, metric, metrics, post

HELLO = "Hello"


def raw_post(port, path, body):
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


async def request(port, body, path="/v1/responses"):
    """One raw request, body de-chunked; returns (status, body text)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(raw_post(port, path, body))
    await w.drain()
    out = dechunk(await r.read())
    w.close()
    status = int(out[9:12]) if out[:9] == b"HTTP/1.1 " else -1
    return status, out.partition(b"\r\n\r\n")[2].decode(errors="replace")


def sse(text):
    """Responses SSE frames -> [event dicts]."""
    out = []
    for block in text.split("\n\n"):
        if block.strip():
            name, data = block.split("\n", 1)
            ev = json.loads(data[len("data: "):])
            assert name == "event: " + ev["type"], block
            out.append(ev)
    return out


def running(base):
    m = metrics(base)
    return metric(m, "vllm:num_requests_running") + metric(m, "vllm:num_requests_waiting")


def wait_running(base, n, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running(base) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} requests reached the engine")


def test_no_thread_held_with_one_worker(proto_model):
    """--http-workers 1: 8 streamed, 8 plain and 4 background responses generate at once, a
    cancel waits for its run; meanwhile /tokenize (a worker route) answers at once."""
    s = Server(proto_model, BEHAVIOUR_FLAGS + ["--http-workers", "1", "--max-num-seqs", "32"],
               "responses-1-worker").start()
    try:
        body = {"input": HELLO, "max_output_tokens": 200, "ignore_eos": True}
        bg = [post(s.base_url, "/v1/responses", dict(body, background=True)).json()["id"]
              for _ in range(4)]
        t_cancel = {}

        async def main():
            tasks = [asyncio.create_task(request(s.port, dict(body, stream=True)))
                     for _ in range(8)]
            tasks += [asyncio.create_task(request(s.port, body)) for _ in range(8)]
            await asyncio.to_thread(wait_running, s.base_url, 20)
            t0 = time.monotonic()
            tok = await asyncio.to_thread(post, s.base_url, "/tokenize", {"prompt": "Hi"})
            took = time.monotonic() - t0
            t0 = time.monotonic()
            cancel = await asyncio.to_thread(post, s.base_url, f"/v1/responses/{bg[0]}/cancel")
            t_cancel["s"] = time.monotonic() - t0
            return tok, took, cancel, await asyncio.gather(*tasks)

        tok, took, cancel, results = asyncio.run(main())
        print(f"\n/tokenize in {took * 1000:.0f} ms with 20 responses generating on 1 worker; "
              f"cancel answered in {t_cancel['s'] * 1000:.0f} ms")
        assert tok.status_code == 200 and took < 1.0, took
        assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
        for status, text in results[:8]:
            assert status == 200, text[:300]
            ev = sse(text)
            assert ev[-1]["type"] == "response.completed", ev[-1]
            assert ev[-1]["response"]["status"] == "incomplete"  # max_output_tokens reached
            assert [e["sequence_number"] for e in ev] == list(range(len(ev)))
        for status, text in results[8:]:
            assert status == 200, text[:300]
            r = json.loads(text)
            assert r["status"] == "incomplete" and r["usage"]["output_tokens"] == 200
        for rid in bg[1:]:
            deadline = time.monotonic() + 30
            while (got := requests.get(f"{s.base_url}/v1/responses/{rid}").json())[
                    "status"] in ("queued", "in_progress") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert got["status"] == "incomplete" and got["usage"]["output_tokens"] == 200, got
        m = metrics(s.base_url)
        assert metric(m, "fourcast:responses_background_running") == 0
        assert metric(m, "fourcast:kv_blocks_free") == metric(m, "fourcast:kv_blocks_total")
    finally:
        s.stop()


def tokens_after_disconnect(s, body):
    """Sends `body`, closes the connection after 0.3 s; returns (running at the close, tokens
    generated in the 100 ms after it, later growth)."""
    base = s.base_url
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(raw_post(s.port, "/v1/responses", body))
    time.sleep(0.3)
    at_close = running(base)
    c.close()
    time.sleep(0.1)
    t100 = metric(metrics(base), "vllm:generation_tokens_total")
    time.sleep(0.4)
    return at_close, metric(metrics(base), "vllm:generation_tokens_total") - t100


def test_client_leaving_aborts_foreground_not_background(proto_model):
    s = Server(proto_model, BEHAVIOUR_FLAGS, "responses-disconnect").start()
    try:
        key = ("vllm:request_success_total",
               f'{{model_name="{s.model}",finished_reason="abort"}}')
        aborted0 = metrics(s.base_url).get(key, 0)
        body = {"input": HELLO, "max_output_tokens": 3500, "ignore_eos": True}
        for stream in (False, True):
            at_close, more = tokens_after_disconnect(s, dict(body, stream=stream))
            assert at_close == 1, "the response was not generating at the disconnect"
            assert more == 0, f"stream={stream}: {more} tokens more than 100 ms after the close"
        m = metrics(s.base_url)
        assert m[key] == aborted0 + 2
        assert metric(m, "fourcast:kv_blocks_free") == metric(m, "fourcast:kv_blocks_total")
        # A background stream's client leaving does not stop the response.
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(raw_post(s.port, "/v1/responses", {
            "input": HELLO, "max_output_tokens": 60, "ignore_eos": True, "stream": True,
            "background": True}))
        got = b""
        while b"}\n\n" not in got:  # the first event (response.created) has arrived
            piece = c.recv(65536)
            assert piece, got
            got += piece
        c.close()
        first = got.decode(errors="replace").split("data: ", 1)[1].split("\n", 1)[0]
        rid = json.loads(first)["response"]["id"]
        deadline = time.monotonic() + 30
        while (got := requests.get(f"{s.base_url}/v1/responses/{rid}").json())[
                "status"] in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got["status"] == "incomplete" and got["usage"]["output_tokens"] == 60, got
    finally:
        s.stop()


def in_flight(s, n, max_tokens, on_started):
    async def main():
        body = {"input": HELLO, "max_output_tokens": max_tokens, "ignore_eos": True}
        tasks = [asyncio.create_task(request(s.port, dict(body, stream=True))) for _ in range(n)]
        tasks += [asyncio.create_task(request(s.port, body)) for _ in range(n)]
        await asyncio.to_thread(wait_running, s.base_url, 2 * n)
        await asyncio.to_thread(on_started)
        return await asyncio.gather(*tasks)
    return asyncio.run(main())


def test_sigterm_drain_lets_responses_finish(proto_model):
    s = Server(proto_model, BEHAVIOUR_FLAGS + ["--shutdown-timeout", "30"],
               "responses-drain").start()
    results = in_flight(s, 4, 300, lambda: s.proc.send_signal(signal.SIGTERM))
    rc = s.proc.wait(30)
    s.stop()
    for status, text in results[:4]:
        assert status == 200, text[:300]
        ev = sse(text)
        assert ev[-1]["type"] == "response.completed", ev[-1]
        assert ev[-1]["response"]["usage"]["output_tokens"] == 300
    for status, text in results[4:]:
        assert status == 200, text[:300]
        assert json.loads(text)["usage"]["output_tokens"] == 300
    assert rc == 0, s.log()


def test_shutdown_timeout_cuts_responses_with_errors(proto_model):
    s = Server(proto_model, BEHAVIOUR_FLAGS + ["--shutdown-timeout", "1"],
               "responses-drain-timeout").start()
    results = in_flight(s, 4, 3500, lambda: s.proc.send_signal(signal.SIGTERM))
    rc = s.proc.wait(30)
    s.stop()
    for status, text in results[:4]:
        assert status == 200, text[:300]
        ev = sse(text)
        assert ev[0]["type"] == "response.created"
        assert ev[-1]["type"] == "error" and "shutting down" in ev[-1]["message"], ev[-1]
        assert [e["sequence_number"] for e in ev] == list(range(len(ev)))
    for status, text in results[4:]:
        assert status == 503, text[:300]  # never a 200 with truncated output
        assert "shutting down" in json.loads(text)["error"]["message"]
    assert rc == 0, s.log()


def test_preflight_needs_no_api_key_and_errors_carry_cors_headers(proto_model):
    s = Server(proto_model, ["--api-key", "sekrit", "--allowed-origins", '["http://ok.example"]'],
               "cors-api-key").start()
    try:
        pre = requests.options(s.base_url + "/v1/responses", headers={
            "Origin": "http://ok.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"}, timeout=10)
        assert pre.status_code == 200 and pre.text == "OK", pre.text
        assert pre.headers["Access-Control-Allow-Origin"] == "http://ok.example"
        # The real request without the key: 401, and the browser may read it (CORS headers).
        r = post(s.base_url, "/v1/responses", {"input": HELLO},
                 headers={"Content-Type": "application/json", "Origin": "http://ok.example"})
        assert r.status_code == 401
        assert r.headers["Access-Control-Allow-Origin"] == "http://ok.example"
        nf = requests.get(s.base_url + "/no/such/route", headers={"Origin": "http://ok.example"})
        assert nf.status_code == 404
        assert nf.headers["Access-Control-Allow-Origin"] == "http://ok.example"
        ok = post(s.base_url, "/v1/responses", {"input": HELLO, "max_output_tokens": 2},
                  headers={"Content-Type": "application/json", "Authorization": "Bearer sekrit"})
        assert ok.status_code == 200 and ok.json()["object"] == "response"
    finally:
        s.stop()


def test_sigterm_ends_background_responses_logged(proto_model):
    """A background response still generating when the server stops is not dropped silently:
    the drain does not wait for it, the engine's stop ends it, and the log names it."""
    s = Server(proto_model, BEHAVIOUR_FLAGS + ["--shutdown-timeout", "1"],
               "responses-drain-background").start()
    r = post(s.base_url, "/v1/responses", {"input": HELLO, "max_output_tokens": 3500,
                                           "ignore_eos": True, "background": True})
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    rid = r.json()["id"]
    wait_running(s.base_url, 1)
    s.proc.send_signal(signal.SIGTERM)
    rc = s.proc.wait(30)
    s.stop()
    assert rc == 0, s.log()
    lines = [ln for ln in s.log().splitlines() if f"background response {rid} " in ln]
    print("\n" + "\n".join(lines))
    assert lines and ("failed:" in lines[0] or "cancelled:" in lines[0]), s.log()[-2000:]
