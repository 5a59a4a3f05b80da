"""The production `vllm serve` launch commands are accepted by `fourcast serve` as they are:
start, ready line, /health, one request, clean stop on SIGTERM. Unknown or malformed flags exit
non-zero with a message naming the flag."""
import shlex

import pytest
import requests

from conftest import Server, run_serve
from helpers import post

# The production commands, with the model path replaced by MODEL and the drafters' by DRAFTER (an
# NVFP4 ModelOpt checkpoint: the quantized tiny model drafts for itself) and ASSISTANT (a Gemma 4
# MTP assistant made for the tiny model by `fourcast synth --assistant-for`); --host 127.0.0.1 --port 0 are
# appended. They use --max-model-len 131072 and port 8000 in production; the tiny test model's
# max_position_embeddings is 4096, so 4096 here.
LAUNCH_COMMANDS = {
    "deckard_31b_drafter": (
        "serve MODEL --served-model-name deckard-31b --quantization modelopt --dtype auto "
        "--kv-cache-dtype fp8 --tensor-parallel-size 1 --max-model-len 4096 --max-num-seqs 4 "
        "--gpu-memory-utilization 0.85 --trust-remote-code --enable-chunked-prefill "
        "--enable-prefix-caching --enable-auto-tool-choice --tool-call-parser gemma4 "
        "--reasoning-parser gemma4 --speculative-config "
        "'{\"method\":\"draft_model\",\"model\":\"DRAFTER\","
        "\"num_speculative_tokens\":5,\"quantization\":\"modelopt\"}'"),
    "mtp_single_seq": (
        "serve MODEL --max-model-len 4096 --max-num-seqs 1 --gpu-memory-utilization 0.80 "
        "--kv-cache-dtype fp8 --enable-prefix-caching --disable-hybrid-kv-cache-manager "
        "--chat-template-content-format openai --default-chat-template-kwargs "
        "'{\"enable_thinking\": false}' --chat-template MODEL/chat_template.jinja "
        "--speculative-config '{\"method\":\"mtp\",\"model\":\"ASSISTANT\",\"num_speculative_tokens\":2}'"),
    "multimodal_limits": (
        "serve MODEL --kv-cache-dtype fp8 --gpu-memory-utilization 0.90 --reasoning-parser gemma4 "
        "--tool-call-parser gemma4 --enable-auto-tool-choice --limit-mm-per-prompt "
        "'{\"image\": 2}'"),
}


def launch_args(command, model, drafter="", assistant=""):
    args = shlex.split(command.replace("MODEL", model).replace("DRAFTER", drafter)
                       .replace("ASSISTANT", assistant))
    assert args[0] == "serve" and args[1] == model
    return args[2:]


@pytest.mark.parametrize("name", list(LAUNCH_COMMANDS))
def test_launch_command_accepted(proto_model, nvfp4_model, assistant_model, name):
    # `--quantization modelopt` must be given a ModelOpt checkpoint (vLLM refuses a mismatch).
    model = nvfp4_model if "--quantization modelopt" in LAUNCH_COMMANDS[name] else proto_model
    s = Server(model, launch_args(LAUNCH_COMMANDS[name], model, nvfp4_model, assistant_model),
               f"launch-{name}")
    s.start()
    try:
        assert "max_model_len 4096" in s.log(), s.log()
        if "--kv-cache-dtype fp8" in LAUNCH_COMMANDS[name]:
            assert "F8_E4M3" in s.log(), s.log()
        if "--speculative-config" in LAUNCH_COMMANDS[name]:
            assert "speculative decoding:" in s.log(), s.log()
        assert requests.get(s.base_url + "/health", timeout=10).status_code == 200
        models = requests.get(s.base_url + "/v1/models", timeout=10).json()
        ids = [m["id"] for m in models["data"]]
        if "--served-model-name" in LAUNCH_COMMANDS[name]:
            assert ids == ["deckard-31b"], models
            assert models["data"][0]["max_model_len"] == 4096
        # One request with the served name, one chunk of streaming.
        r = post(s.base_url, "/v1/chat/completions", {
            "model": ids[0], "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 3, "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == ids[0]
    finally:
        rc = s.stop()
    assert rc == 0, f"exit status {rc} after SIGTERM\n{s.log()}"
    assert "stopped" in s.log()


@pytest.mark.parametrize("args,needle", [
    (["--no-such-flag"], "--no-such-flag"),
    (["--enable-turbo-mode", "1"], "--enable-turbo-mode"),
    (["--max-model-len"], "--max-model-len"),            # missing value
    (["--max-model-len", "lots"], "--max-model-len"),    # not an integer
    (["--speculative-config", "{not json"], "--speculative-config"),
    (["--kv-cache-dtype", "int3"], "--kv-cache-dtype"),
    (["--tensor-parallel-size", "2"], "--tensor-parallel-size"),
    (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization"),
    (["--max-model-len", "1000000"], "--max-model-len"),  # beyond max_position_embeddings
    (["--quantization", "modelopt"], "not quantized"),   # BF16 checkpoint
    (["--quantization", "gptq"], "--quantization"),
    (["--nvfp4-mode", "w2a2"], "--nvfp4-mode"),
])
def test_bad_flag_exits_nonzero_naming_it(proto_model, args, needle):
    p = run_serve([proto_model] + args + ["--host", "127.0.0.1", "--port", "0"])
    assert p.returncode != 0, p.stderr
    assert needle in p.stderr, p.stderr
    assert "ready:" not in p.stderr


def test_quantization_flag_must_match_the_checkpoint(nvfp4_model):
    p = run_serve([nvfp4_model, "--quantization", "compressed-tensors", "--host", "127.0.0.1",
                   "--port", "0"])
    assert p.returncode != 0
    assert "a ModelOpt checkpoint" in p.stderr, p.stderr


def test_missing_model_dir_fails_cleanly():
    p = run_serve(["/nonexistent/model-dir", "--host", "127.0.0.1", "--port", "0"])
    assert p.returncode != 0
    assert "/nonexistent/model-dir" in p.stderr, p.stderr


def test_sigint_stops_cleanly(proto_model):
    import signal
    s = Server(proto_model, [], "sigint").start()
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(15) == 0, s.log()
    s.stop()


def test_prompt_tokens_details_report_prefix_cache_hits(proto_model):
    # vLLM's --enable-prompt-tokens-details: usage.prompt_tokens_details.cached_tokens, the prompt
    # tokens served from the prefix cache (whole 16-token blocks, never the last prompt token).
    s = Server(proto_model, ["--enable-prompt-tokens-details"], "prompt-tokens-details")
    s.start()
    try:
        prompt = "one two three four five six seven eight nine ten " * 8
        usages = []
        for _ in range(2):
            r = post(s.base_url, "/v1/completions", {"prompt": prompt, "max_tokens": 2,
                                                     "temperature": 0})
            assert r.status_code == 200, r.text
            usages.append(r.json()["usage"])
        assert usages[0]["prompt_tokens_details"] == {"cached_tokens": 0}
        cached = usages[1]["prompt_tokens_details"]["cached_tokens"]
        n = usages[1]["prompt_tokens"]
        assert cached % 16 == 0 and n - 16 < cached < n, usages
    finally:
        assert s.stop() == 0
