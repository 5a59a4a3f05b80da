"""/v1/audio/transcriptions and /v1/audio/translations (issue 16) with the openai SDK against a
small random Gemma4ForConditionalGeneration with an audio tower (conftest.synth_conditional_model).

The random model emits arbitrary tokens, so the real assertion is the definition of the
endpoints: at temperature 0 a clip's text EQUALS the content of the chat completion for the user
message [input_audio part, the model card's ASR / AST instruction]; a clip over 30 s is split as
vLLM splits it (at the quietest 100 ms in the second before each 30 s mark) and the texts of its
clips are joined with a space. Every response format, SSE streaming, and each bad request (a 4xx,
the server still serving).
"""
import base64
import json

import openai
import pytest
import requests

from conftest import TINY_AUDIO_CONFIG, start_server, synth_conditional_model, wav_bytes
from helpers import sse_events

MAX_TOKENS = 6
ASR_FORMAT = ("\n\nFollow these specific instructions for formatting the answer:\n"
              "* Only output the transcription, with no newlines.\n"
              "* When transcribing numbers, write the digits, i.e. write 1.7 and not one point "
              "seven, and write 3 instead of three.")


def asr_prompt(language=None):
    if language is None:
        return "Transcribe the following speech segment in its original language." + ASR_FORMAT
    return (f"Transcribe the following speech segment in {language} into {language} text."
            + ASR_FORMAT)


def ast_prompt(source, target="English"):
    return (f"Transcribe the following speech segment in {source}, then translate it into "
            f"{target}.\nWhen formatting the answer, first output the transcription in {source}, "
            f"then one newline, then output the string '{target}: ', then the translation in "
            f"{target}.")


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory):
    return synth_conditional_model(tmp_path_factory, "asr",
                                   {"vision_config": None, "audio_config": TINY_AUDIO_CONFIG},
                                   {"audio": "<|audio|>"})


@pytest.fixture(scope="module")
def srv(audio_model):
    # Room for a 26 MiB upload (the 25 MiB file cap is the endpoint's, not the HTTP layer's).
    s = start_server(audio_model, ["--limit-mm-per-prompt", '{"audio": 1}',
                                   "--max-request-bytes", str(40 << 20)], "asr")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv):
    c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0, timeout=120)
    yield c
    c.close()


@pytest.fixture(scope="module")
def name(client):
    return client.models.list().data[0].id


def chat_text(client, name, wav, prompt):
    r = client.chat.completions.create(
        model=name, temperature=0, max_completion_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": [
            {"type": "input_audio",
             "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}},
            {"type": "text", "text": prompt}]}])
    return r.choices[0].message.content or ""


def clip_wav(samples, a, b):
    return wav_bytes(b - a, samples=samples[a:b])


def pattern(n):
    return [(i * 37) % 2000 - 1000 for i in range(n)]


def post_form(srv, path, fields, file=("a.wav", wav_bytes(8000), "audio/wav"), stream=False):
    files = {"file": file} if file is not None else None
    return requests.post(srv.base_url + path, data=fields, files=files, stream=stream,
                         timeout=120)


def test_json_text_equal_the_chat_completion(client, name):
    wav = wav_bytes(24000)  # 1.5 s
    want = chat_text(client, name, wav, asr_prompt("English"))
    r = client.audio.transcriptions.create(model=name, file=("a.wav", wav), language="en",
                                           temperature=0,
                                           extra_body={"max_completion_tokens": MAX_TOKENS})
    assert r.text == want
    assert r.to_dict()["usage"] == {"type": "duration", "seconds": 2}  # ceil(1.5 s)
    t = client.audio.transcriptions.create(model=name, file=("a.wav", wav), language="en",
                                           response_format="text",
                                           extra_body={"max_completion_tokens": MAX_TOKENS})
    assert t == want
    # Without a language: the "original language" prompt; with a client prompt: after it.
    r = client.audio.transcriptions.create(model=name, file=("a.wav", wav),
                                           prompt="Names: Fourcast.",
                                           extra_body={"max_completion_tokens": MAX_TOKENS})
    assert r.text == chat_text(client, name, wav, asr_prompt() + "\n\nNames: Fourcast.")


def test_verbose_json_srt_vtt(client, name):
    wav = wav_bytes(24000)
    want = chat_text(client, name, wav, asr_prompt("German"))
    kw = dict(model=name, file=("a.wav", wav), language="de",
              extra_body={"max_completion_tokens": MAX_TOKENS})
    v = client.audio.transcriptions.create(response_format="verbose_json", **kw).to_dict()
    assert (v["task"], v["language"], v["duration"], v["text"]) == ("transcribe", "de", 1.5, want)
    assert len(v["segments"]) == 1
    s = v["segments"][0]
    assert (s["id"], s["start"], s["end"], s["text"], s["seek"]) == (0, 0.0, 1.5, want, 0)
    assert len(s["tokens"]) >= 1 and s["avg_logprob"] <= 0 and s["temperature"] == 0
    srt = client.audio.transcriptions.create(response_format="srt", **kw)
    vtt = client.audio.transcriptions.create(response_format="vtt", **kw)
    if want:
        assert srt == f"1\n00:00:00,000 --> 00:00:01,500\n{want}\n\n"
        assert vtt == f"WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n{want}\n\n"
    else:  # no cue for a clip without text
        assert srt == "" and vtt == "WEBVTT\n\n"


def translated(content, target="English"):
    """The AST answer's translation: after "\n<Target>: " when the model wrote it."""
    marker = f"\n{target}: "
    return content.split(marker, 1)[1] if marker in content else content


def test_translation_equals_the_chat_completion(client, name):
    wav = wav_bytes(20000)
    want = translated(chat_text(client, name, wav, ast_prompt("German")))
    r = client.audio.translations.create(model=name, file=("a.wav", wav),
                                         extra_body={"language": "de",
                                                     "max_completion_tokens": MAX_TOKENS})
    assert r.text == want
    v = client.audio.translations.create(model=name, file=("a.wav", wav),
                                         response_format="verbose_json",
                                         extra_body={"max_completion_tokens": MAX_TOKENS}).to_dict()
    assert v["task"] == "translate"
    assert v["text"] == translated(chat_text(client, name, wav, ast_prompt("its original language")))


def test_streaming_transcription(srv, client, name):
    wav = wav_bytes(24000)
    want = chat_text(client, name, wav, asr_prompt("English"))
    r = post_form(srv, "/v1/audio/transcriptions",
                  {"model": name, "language": "en", "stream": "true",
                   "stream_include_usage": "true", "max_completion_tokens": str(MAX_TOKENS)},
                  file=("a.wav", wav, "audio/wav"), stream=True)
    assert r.status_code == 200, r.text
    events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "transcription.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])
    assert text == want
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    assert [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"] is not None


def test_clip_over_30_s_is_split_and_joined(srv, client, name):
    # 45 s: sound, a silent second from 29 s to 30 s (vLLM cuts at its first quietest 100 ms
    # window, i.e. at 29.0 s), sound again.
    n, cut = 45 * 16000, 29 * 16000
    samples = pattern(n)
    samples[cut:30 * 16000] = [0] * 16000
    wav = wav_bytes(n, samples=samples)
    parts = [chat_text(client, name, clip_wav(samples, 0, cut), asr_prompt("English")),
             chat_text(client, name, clip_wav(samples, cut, n), asr_prompt("English"))]
    want = " ".join(p for p in parts if p)
    kw = dict(model=name, file=("a.wav", wav), language="en",
              extra_body={"max_completion_tokens": MAX_TOKENS})
    v = client.audio.transcriptions.create(response_format="verbose_json", **kw).to_dict()
    assert v["text"] == want and v["duration"] == 45.0
    assert [(s["start"], s["end"], s["text"]) for s in v["segments"]] == [
        (0.0, 29.0, parts[0]), (29.0, 45.0, parts[1])]
    r = post_form(srv, "/v1/audio/transcriptions",
                  {"model": name, "language": "en", "stream": "true",
                   "max_completion_tokens": str(MAX_TOKENS)},
                  file=("a.wav", wav, "audio/wav"), stream=True)
    chunks = [json.loads(e) for e in sse_events(r)[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == want
    assert sum(1 for c in chunks if c["choices"][0].get("finish_reason")) == 2  # one per clip


BAD = {
    "not_multipart": None,
    "no_file": None,
    "file_as_text": None,
    "undecodable": ({}, ("a.wav", b"RIFF....not audio at all" * 10, "audio/wav")),
    "bad_format": ({"response_format": "mp3"}, "file"),
    "bad_temperature": ({"temperature": "hot"}, "file"),
    "negative_temperature": ({"temperature": "-1"}, "file"),
    "unknown_model": ({"model": "nope"}, "file"),
    "stream_verbose": ({"stream": "true", "response_format": "verbose_json"}, "file"),
    "usage_no_stream": ({"stream_include_usage": "true"}, "file"),
    "bad_language": ({"language": "xx"}, "file"),
    "duplicate_field": None,
    "lf_only": None,
    "too_big": ({}, ("big.wav", b"\0" * ((25 << 20) + 1), "audio/wav")),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_are_4xx(srv, case):
    path = "/v1/audio/transcriptions"
    if case == "not_multipart":
        r = requests.post(srv.base_url + path, json={"file": "x"}, timeout=60)
    elif case == "no_file":  # multipart, without a file part
        r = requests.post(srv.base_url + path, files={"model": (None, "m")}, timeout=60)
    elif case == "file_as_text":
        r = requests.post(srv.base_url + path, files={"file": (None, "abc")}, timeout=60)
    elif case == "duplicate_field":
        r = requests.post(srv.base_url + path, files=[("file", ("a.wav", wav_bytes(800))),
                                                      ("language", (None, "en")),
                                                      ("language", (None, "de"))], timeout=60)
    elif case == "lf_only":
        body = (b"--B\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\n\n"
                + wav_bytes(800) + b"\n--B--\n")
        r = requests.post(srv.base_url + path, data=body, timeout=60,
                          headers={"Content-Type": "multipart/form-data; boundary=B"})
    else:
        fields, file = BAD[case]
        r = post_form(srv, path, fields) if file == "file" else post_form(srv, path, fields, file)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    err = r.json()["error"]
    expect = {"file_as_text": (422, "Expected 'file' to be a file-like object, not 'str'."),
              "too_big": (400, "Maximum file size exceeded"),
              "stream_verbose": (400, "verbose_json format doesn't support streaming case"),
              "usage_no_stream": (400, "Stream options can only be defined when `stream=True`."),
              "unknown_model": (404, "The model `nope` does not exist.")}
    if case in expect:
        assert (r.status_code, err["message"]) == expect[case]
    if case == "undecodable":
        assert err["message"].startswith("Invalid or unsupported audio file.")
    if case == "lf_only":
        assert "bare LF" in err["message"]
    # Still serving.
    ok = post_form(srv, path, {"max_completion_tokens": "1"})
    assert ok.status_code == 200, ok.text


def test_model_without_audio_tower_is_vllms_400(tmp_path_factory):
    m = synth_conditional_model(tmp_path_factory, "no_audio", {"vision_config": None,
                                                               "audio_config": None}, {})
    s = start_server(m, [], "no_audio")
    try:
        r = post_form(s, "/v1/audio/translations", {})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(
            f"Audio input was provided but the model '{m}' does not have an audio tower.")
    finally:
        s.stop()
