"""Shared fixtures of the server tests: start `fourcast serve` on a free loopback port, wait until
it is ready, hand out its base URL and clients, stop it at the end.

Environment:
  FOURCAST_BIN         the fourcast binary (ctest sets it); default: the first
                       build*/apps/cli/fourcast found under the source root.
  FOURCAST_TEST_MODEL  model directory for the protocol-level tests (bad input, load, launch);
                       default: models/tiny-gemma4 when it is complete. The behaviour tests
                       (test_e2e.py) always need the trained models/tiny-gemma4.
"""
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TRAINED_MODEL = ROOT / "models" / "tiny-gemma4"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
READY_RE = re.compile(r"ready: serving .* on http://([^:/\s]+):(\d+)")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
# The flags of the behaviour tests (parsers on, as the production launch commands have them).
BEHAVIOUR_FLAGS = ["--enable-auto-tool-choice", "--tool-call-parser", "gemma4",
                   "--reasoning-parser", "gemma4"]


def model_complete(d):
    return d is not None and all((Path(d) / f).is_file() for f in MODEL_FILES)


def trained_model_present():
    return model_complete(TRAINED_MODEL)


def fourcast_bin():
    b = os.environ.get("FOURCAST_BIN")
    if b:
        return b if os.access(b, os.X_OK) else None
    for c in sorted(glob.glob(str(ROOT / "build*" / "apps" / "cli" / "fourcast"))):
        if os.access(c, os.X_OK):
            return c
    return None


def protocol_model():
    """The model for protocol-level tests: FOURCAST_TEST_MODEL, else the trained tiny model."""
    m = os.environ.get("FOURCAST_TEST_MODEL")
    if m:
        return m if model_complete(m) else None
    return str(TRAINED_MODEL) if trained_model_present() else None


# Every server started in this session, so a failing test report can show their logs.
_SERVERS = []


class Server:
    """One `fourcast serve` process with its stderr captured to a file."""

    def __init__(self, model, flags=(), name="server"):
        binary = fourcast_bin()
        if binary is None:
            pytest.skip("fourcast binary not found (set FOURCAST_BIN or build the fourcast target)")
        self.name = name
        self.model = model
        self.args = [binary, "serve"] + ([str(model)] if model else []) + list(flags) + [
            "--host", "127.0.0.1", "--port", "0"]
        self.log_path = Path(tempfile.mkstemp(prefix=f"fourcast-{name}-", suffix=".log")[1])
        self.proc = None
        self.port = None
        self.base_url = None

    def start(self, timeout=START_TIMEOUT_S):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=ROOT)
        _SERVERS.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = READY_RE.search(self.log())
            if m:
                self.port = int(m.group(2))
                self.base_url = f"http://127.0.0.1:{self.port}"
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before ready:"
                                   f"\n{self.command_line()}\n{self.log()}")
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"{self.name}: no ready line within {timeout} s\n{self.log()}")
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base_url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name}: /health not 200 within {timeout} s\n{self.log()}")

    def command_line(self):
        return " ".join(self.args)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
        return self.proc.returncode


def start_server(model, flags=(), name="server"):
    return Server(model, flags, name).start()


def run_serve(args, timeout=30):
    """`fourcast serve ARGS` expected to exit (a start-up error): the CompletedProcess."""
    binary = fourcast_bin()
    if binary is None:
        pytest.skip("fourcast binary not found")
    return subprocess.run([binary, "serve"] + args, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def behaviour_server():
    """The trained tiny model with the tool-call and reasoning parsers (skips without it)."""
    if not trained_model_present():
        pytest.skip(f"the trained model is missing ({TRAINED_MODEL}/model.safetensors etc.); "
                    "build it with tools/refgen/make_tiny_model.py")
    s = start_server(str(TRAINED_MODEL), BEHAVIOUR_FLAGS, "behaviour")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def proto_model():
    m = protocol_model()
    if m is None:
        pytest.skip("no model: models/tiny-gemma4 is incomplete and FOURCAST_TEST_MODEL is unset")
    return m


@pytest.fixture(scope="session")
def spec_behaviour_server():
    """behaviour_server with speculative decoding: the trained model drafts for itself
    (draft_model, k = 3, fixed), so every stream carries multi-token deltas and every sampled
    request goes through the rejection sampler."""
    if not trained_model_present():
        pytest.skip(f"the trained model is missing ({TRAINED_MODEL}/model.safetensors etc.)")
    spec = json.dumps({"method": "draft_model", "model": str(TRAINED_MODEL),
                       "num_speculative_tokens": 3, "adaptive": False})
    s = start_server(str(TRAINED_MODEL), BEHAVIOUR_FLAGS + ["--speculative-config", spec],
                     "behaviour-spec")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def nvfp4_model(proto_model, tmp_path_factory):
    """proto_model quantized by `fourcast quantize` to a ModelOpt NVFP4 checkpoint with FP8 KV
    scales: what the production launch commands (`--quantization modelopt --kv-cache-dtype fp8`)
    expect to be given."""
    binary = fourcast_bin()
    if binary is None:
        pytest.skip("fourcast binary not found (set FOURCAST_BIN or build the fourcast target)")
    out = tmp_path_factory.mktemp("nvfp4") / "model"
    r = subprocess.run([binary, "quantize", "--model", proto_model, "--out", str(out),
                        "--format", "modelopt", "--algo", "max", "--kv-cache", "fp8", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return str(out)


@pytest.fixture(scope="session")
def assistant_model(proto_model, tmp_path_factory):
    """A random Gemma 4 MTP assistant with the geometry proto_model pairs with."""
    binary = fourcast_bin()
    if binary is None:
        pytest.skip("fourcast binary not found (set FOURCAST_BIN or build the fourcast target)")
    out = tmp_path_factory.mktemp("assistant") / "model"
    r = subprocess.run([binary, "synth", "--assistant-for", proto_model, "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return str(out)


@pytest.fixture(scope="session")
def proto_server(proto_model):
    """The protocol-test server: parsers on, a small request size limit (64 KiB)."""
    s = start_server(proto_model, BEHAVIOUR_FLAGS + ["--max-request-bytes", "65536"], "proto")
    yield s
    s.stop()


def openai_client(base_url, **kw):
    import openai
    kw.setdefault("api_key", "EMPTY")
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 60)
    return openai.OpenAI(base_url=base_url + "/v1", **kw)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for s in _SERVERS:
            text = s.log()
            tail = "\n".join(text.splitlines()[-80:])
            state = "running" if s.alive() else f"exited {s.proc.returncode if s.proc else '-'}"
            report.sections.append((f"fourcast {s.name} ({state}) log: {s.log_path}",
                                    f"$ {s.command_line()}\n{tail}"))
    return report


def pytest_sessionfinish(session, exitstatus):
    """Stops any server still running; keeps the logs only when something failed."""
    for s in _SERVERS:
        if s.alive():
            s.stop()
        if exitstatus == 0:
            s.log_path.unlink(missing_ok=True)


# Shared by the end-to-end modules: every test runs against the plain and the speculative server.
@pytest.fixture(scope="module", params=["plain", "speculative"])
def srv(request):
    """Every test runs against the plain server and against one drafting for itself (the same
    answers, tool calls and reasoning must come out of multi-token verification steps)."""
    return request.getfixturevalue(
        "behaviour_server" if request.param == "plain" else "spec_behaviour_server")


@pytest.fixture(scope="module")
def client(srv):
    c = openai_client(srv.base_url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def model(srv):
    return srv.model


# The compact tokenizer's media markers (tools/refgen/make_tiny_model.py).
TINY_MEDIA_IDS = {"boi_token_id": 16273, "boa_token_id": 16274, "image_token_id": 16275,
                  "audio_token_id": 16276, "eoi_token_id": 16277, "eoa_token_index": 16278,
                  "video_token_id": 16279}

# Small random towers for synth_conditional_model (tests/server/test_multimodal.py, test_audio.py,
# test_transcription.py).
TINY_VISION_CONFIG = {"model_type": "gemma4_vision", "hidden_size": 32, "intermediate_size": 64,
                      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
                      "head_dim": 8, "patch_size": 16, "pooling_kernel_size": 3,
                      "position_embedding_size": 2048, "standardize": True,
                      "use_clipped_linears": False, "default_output_length": 70,
                      "rope_parameters": {"rope_type": "default", "rope_theta": 100.0}}
TINY_AUDIO_CONFIG = {"model_type": "gemma4_audio", "hidden_size": 32, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "hidden_act": "silu",
                     "subsampling_conv_channels": [128, 8], "conv_kernel_size": 3,
                     "residual_weight": 0.5, "attention_chunk_size": 4,
                     "attention_context_left": 5, "attention_context_right": 0,
                     "attention_logit_cap": 50.0, "use_clipped_linears": True,
                     "rms_norm_eps": 1e-6, "gradient_clipping": 1e10, "output_proj_dims": 32}


def wav_bytes(n, rate=16000, samples=None):
    """A mono 16-bit PCM WAV of n samples: a fixed saw-like pattern, or `samples` (ints)."""
    import io
    import struct
    import wave
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        if samples is None:
            samples = ((i * 37) % 2000 - 1000 for i in range(n))
        w.writeframes(b"".join(struct.pack("<h", v) for v in samples))
    return b.getvalue()


def synth_conditional_model(tmp_path_factory, name, towers, parts, text_overrides=None):
    """A Gemma4ForConditionalGeneration checkpoint written by `fourcast synth`: the bundled tiny
    text model's config (with text_overrides), the given tower configs (vision_config /
    audio_config, None for an absent one), random weights, the tiny tokenizer, and its chat
    template taught to render the content parts named in `parts` (type -> placeholder text)."""
    tiny = ROOT / "models" / "tiny-gemma4"
    if not (tiny / "config.json").is_file():
        pytest.skip("models/tiny-gemma4 is missing")
    binary = fourcast_bin()
    if binary is None:
        pytest.skip("fourcast binary not found")
    d = tmp_path_factory.mktemp(name)
    text = json.loads((tiny / "config.json").read_text())
    text.pop("architectures", None)
    text.update(text_overrides or {})
    cfg = {"architectures": ["Gemma4ForConditionalGeneration"], "model_type": "gemma4",
           "text_config": text, "tie_word_embeddings": True, **TINY_MEDIA_IDS, **towers}
    (d / "shape.json").write_text(json.dumps(cfg))
    out = d / "model"
    r = subprocess.run([binary, "synth", "--shape", str(d / "shape.json"), "--out", str(out),
                        "--tokenizer", str(tiny / "tokenizer.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    tpl = (tiny / "chat_template.jinja").read_text()
    old = "{%- for p in content if p.type == 'text' -%}{{ p.text | trim }}{%- endfor -%}"
    assert old in tpl
    branches = "".join("{%%- elif p.type == '%s' -%%}%s" % (t, ph) for t, ph in parts.items())
    tpl = tpl.replace(old, "{%- for p in content -%}{%- if p.type == 'text' -%}{{ p.text | trim }}"
                           + branches + "{%- endif -%}{%- endfor -%}")
    (out / "chat_template.jinja").write_text(tpl)
    for f in ("tokenizer_config.json", "generation_config.json"):
        (out / f).write_bytes((tiny / f).read_bytes())
    return str(out)
