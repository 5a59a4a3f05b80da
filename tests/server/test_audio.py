"""Audio through the OpenAI chat API (issue 16), end to end with the openai SDK, on a small random
Gemma4ForConditionalGeneration made by `fourcast synth` (the bundled tiny model's text geometry
and tokenizer, a 2-layer audio tower) and a chat template that renders audio parts as <|audio|>:
an input_audio part adds boa + N + eoa prompt tokens (N = the processor's count: 18 for 0.7 s),
bad audio is a 4xx with the server still serving.
"""
import base64
import json

import openai
import pytest
import requests

from conftest import (TINY_AUDIO_CONFIG, TINY_VISION_CONFIG, start_server,
                      synth_conditional_model, wav_bytes)


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory):
    return synth_conditional_model(
        tmp_path_factory, "audio",
        {"vision_config": None, "audio_config": TINY_AUDIO_CONFIG},
        {"audio": "<|audio|>"})


@pytest.fixture(scope="module")
def srv(audio_model):
    s = start_server(audio_model, ["--limit-mm-per-prompt", '{"audio": 1}'], "audio")
    yield s
    s.stop()


def audio_msg(data, fmt="wav", text="Transcribe."):
    return [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(),
                                                "format": fmt}},
        {"type": "text", "text": text}]}]


def post(srv, messages):
    name = requests.get(srv.base_url + "/v1/models", timeout=5).json()["data"][0]["id"]
    return requests.post(srv.base_url + "/v1/chat/completions",
                         json={"model": name, "messages": messages, "max_tokens": 2}, timeout=60)


def test_input_audio_counts_soft_tokens(srv):
    client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0)
    name = client.models.list().data[0].id
    base = client.chat.completions.create(
        model=name, max_tokens=2, temperature=0,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Transcribe."}]}])
    r = client.chat.completions.create(model=name, messages=audio_msg(wav_bytes(11200)),
                                       max_tokens=2, temperature=0)
    assert r.usage.prompt_tokens == base.usage.prompt_tokens + 18 + 2
    assert r.usage.completion_tokens >= 1


@pytest.mark.parametrize("case", ["truncated", "wrong_format", "zero", "ten_minutes", "codec",
                                  "two_clips"])
def test_bad_audio_is_4xx(srv, case):
    good = wav_bytes(8000)
    if case == "truncated":
        msg = audio_msg(good[:len(good) // 2])
    elif case == "wrong_format":
        msg = audio_msg(good, fmt="mp3")
    elif case == "zero":
        msg = audio_msg(wav_bytes(0))
    elif case == "ten_minutes":
        msg = audio_msg(wav_bytes(600 * 1000, rate=1000))
    elif case == "codec":
        msg = audio_msg(b"\x1aE\xdf\xa3" + b"\0" * 200, fmt="webm")
    else:
        msg = audio_msg(good)
        msg[0]["content"].append(msg[0]["content"][0])
    r = post(srv, msg)
    assert 400 <= r.status_code < 500, r.text
    assert "error" in r.json()
    assert post(srv, audio_msg(good)).status_code == 200  # still serving


@pytest.fixture(scope="module")
def vision_srv(tmp_path_factory):
    m = synth_conditional_model(tmp_path_factory, "vision_only",
                                {"audio_config": None, "vision_config": TINY_VISION_CONFIG},
                                {"image": "<|image|>", "audio": "<|audio|>"})
    s = start_server(m, [], "vision_only")
    yield s
    s.stop()


def test_audio_to_a_model_without_audio_tower_is_vllms_400(vision_srv):
    r = post(vision_srv, audio_msg(wav_bytes(8000)))
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert msg == ("Audio input was provided but the model '%s' does not have an audio tower. "
                   "Audio inference is only supported for Gemma4 models that include an "
                   "audio_config (i.e., models that include an audio_config)." % vision_srv.model)
    assert post(vision_srv, [{"role": "user", "content": "hi"}]).status_code == 200
