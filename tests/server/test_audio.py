"""Audio through the OpenAI chat API (issue 16), end to end with the openai SDK, on a small random
Gemma4ForConditionalGeneration made by `fourcast synth` (the bundled tiny model's text geometry
and tokenizer, a 2-layer audio tower) and a chat template that renders audio parts as <|audio|>:
an input_audio part adds boa + N + eoa prompt tokens (N = the processor's count: 18 for 0.7 s),
bad audio is a 4xx with the server still serving.
"""
import base64
import io
import json
import struct
import wave

import openai
import pytest
import requests

from conftest import start_server, synth_conditional_model


def wav_bytes(n, rate=16000):
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", (i * 37) % 2000 - 1000) for i in range(n)))
    return b.getvalue()


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory):
    return synth_conditional_model(
        tmp_path_factory, "audio",
        {"vision_config": None,
         "audio_config": {"model_type": "gemma4_audio", "hidden_size": 32,
                            "num_hidden_layers": 2, "num_attention_heads": 4,
                            "hidden_act": "silu", "subsampling_conv_channels": [128, 8],
                            "conv_kernel_size": 3, "residual_weight": 0.5,
                            "attention_chunk_size": 4, "attention_context_left": 5,
                            "attention_context_right": 0, "attention_logit_cap": 50.0,
                            "use_clipped_linears": True, "rms_norm_eps": 1e-6,
                            "gradient_clipping": 1e10, "output_proj_dims": 32}},
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
