"""Images through the OpenAI API, end to end with the openai SDK, on a small random
Gemma4ForConditionalGeneration made by `fourcast synth` (the bundled tiny model's text geometry and
tokenizer, bidirectional image blocks, a 2-layer vision tower with the real patch size 16) and a
chat template that renders image parts as <|image|>:

- data-URL images: usage counts the soft tokens (boi + N + eoi per image), /tokenize agrees;
- per-request mm_processor_kwargs budgets change the count; an unsupported budget is vLLM's 400;
- --limit-mm-per-prompt enforced with vLLM's message;
- eight bad-image requests answered 4xx with the server still serving;
- http(s) fetching from a loopback server (size cap, 404 -> 422, --allowed-media-domains),
  file:// under --allowed-local-media-path only;
- the same image twice hits the encoder cache and the prefix cache (/metrics).
"""
import base64
import http.server
import io
import json
import re
import struct
import threading
import zlib
from pathlib import Path

import openai
import pytest
import requests

from conftest import TINY_VISION_CONFIG, start_server, synth_conditional_model


def png_bytes(w, h, seed=0):
    """An RGB PNG of w x h pixels written by hand (zlib only), a gradient with a seed."""
    rows = b""
    for y in range(h):
        rows += b"\0" + bytes(((x * 7 + y * 3 + seed * 11 + c * 50) % 256)
                              for x in range(w) for c in range(3))
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def data_url(b, mime="image/png"):
    return f"data:{mime};base64," + base64.b64encode(b).decode()


def image_msg(*urls, text="Describe the image."):
    content = [{"type": "text", "text": text}]
    content += [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="module")
def mm_model(tmp_path_factory):
    return synth_conditional_model(
        tmp_path_factory, "mm",
        {"audio_config": None, "vision_config": TINY_VISION_CONFIG},
        {"image": "<|image|>", "video": "<|video|>"},
        {"use_bidirectional_attention": "vision"})


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    (d / "a.png").write_bytes(png_bytes(40, 30, 1))
    return d


@pytest.fixture(scope="module")
def srv(mm_model, media_dir):
    s = start_server(mm_model, ["--limit-mm-per-prompt", '{"image": 2}',
                                "--allowed-local-media-path", str(media_dir),
                                "--allowed-media-domains", "127.0.0.1",
                                "--max-num-batched-tokens", "512"], "multimodal")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv):
    return openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0)


def chat(client, messages, **kw):
    return client.chat.completions.create(model=client.models.list().data[0].id,
                                          messages=messages, max_tokens=3, temperature=0, **kw)


def post(srv, messages):
    name = requests.get(srv.base_url + "/v1/models", timeout=5).json()["data"][0]["id"]
    return requests.post(srv.base_url + "/v1/chat/completions",
                         json={"model": name, "messages": messages, "max_tokens": 2}, timeout=30)


def tokenize(srv, messages, **kw):
    r = requests.post(srv.base_url + "/tokenize", json={"messages": messages, **kw}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_image_soft_tokens_are_prompt_tokens(srv, client):
    text_only = tokenize(srv, [{"role": "user", "content": "Describe the image."}])["count"]
    # 40x30 at budget 70: resized to 336x432 ... the processor's count; 240x320 -> 63 (spec §2.1)
    one = chat(client, image_msg(data_url(png_bytes(320, 240))))
    assert one.usage.prompt_tokens == text_only + 63 + 2  # boi + 63 soft tokens + eoi
    tok = tokenize(srv, image_msg(data_url(png_bytes(320, 240))))
    assert tok["count"] == one.usage.prompt_tokens
    two = chat(client, image_msg(data_url(png_bytes(320, 240)), data_url(png_bytes(24, 24))))
    assert two.usage.prompt_tokens == text_only + (63 + 2) + (64 + 2)


def test_budget_per_request(srv, client):
    base = tokenize(srv, [{"role": "user", "content": "Describe the image."}])["count"]
    r = chat(client, image_msg(data_url(png_bytes(1000, 1000))),
             extra_body={"mm_processor_kwargs": {"max_soft_tokens": 140}})
    assert r.usage.prompt_tokens == base + 121 + 2
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, image_msg(data_url(png_bytes(8, 8))),
             extra_body={"mm_processor_kwargs": {"max_soft_tokens": 100}})
    assert "Unsupported max_soft_tokens value: 100" in str(e.value)


def test_limit_mm_per_prompt(srv, client):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, image_msg(*[data_url(png_bytes(8, 8, i)) for i in range(3)]))
    assert "At most 2 image(s) may be provided in one prompt." in str(e.value)


def bomb_png():
    """A valid PNG header announcing 30000 x 30000 pixels (no data follows)."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr +
            struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF))


def test_bad_images_are_4xx_and_the_server_keeps_serving(srv, client):
    png = png_bytes(20, 20)
    bad = {
        "truncated png": data_url(png[: len(png) // 2]),
        "wrong mime": "data:text/plain;base64," + base64.b64encode(b"not an image").decode(),
        "non-base64 data url": "data:image/png;utf8,hello",
        "30000x30000 header": data_url(bomb_png()),
        "zero-size": "data:image/png;base64,",
        "unsupported scheme": "ftp://example.com/a.png",
        "file:// without the flag (outside the allowed path)": "file:///etc/hostname",
        "too many images": None,
    }
    for what, url in bad.items():
        msgs = image_msg(*([data_url(png)] * 3)) if url is None else image_msg(url)
        r = post(srv, msgs)
        assert 400 <= r.status_code < 500 and r.status_code != 404, (what, r.status_code, r.text)
        err = r.json()["error"]
        assert err["message"] and err["code"] == r.status_code, what
    assert requests.get(srv.base_url + "/health", timeout=5).status_code == 200
    assert chat(client, image_msg(data_url(png))).usage.prompt_tokens > 0


def test_messages_of_vllm(srv):
    def err(url):
        r = post(srv, image_msg(url))
        return r.status_code, r.json()["error"]["message"]
    assert err("ftp://x/y.png") == (400, "The URL must be either a HTTP, data or file URL.")
    assert err("data:image/png;utf8,abc")[1] == "Only base64 data URLs are supported for now."
    assert "missing ',' separator" in err("data:image/png;base64")[1]
    code, msg = err("file:///etc/hostname")
    assert code == 400 and "must be a subpath of `--allowed-local-media-path`" in msg


def test_file_urls_under_the_allowed_path(srv, client, media_dir):
    r = chat(client, image_msg("file://" + str(media_dir / "a.png")))
    assert r.usage.prompt_tokens > 60


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):
        body = self.routes.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        if isinstance(body, tuple):  # redirect
            self.send_response(302)
            self.send_header("Location", body[0])
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def http_media():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = httpd.server_address[1]
    _Handler.routes = {"/a.png": png_bytes(50, 40), "/hop": (f"http://127.0.0.1:{port}/a.png",),
                       "/away": ("http://localhost:1/a.png",)}
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


def test_http_fetch(srv, client, http_media):
    assert chat(client, image_msg(http_media + "/a.png")).usage.prompt_tokens > 60
    assert chat(client, image_msg(http_media + "/hop")).usage.prompt_tokens > 60  # one redirect
    r = post(srv, image_msg(http_media + "/missing.png"))
    assert r.status_code == 422 and "Failed to fetch media from URL" in r.json()["error"]["message"]
    # The redirect leaves the allowed domains: refused at that hop.
    r = post(srv, image_msg(http_media + "/away"))
    assert r.status_code == 400 and "allowed domains" in r.json()["error"]["message"]


def metric(srv, name):
    text = requests.get(srv.base_url + "/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def test_same_image_twice_hits_encoder_and_prefix_caches(srv, client):
    img = data_url(png_bytes(300, 200, seed=42))
    msgs = image_msg(img, text="What is in this picture, exactly?")
    chat(client, msgs)
    enc = metric(srv, "fourcast:mm_items_encoded_total")
    hits = metric(srv, "vllm:prefix_cache_hits_total")
    r = chat(client, msgs)
    assert metric(srv, "fourcast:mm_items_encoded_total") == enc  # not encoded again
    assert metric(srv, "vllm:prefix_cache_hits_total") >= hits + 64
    # The same image in another prompt: the encoder cache serves it.
    q = metric(srv, "fourcast:encoder_cache_hits_total")
    chat(client, image_msg(img, text="Another question first. " * 3))
    assert metric(srv, "fourcast:encoder_cache_hits_total") == q + 1
    assert metric(srv, "fourcast:mm_items_encoded_total") == enc
    assert r.usage.prompt_tokens > 60


def test_image_part_through_the_responses_api(srv, client):
    """An input_image part of a Responses message reaches the vision path as a chat image does:
    the soft tokens count as input tokens, and a bad image is a 400 in OpenAI's shape."""
    name = client.models.list().data[0].id

    def respond(*parts):
        content = [{"type": "input_text", "text": "Describe the image."}] + list(parts)
        return client.responses.create(model=name, max_output_tokens=3, temperature=0,
                                       input=[{"role": "user", "content": content}])
    text_only = respond()
    one = respond({"type": "input_image", "image_url": data_url(png_bytes(320, 240))})
    assert one.status in ("completed", "incomplete"), one.status  # 3 tokens may cut it short
    assert one.usage.output_tokens > 0
    assert one.usage.input_tokens == text_only.usage.input_tokens + 63 + 2  # boi + 63 + eoi
    # The same prompt through chat counts the same tokens.
    assert one.usage.input_tokens == chat(client, image_msg(data_url(png_bytes(320, 240)))) \
        .usage.prompt_tokens
    with pytest.raises(openai.BadRequestError) as e:
        respond({"type": "input_image", "image_url": "ftp://x/y.png"})
    assert "The URL must be either a HTTP, data or file URL." in str(e.value)
    with pytest.raises(openai.BadRequestError):
        respond(*[{"type": "input_image", "image_url": data_url(png_bytes(8, 8, i))}
                  for i in range(3)])  # over --limit-mm-per-prompt
    assert respond().usage.input_tokens == text_only.usage.input_tokens
