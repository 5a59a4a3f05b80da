"""The `fourcast` command line as a user meets it: --help of every command on stdout with exit 0
and every flag listed; JSON files nested 10^5 and 10^6 deep give a named error and exit 1; bad
--speculative-config keys and KV budgets say what is wrong (docs/config.md, engine/kv_plan.h)."""
import json
import shutil
import subprocess

import pytest

from conftest import ROOT, fourcast_bin

TINY = ROOT / "models" / "tiny-gemma4"
COMMANDS = ["generate", "inspect", "synth", "serve", "tokenize", "template", "parse", "quantize",
            "kl", "constrain"]


def run(args, timeout=60):
    binary = fourcast_bin()
    if binary is None:
        pytest.skip("fourcast binary not found")
    return subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_overview_lists_every_command():
    p = run(["--help"])
    assert p.returncode == 0 and p.stderr == "", p.stderr
    for c in COMMANDS + ["bench serve"]:
        assert f"  {c} " in p.stdout, (c, p.stdout)
    # No command: the same overview, but as an error.
    p = run([])
    assert p.returncode == 2 and p.stdout == "" and "bench serve" in p.stderr
    p = run(["frobnicate"])
    assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr


@pytest.mark.parametrize("command", COMMANDS + ["bench serve"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_answers_help(command, flag):
    # --help wins wherever it stands, even after other (valid or not) arguments.
    p = run(command.split() + ["--model", "x", flag])
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert p.stderr == "", p.stderr
    assert p.stdout.startswith("usage: fourcast " + command), p.stdout
    assert "--help" in p.stdout or command == "bench serve"


# Each command's flags, as its parser accepts them, must all appear in its --help.
FLAGS = {
    "generate": ["--model", "--prompt-ids", "--max-tokens", "--temperature", "--top-k", "--top-p",
                 "--min-p", "--seed", "--threads", "--prefill-chunk", "--repetition-penalty",
                 "--kv-cache-dtype", "--nvfp4-mode", "--device", "--ignore-eos",
                 "--zero-nan-scales", "--lm-head-dtype", "--cpu-prefill-int8", "--cpu-decode-int8",
                 "--cpu-weights-mmap"],
    "synth": ["--shape", "--out", "--seed", "--shard-gb", "--tokenizer", "--quant", "--copy-of",
              "--noise", "--eagle3-for", "--assistant-for", "--draft-vocab", "--centroids",
              "--centroid-top-k", "--attn-bf16", "--w4a16"],
    "serve": ["--served-model-name", "--max-model-len", "--max-num-seqs", "--max-num-batched-tokens",
              "--kv-cache-dtype", "--enable-prefix-caching", "--no-enable-prefix-caching",
              "--enable-chunked-prefill", "--enable-auto-tool-choice", "--tool-call-parser",
              "--reasoning-parser", "--chat-template", "--default-chat-template-kwargs",
              "--generation-config", "--speculative-config", "--api-key", "--cpu-kv-cache-gb",
              "--gpu-memory-utilization", "--quantization", "--device", "--threads",
              "--max-request-bytes", "--trust-remote-code", "--seed", "--host", "--port",
              "--lm-head-dtype", "--cpu-prefill-int8", "--cpu-decode-int8", "--cpu-weights-mmap"],
    "tokenize": ["--tokenizer", "--text", "--ids", "--json", "--text-specials"],
    "template": ["--model", "--template", "--messages", "--tools", "--kwargs",
                 "--no-generation-prompt"],
    "parse": ["--text", "--tools", "--no-reasoning", "--start-in-reasoning"],
    "quantize": ["--model", "--out", "--format", "--algo", "--calib", "--calib-ids", "--exclude",
                 "--kv-cache", "--eval", "--no-awq-identity", "--verbose"],
    "kl": ["--base", "--model", "--text", "--ids", "--tokens", "--seq-len", "--loader", "--w4a4"],
    "constrain": ["--tokenizer", "--json-schema", "--regex", "--grammar", "--choice", "--tools",
                  "--check", "--print-grammar", "--bench", "--json-object", "--strict",
                  "--compact", "--dump-masks"],
}


@pytest.mark.parametrize("command", list(FLAGS))
def test_help_lists_the_flags(command):
    out = run([command, "--help"]).stdout
    listed = {line.split()[0].rstrip(",") for line in out.splitlines() if line.startswith("  --")}
    missing = [f for f in FLAGS[command] if f not in listed]
    assert not missing, (missing, out)


def nested(depth, kind):
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def model_copy(tmp_path, replace=None):
    d = tmp_path / "model"
    shutil.copytree(TINY, d)
    for name, text in (replace or {}).items():
        (d / name).write_text(text)
    return d


DEPTHS = [10**5, 10**6]


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ["array", "object"])
def test_deep_config_json_is_a_named_error(tmp_path, depth, kind):
    d = model_copy(tmp_path, {"config.json": nested(depth, kind)})
    for args in (["inspect", "--model", str(d)],
                 ["serve", str(d), "--host", "127.0.0.1", "--port", "0"]):
        p = run(args)
        assert p.returncode == 1, (args, p.returncode, p.stderr[-2000:])
        assert "config.json: JSON nested deeper than 256 levels (the limit)" in p.stderr, p.stderr[-2000:]


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json",
                                  "generation_config.json", "hf_quant_config.json"])
def test_deep_model_files_are_named_errors(tmp_path, depth, name):
    d = model_copy(tmp_path, {name: nested(depth, "array")})
    p = run(["serve", str(d), "--host", "127.0.0.1", "--port", "0"])
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert f"{name}: JSON nested deeper than 256 levels (the limit)" in p.stderr, p.stderr[-2000:]
    assert "ready:" not in p.stderr


@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_tokenizer_and_template_files(tmp_path, depth):
    deep = tmp_path / "deep.json"
    deep.write_text(nested(depth, "object"))
    p = run(["tokenize", "--tokenizer", str(deep), "--text", "hi"])
    assert p.returncode == 1 and "deep.json: JSON nested deeper than 256 levels" in p.stderr, p.stderr
    p = run(["template", "--model", str(TINY), "--messages", str(deep)])
    assert p.returncode == 1 and "deep.json: JSON nested deeper than 256 levels" in p.stderr, p.stderr
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    p = run(["template", "--model", str(TINY), "--messages", str(msgs), "--kwargs",
             nested(ARGV_DEPTH, "array")])
    assert p.returncode == 1 and "--kwargs: JSON nested deeper than 256 levels" in p.stderr, p.stderr


# One command-line argument is at most 128 KiB (Linux MAX_ARG_STRLEN): 60,000 levels of arrays.
ARGV_DEPTH = 60_000


@pytest.mark.parametrize("flag", ["--speculative-config", "--default-chat-template-kwargs"])
def test_deep_json_flags(flag):
    p = run(["serve", str(TINY), flag, nested(ARGV_DEPTH, "array"), "--port", "0"])
    assert p.returncode == 1 and f"flag {flag}: JSON nested deeper than 256 levels" in p.stderr, p.stderr


def test_unknown_speculative_config_key_lists_the_accepted_ones():
    spec = json.dumps({"method": "mtp", "model": "x", "num_speculative_tokens": 2,
                       "num_spec_tokens": 3})
    p = run(["serve", str(TINY), "--speculative-config", spec, "--port", "0"])
    assert p.returncode == 1, p.stderr
    assert 'unknown key "num_spec_tokens"' in p.stderr, p.stderr
    assert "accepted: method, model, num_speculative_tokens" in p.stderr, p.stderr


@pytest.mark.parametrize("command", ["serve", "generate"])
def test_bad_lm_head_dtype_names_the_choices(command):
    args = ([command, str(TINY), "--port", "0"] if command == "serve"
            else [command, "--model", str(TINY), "--prompt-ids", "2,105"])
    p = run(args + ["--lm-head-dtype", "fp4"])
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "--lm-head-dtype: 'fp4' is not one of checkpoint, bf16, nvfp4" in p.stderr, p.stderr


def test_generate_with_an_nvfp4_head_runs():
    p = run(["generate", "--model", str(TINY), "--prompt-ids", "2,105,2364", "--max-tokens", "3",
             "--lm-head-dtype", "nvfp4", "--threads", "1"])
    assert p.returncode == 0, p.stderr
    ids = [int(t) for t in p.stdout.strip().split(",")]
    assert len(ids) == 3 and all(0 <= t < 16320 for t in ids), p.stdout


def test_zero_kv_budget_is_about_the_budget():
    p = run(["serve", str(TINY), "--cpu-kv-cache-gb", "0", "--port", "0"])
    assert p.returncode == 1, p.stderr
    assert "--cpu-kv-cache-gb 0 leaves no memory for the KV cache" in p.stderr, p.stderr
    assert "max-model-len" not in p.stderr


def test_kv_budget_too_small_for_one_request_says_what_it_needs():
    # The tiny model's KV: 2 full layers 1 x 32 and 2 sliding 2 x 16 heads, BF16: 512 bytes per
    # token in total. 1 MiB cannot hold one 4096-token request (4096 x 256 full + the window).
    p = run(["serve", str(TINY), "--cpu-kv-cache-gb", str(1 / 1024), "--max-model-len", "4096",
             "--port", "0"])
    assert p.returncode == 1, p.stderr
    assert "one request of --max-model-len 4096 needs" in p.stderr, p.stderr
    assert "the largest --max-model-len that fits is" in p.stderr, p.stderr
