"""Raw-HTTP helpers of the server tests: SSE parsing, OpenAI error-shape checks, Prometheus text."""
import json
import re

import requests

TIMEOUT = 60


def post(base_url, path, body=None, *, data=None, headers=None, stream=False, timeout=TIMEOUT):
    """POST JSON (body) or raw bytes (data) to base_url + path, on a fresh connection (closed
    after the response, so no idle keep-alive connection holds a server thread)."""
    h = {"Content-Type": "application/json"}
    if headers is not None:
        h = dict(headers)
    h.setdefault("Connection", "close")
    if body is not None:
        data = json.dumps(body).encode()
    return requests.post(base_url + path, data=data, headers=h, stream=stream, timeout=timeout)


def sse_events(resp):
    """The `data:` payloads of an SSE response, in order (strings; "[DONE]" kept as is).
    Checks the framing: every event is `data: <payload>` followed by a blank line."""
    assert resp.headers.get("Content-Type", "").startswith("text/event-stream"), resp.headers
    raw = b"".join(resp.iter_content(chunk_size=None)).decode("utf-8")
    assert raw.endswith("\n\n"), f"stream does not end with a blank line: {raw[-200:]!r}"
    events = []
    for block in raw.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert all(line.startswith("data: ") for line in lines), f"bad SSE block {block!r}"
        events.append("\n".join(line[len("data: "):] for line in lines))
    return events


def check_chat_stream(events, n=1):
    """Checks a complete chat SSE stream and returns (chunks, per-choice summary).

    Well formed: ends with exactly one [DONE]; every other event a chat.completion.chunk with a
    stable id; per choice, the first chunk carries delta.role == "assistant", exactly one chunk
    carries finish_reason and it is that choice's last one; a usage-only chunk (choices == [])
    may come after all choices finished."""
    assert events and events[-1] == "[DONE]", f"no [DONE] terminator: {events[-3:]}"
    assert events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks, "no chunks before [DONE]"
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, f"chunk ids differ: {ids}"
    summary = {}
    for c in chunks:
        assert "error" not in c, f"error event in stream: {c}"
        assert c["object"] == "chat.completion.chunk", c
        if not c["choices"]:
            assert "usage" in c, c
            assert len(summary) == n and all(s["finish_reason"] for s in summary.values()), \
                "usage chunk before every choice finished"
            continue
        for ch in c["choices"]:
            i = ch["index"]
            s = summary.setdefault(i, {"first": ch, "finish_reason": None, "content": "",
                                       "reasoning": "", "tool_calls": {}, "logprobs": [],
                                       "chunks": 0})
            assert s["finish_reason"] is None, f"chunk after finish_reason for choice {i}: {c}"
            s["chunks"] += 1
            d = ch.get("delta") or {}
            s["content"] += d.get("content") or ""
            s["reasoning"] += d.get("reasoning") or d.get("reasoning_content") or ""
            for tc in d.get("tool_calls") or []:
                t = s["tool_calls"].setdefault(tc["index"], {"id": None, "name": None,
                                                             "arguments": ""})
                if tc.get("id"):
                    t["id"] = tc["id"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    t["name"] = fn["name"]
                t["arguments"] += fn.get("arguments") or ""
            if ch.get("logprobs"):
                s["logprobs"] += ch["logprobs"]["content"]
            if ch.get("finish_reason"):
                s["finish_reason"] = ch["finish_reason"]
                s["stop_reason"] = ch.get("stop_reason")
    assert sorted(summary) == list(range(n)), f"choices seen: {sorted(summary)}"
    for i, s in summary.items():
        assert s["first"]["delta"].get("role") == "assistant", f"choice {i} first chunk {s['first']}"
        assert s["finish_reason"], f"choice {i} has no finish_reason"
    return chunks, summary


def assert_error(resp, status, param=Ellipsis):
    """resp is an OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict), body
    for k in ("message", "type", "param", "code"):
        assert k in err, f"error without {k!r}: {body}"
    assert isinstance(err["message"], str) and err["message"], body
    assert isinstance(err["type"], str) and err["type"], body
    assert err["param"] is None or isinstance(err["param"], str), body
    assert err["code"] == status, body
    if param is not Ellipsis:
        assert err["param"] == param, f"param {err['param']!r}, expected {param!r}: {body}"
    return err


_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?'
    r' ([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))(?: [0-9]+)?$')


def parse_prometheus(text):
    """Parses Prometheus text exposition strictly; returns {(name, labels_str): value} and the
    declared types. Fails on any line that is neither a comment nor a valid sample."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                types[parts[2]] = parts[3]
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return samples, types


def metric(samples, name):
    """The value of the (single, any labels) sample called name."""
    vals = [v for (n, _), v in samples.items() if n == name]
    assert len(vals) == 1, f"{name}: {len(vals)} samples"
    return vals[0]


def metrics(base_url):
    r = requests.get(base_url + "/metrics", timeout=10)
    assert r.status_code == 200
    return parse_prometheus(r.text)[0]


# The chat template's rendering of one user turn "Hello" (completions tests).
PROMPT = "<bos><|turn>user\nHello<turn|>\n<|turn>model\n"  # the template's rendering of "Hello"


def dechunk(raw):
    """HTTP response bytes with a chunked body -> head + the body's bytes."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return raw
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        body += rest[:n]
        rest = rest[n + 2:]
    return head + b"\r\n\r\n" + body
