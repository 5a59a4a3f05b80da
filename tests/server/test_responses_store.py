"""Server flags around the Responses API: the store's entry cap (1,000 responses over a cap of
100: the oldest are evicted, memory stays bounded), CORS with named origins (browser-style
preflights from an allowed and a disallowed origin), /tokenizer_info as lm-eval's remote
tokenizer reads it, and (when FOURCAST_LM_EVAL_PYTHON names a Python with lm-eval) an lm-eval
local-completions run with tokenizer_backend=remote and no tokenizer on the client."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import BEHAVIOUR_FLAGS, ROOT, openai_client, start_server
from helpers import metrics, post

CAP = 100
GOOD, EVIL = "http://good.example", "http://evil.example"


@pytest.fixture(scope="module")
def srv(proto_model):
    s = start_server(proto_model, BEHAVIOUR_FLAGS + [
        "--enable-tokenizer-info-endpoint",
        "--allowed-origins", json.dumps([GOOD]),
        "--allowed-methods", json.dumps(["GET", "POST", "DELETE"]),
        "--allowed-headers", json.dumps(["Authorization", "Content-Type"]),
        "--allow-credentials",
        "--responses-store-max-entries", str(CAP)], "flags")
    yield s
    s.stop()


def test_store_cap_evicts_oldest_and_memory_is_bounded(srv):
    client = openai_client(srv.base_url)
    model = srv.model
    ids, rss = [], {}
    for i in range(1000):
        r = client.responses.create(model=model, input=f"Hello {i}", max_output_tokens=1,
                                    temperature=0)
        ids.append(r.id)
        if i + 1 in (2 * CAP, 1000):
            rss[i + 1] = srv.rss_bytes()
    m = metrics(srv.base_url)
    assert m[("fourcast:responses_stored", "")] == CAP
    assert m[("fourcast:responses_evicted_total", "")] == 1000 - CAP
    # Each record is a small response plus its one-message history: a few KB at most.
    assert m[("fourcast:responses_store_bytes", "")] < CAP * 8192
    for rid in ids[:10] + ids[-CAP - 10:-CAP]:  # the oldest are gone
        assert requests.get(f"{srv.base_url}/v1/responses/{rid}").status_code == 404
    for rid in ids[-CAP:]:
        assert client.responses.retrieve(rid).id == rid
    # 800 more responses after the store was full: the process did not grow with them.
    grown = rss[1000] - rss[2 * CAP]
    assert grown < 16 << 20, f"RSS grew by {grown >> 20} MiB over 800 evicting responses"
    client.close()


def preflight(srv, origin, method="POST", headers="content-type"):
    return requests.options(srv.base_url + "/v1/responses", headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers}, timeout=10)


def test_cors_preflight_allowed_origin(srv):
    r = preflight(srv, GOOD, "POST", "Content-Type, Authorization")
    assert r.status_code == 200 and r.text == "OK"
    h = r.headers
    assert h["Access-Control-Allow-Origin"] == GOOD
    assert h["Access-Control-Allow-Credentials"] == "true"
    assert h["Access-Control-Allow-Methods"] == "GET, POST, DELETE"
    assert h["Access-Control-Allow-Headers"] == \
        "Accept, Accept-Language, Authorization, Content-Language, Content-Type"
    assert h["Vary"] == "Origin" and h["Access-Control-Max-Age"] == "600"
    # The real request after it carries the origin back.
    p = post(srv.base_url, "/v1/responses", {"input": "Hello", "max_output_tokens": 2},
             headers={"Content-Type": "application/json", "Origin": GOOD})
    assert p.status_code == 200
    assert p.headers["Access-Control-Allow-Origin"] == GOOD
    assert p.headers["Access-Control-Allow-Credentials"] == "true"


def test_cors_preflight_disallowed(srv):
    r = preflight(srv, EVIL)
    assert r.status_code == 400 and r.text == "Disallowed CORS origin"
    assert "Access-Control-Allow-Origin" not in r.headers
    assert preflight(srv, GOOD, "PUT").text == "Disallowed CORS method"
    assert preflight(srv, GOOD, "POST", "x-secret").text == "Disallowed CORS headers"
    # Without the allow header the browser blocks the answer; the server still serves it.
    g = requests.get(srv.base_url + "/v1/models", headers={"Origin": EVIL}, timeout=10)
    assert g.status_code == 200 and "Access-Control-Allow-Origin" not in g.headers


def test_tokenizer_info_as_lm_eval_reads_it(srv):
    info = requests.get(srv.base_url + "/tokenizer_info", timeout=10).json()
    cfg = json.loads((Path(srv.model) / "tokenizer_config.json").read_text())
    assert info["tokenizer_class"] == cfg["tokenizer_class"]
    assert (info["bos_token"], info["eos_token"], info["pad_token"]) == ("<bos>", "<eos>", "<pad>")
    assert info["chat_template"] == (Path(srv.model) / "chat_template.jinja").read_text()
    assert info["model_max_length"] == cfg["model_max_length"]
    # lm-eval's RemoteTokenizer: eos_token_id = /tokenize(eos)[0], decode via /detokenize.
    tok = post(srv.base_url, "/tokenize", {"prompt": info["eos_token"],
                                           "add_special_tokens": False}).json()["tokens"]
    assert tok == [1]
    ids = post(srv.base_url, "/tokenize", {"prompt": "Paris.", "add_special_tokens": False})
    back = post(srv.base_url, "/detokenize", {"tokens": ids.json()["tokens"]}).json()["prompt"]
    assert back == "Paris."


LM_EVAL_TASK = """task: fourcast_tiny_greeting
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["<turn|>"]
  max_gen_toks: 16
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def test_lm_eval_remote_tokenizer(srv, tmp_path):
    py = os.environ.get("FOURCAST_LM_EVAL_PYTHON")
    if not py:
        pytest.skip("set FOURCAST_LM_EVAL_PYTHON to a Python with lm-eval installed")
    prompt = "<bos><|turn>user\nWhat is the capital of France?<turn|>\n<|turn>model\n"
    data = tmp_path / "greeting.jsonl"
    data.write_text("".join(json.dumps({"prompt": prompt, "answer": "Paris."}) + "\n"
                            for _ in range(4)))
    (tmp_path / "task.yaml").write_text(LM_EVAL_TASK.format(data=data))
    out = tmp_path / "out"
    args = ",".join([f"model={srv.model}", f"base_url={srv.base_url}/v1/completions",
                     "tokenizer_backend=remote", "tokenized_requests=False",
                     "num_concurrent=1", "max_retries=1"])
    r = subprocess.run([py, "-m", "lm_eval", "--model", "local-completions", "--model_args", args,
                        "--tasks", "fourcast_tiny_greeting", "--include_path", str(tmp_path),
                        "--output_path", str(out), "--log_samples"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env=dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    em = results["results"]["fourcast_tiny_greeting"]["exact_match,none"]
    assert em == 1.0, results["results"]
