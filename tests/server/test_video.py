"""Video through the OpenAI API, end to end with the openai SDK, on the small random
Gemma4ForConditionalGeneration of test_multimodal.py (its template renders video parts as
<|video|>), with the committed clips of tests/fixtures/video:

- a video data URL: usage.prompt_tokens = text + Σ frames (soft tokens + boi + eoi) + the
  "mm:ss " timestamp tokens, and /tokenize agrees; media_io_kwargs num_frames changes the frames;
- --limit-mm-per-prompt for video with vLLM's message;
- bad video requests (truncated, not a video, zero frames, 30000x30000 frames, too many videos,
  unsupported scheme, file:// outside the allowed path) -> 4xx, the server still serving;
- file:// under --allowed-local-media-path; http:// from a loopback server (off the workers);
- the same video twice: no frame encoded again, prefix-cache hits (/metrics).
"""
import base64

import openai
import pytest
import requests

from conftest import ROOT, start_server
from test_multimodal import _Handler, http_media, metric, mm_model  # noqa: F401  (shared fixtures)

CLIPS = ROOT / "tests" / "fixtures" / "video"
SOFT = 63  # 64x48 frames at the 70-token budget: resized to 336x432 -> 7 x 9 pooled patches


def clip(name):
    return (CLIPS / name).read_bytes()


def data_url(b, mime="video/mp4"):
    return f"data:{mime};base64," + base64.b64encode(b).decode()


def video_msg(*urls, text="What happens in the video?"):
    content = [{"type": "text", "text": text}]
    content += [{"type": "video_url", "video_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="module")
def srv(mm_model):  # noqa: F811
    s = start_server(mm_model, ["--limit-mm-per-prompt", '{"image": 2, "video": 1}',
                                "--allowed-local-media-path", str(CLIPS),
                                "--max-num-batched-tokens", "512"], "video")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv):
    return openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0)


def model_id(srv):
    return requests.get(srv.base_url + "/v1/models", timeout=5).json()["data"][0]["id"]


def chat(client, messages, **kw):
    return client.chat.completions.create(model=client.models.list().data[0].id,
                                          messages=messages, max_tokens=3, temperature=0, **kw)


def post(srv, messages):
    return requests.post(srv.base_url + "/v1/chat/completions",
                         json={"model": model_id(srv), "messages": messages, "max_tokens": 2},
                         timeout=60)


def tokens(srv, **body):
    r = requests.post(srv.base_url + "/tokenize", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["count"]


def expected(srv, stamps, text="What happens in the video?"):
    """text + per frame: its "mm:ss " text (" mm:ss " after the first), boi, 63 soft, eoi."""
    n = tokens(srv, messages=[{"role": "user", "content": text}])
    for i, s in enumerate(stamps):
        n += tokens(srv, prompt=(" " if i else "") + s + " ", add_special_tokens=False)
        n += SOFT + 2
    return n


def test_video_frames_are_prompt_tokens(srv, client):
    # MJPEG/AVI, 5 fps, 10 frames: all of them (fewer than 32), at 0.0 .. 1.8 s.
    msgs = video_msg(data_url(clip("mjpeg_5fps_2s.avi"), "video/x-msvideo"))
    r = chat(client, msgs)
    want = expected(srv, ["00:00"] * 5 + ["00:01"] * 5)
    assert r.usage.prompt_tokens == want
    assert r.choices[0].finish_reason in ("length", "stop")
    assert tokens(srv, messages=msgs) == want
    # VP9/WebM, 10 fps, 20 frames.
    r = chat(client, video_msg(data_url(clip("vp9_10fps_2s.webm"), "video/webm")))
    assert r.usage.prompt_tokens == expected(srv, ["00:00"] * 10 + ["00:01"] * 10)


def test_num_frames_per_request(srv, client):
    # H.264/MP4, 25 fps, 75 frames; 4 frames -> indices 0, 24, 49, 74 (vLLM's linspace).
    r = chat(client, video_msg(data_url(clip("h264_25fps_3s.mp4"))),
             extra_body={"media_io_kwargs": {"video": {"num_frames": 4}}})
    assert r.usage.prompt_tokens == expected(srv, ["00:00", "00:00", "00:01", "00:02"])
    bad = requests.post(srv.base_url + "/v1/chat/completions", timeout=30, json={
        "model": model_id(srv), "messages": video_msg(data_url(clip("h264_25fps_3s.mp4"))),
        "max_tokens": 1, "media_io_kwargs": {"video": {"num_frames": 0}}})
    assert bad.status_code == 400 and "num_frames" in bad.json()["error"]["message"]


def test_limit_mm_per_prompt_for_video(srv, client):
    v = data_url(clip("vp9_10fps_2s.webm"), "video/webm")
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, video_msg(v, v))
    assert ("At most 1 video(s) may be provided in one prompt. Set `--limit-mm-per-prompt` to "
            "increase this limit.") in str(e.value)


def avi_with_size(b, w, h):
    """The MJPEG clip with every frame (JPEG SOF0) and its stream header declaring w x h."""
    b = bytearray(b)
    i = b.find(b"strf")
    b[i + 12:i + 20] = w.to_bytes(4, "little") + h.to_bytes(4, "little")
    i = 0
    while (i := b.find(b"\xff\xc0", i)) >= 0:
        if b[i + 4] == 8:
            b[i + 5:i + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
        i += 2
    return bytes(b)


def test_bad_videos_are_4xx_and_the_server_keeps_serving(srv, client):
    mp4 = clip("h264_25fps_3s.mp4")
    good = data_url(clip("vp9_10fps_2s.webm"), "video/webm")
    bad = {
        "truncated file": data_url(mp4[:300]),
        "not a video": data_url(b"just some text, not a video at all " * 20),
        "zero frames": data_url(clip("zero_frames.avi"), "video/x-msvideo"),
        "30000x30000 frames": data_url(avi_with_size(clip("mjpeg_5fps_2s.avi"), 30000, 30000)),
        "empty data url": "data:video/mp4;base64,",
        "unsupported scheme": "ftp://example.com/a.mp4",
        "file:// outside the allowed path": "file:///etc/hostname",
        "too many videos": None,
    }
    for what, url in bad.items():
        r = post(srv, video_msg(good, good) if url is None else video_msg(url))
        assert 400 <= r.status_code < 500 and r.status_code != 404, (what, r.status_code, r.text)
        err = r.json()["error"]
        assert err["message"] and err["code"] == r.status_code, what
    r = post(srv, video_msg(data_url(avi_with_size(clip("mjpeg_5fps_2s.avi"), 30000, 30000))))
    assert "exceed the maximum of" in r.json()["error"]["message"]
    r = post(srv, video_msg("ftp://example.com/a.mp4"))
    assert r.json()["error"]["message"] == "The URL must be either a HTTP, data or file URL."
    assert requests.get(srv.base_url + "/health", timeout=5).status_code == 200
    assert chat(client, video_msg(good)).usage.prompt_tokens > 20 * SOFT


def test_file_url_under_the_allowed_path(srv, client):
    r = chat(client, video_msg("file://" + str(CLIPS / "mjpeg_5fps_2s.avi")))
    assert r.usage.prompt_tokens == expected(srv, ["00:00"] * 5 + ["00:01"] * 5)


def test_http_fetch(srv, client, http_media):  # noqa: F811
    _Handler.routes["/v.avi"] = clip("mjpeg_5fps_2s.avi")
    r = chat(client, video_msg(http_media + "/v.avi"))
    assert r.usage.prompt_tokens == expected(srv, ["00:00"] * 5 + ["00:01"] * 5)
    r = post(srv, video_msg(http_media + "/missing.mp4"))
    assert r.status_code == 422 and "Failed to fetch media from URL" in r.json()["error"]["message"]


def test_same_video_twice_hits_encoder_and_prefix_caches(srv, client):
    msgs = video_msg(data_url(clip("mjpeg_5fps_2s.avi"), "video/x-msvideo"),
                     text="Describe every frame, in order.")
    chat(client, msgs)
    enc = metric(srv, "fourcast:mm_items_encoded_total")
    hits = metric(srv, "vllm:prefix_cache_hits_total")
    chat(client, msgs)
    assert metric(srv, "fourcast:mm_items_encoded_total") == enc  # no frame encoded again
    assert metric(srv, "vllm:prefix_cache_hits_total") >= hits + 10 * SOFT
