"""vLLM request extensions end to end, against the trained tiny model on the plain and the
speculative server (fixtures in conftest): prompt scoring (echo with logprobs, max_tokens 0,
prompt_logprobs), usage details, the logits processors (logit_bias, allowed_token_ids,
min_tokens, bad_words), truncate_prompt_tokens and return_token_ids."""
import json

from helpers import PROMPT, post, sse_events


def test_completions_echo_without_generation(srv):
    r = post(srv.base_url, "/v1/completions", {"prompt": "Hello there", "echo": True,
                                               "max_tokens": 0, "logprobs": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    c = body["choices"][0]
    assert c["text"] == "Hello there"
    assert c["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 0
    lp = c["logprobs"]
    n = body["usage"]["prompt_tokens"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == n
    # Nothing predicts the first token; every later one has a logprob <= 0 and one alternative.
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert all(x <= 0 for x in lp["token_logprobs"][1:])
    assert all(len(t) == 1 for t in lp["top_logprobs"][1:])
    assert lp["text_offset"][0] == 0


def test_completions_echo_prompt_logprobs_match_generation(srv):
    # Scoring prompt + its greedy continuation must give the continuation the logprobs it was
    # generated with (lm-eval-harness loglikelihood relies on this).
    gen = post(srv.base_url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 4,
                                                 "temperature": 0, "logprobs": 1}).json()
    text = gen["choices"][0]["text"]
    want = gen["choices"][0]["logprobs"]["token_logprobs"]
    r = post(srv.base_url, "/v1/completions", {"prompt": PROMPT + text, "echo": True,
                                               "max_tokens": 0, "logprobs": 1})
    assert r.status_code == 200, r.text
    got = r.json()["choices"][0]["logprobs"]
    assert got["tokens"][-len(want):] == gen["choices"][0]["logprobs"]["tokens"]
    for g, w in zip(got["token_logprobs"][-len(want):], want):
        assert abs(g - w) < 1e-3, (got["token_logprobs"][-len(want):], want)


def test_prompt_logprobs_extension(srv):
    # vLLM's prompt_logprobs: per prompt position null (the first) or {token id: {logprob, rank,
    # decoded_token}} holding the prompt token and the top alternatives.
    r = post(srv.base_url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2,
                                               "temperature": 0, "prompt_logprobs": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    pl = body["choices"][0]["prompt_logprobs"]
    assert body["choices"][0]["logprobs"] is None
    ids = post(srv.base_url, "/tokenize", {"prompt": PROMPT}).json()["tokens"]
    assert len(pl) == len(ids) == body["usage"]["prompt_tokens"] and pl[0] is None
    for tok, d in zip(ids[1:], pl[1:]):
        assert str(tok) in d and 2 <= len(d) <= 3, d
        assert d[str(tok)]["logprob"] <= 0 and d[str(tok)]["rank"] >= 1
        assert sorted(e["rank"] for e in d.values())[0] == 1
    # Chat: one list for the response.
    r = post(srv.base_url, "/v1/chat/completions",
             {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2,
              "prompt_logprobs": 0})
    assert r.status_code == 200, r.text
    pl = r.json()["prompt_logprobs"]
    assert len(pl) == r.json()["usage"]["prompt_tokens"] and pl[0] is None
    assert all(len(d) == 1 for d in pl[1:])
    # Not with streaming (vLLM refuses it too).
    r = post(srv.base_url, "/v1/completions", {"prompt": "Hi", "stream": True,
                                               "prompt_logprobs": 1})
    assert r.status_code == 400 and "prompt_logprobs" in r.text, r.text


def test_completions_stream_echo_logprobs(srv):
    r = post(srv.base_url, "/v1/completions", {"prompt": "Hello there", "echo": True,
                                               "max_tokens": 3, "logprobs": 1, "stream": True,
                                               "temperature": 0}, stream=True)
    assert r.status_code == 200
    chunks = [json.loads(e) for e in sse_events(r) if e != "[DONE]"]
    first = chunks[0]["choices"][0]
    assert first["text"] == "Hello there"
    lp = first["logprobs"]
    n = len(post(srv.base_url, "/tokenize", {"prompt": "Hello there"}).json()["tokens"])
    assert len(lp["tokens"]) == n and lp["token_logprobs"][0] is None
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]).startswith(
        "Hello there")


def test_prompt_tokens_details_off_by_default(srv):
    r = post(srv.base_url, "/v1/completions", {"prompt": "Hi", "max_tokens": 1})
    assert r.json()["usage"]["prompt_tokens_details"] is None


def test_completions_max_tokens_zero_needs_echo(srv):
    r = post(srv.base_url, "/v1/completions", {"prompt": "Hello", "max_tokens": 0})
    assert r.status_code == 400 and "max_tokens" in r.text, r.text


# ---------------------------------------------------------------- logits processors
def completion_ids(srv, **extra_body):
    body = {"prompt": PROMPT.replace("Hello", "Count to five"), "max_tokens": 8,
            "temperature": 0, "logprobs": 0}
    body.update(extra_body)
    r = post(srv.base_url, "/v1/completions", body)
    assert r.status_code == 200, r.text
    c = r.json()["choices"][0]
    return c, c["logprobs"]["tokens"]


def test_logit_bias_and_allowed_token_ids(srv):
    base, base_toks = completion_ids(srv)
    ids = post(srv.base_url, "/tokenize", {"prompt": base["text"],
                                           "add_special_tokens": False}).json()["tokens"]
    # A +100 bias on one token makes greedy decoding repeat it.
    c, toks = completion_ids(srv, logit_bias={str(ids[1]): 100})
    assert len(set(toks)) == 1 and toks[0] == base_toks[1], (toks, base_toks)
    # Only two tokens allowed: every generated token is one of them.
    c, toks = completion_ids(srv, allowed_token_ids=[ids[0], ids[1]])
    assert set(toks) <= {base_toks[0], base_toks[1]}, toks
    for body, field in [({"logit_bias": {"x": 1}}, "logit_bias"),
                        ({"logit_bias": {"1": "big"}}, "logit_bias"),
                        ({"allowed_token_ids": [-1]}, "allowed_token_ids"),
                        ({"allowed_token_ids": [10 ** 8]}, "allowed_token_ids"),
                        ({"min_tokens": -2}, "min_tokens"),
                        ({"min_tokens": 9}, "min_tokens")]:  # > max_tokens 8
        b = {"prompt": "Hi", "max_tokens": 8}
        b.update(body)
        r = post(srv.base_url, "/v1/completions", b)
        assert r.status_code == 400 and field in r.text, (body, r.text)


def test_bad_words(srv):
    base, toks = completion_ids(srv)
    assert base["text"].startswith("1, 2"), base
    c, _ = completion_ids(srv, bad_words=["2"])
    assert "2" not in c["text"], c["text"]
    r = post(srv.base_url, "/v1/completions", {"prompt": "Hi", "bad_words": [" "]})
    assert r.status_code == 400 and "bad_words" in r.text, r.text


def test_min_tokens_holds_off_eos_and_stop_strings(client, model):
    # "Count to five" ends with eos after a few tokens; min_tokens keeps it going, and a stop
    # string seen before min_tokens does not end the output.
    plain = client.completions.create(model=model, prompt=PROMPT.replace("Hello", "Count to five"),
                                      temperature=0, max_tokens=32).choices[0]
    assert plain.finish_reason == "stop"
    n = client.completions.create(model=model, prompt=PROMPT.replace("Hello", "Count to five"),
                                  temperature=0, max_tokens=32, logprobs=0,
                                  extra_body={"min_tokens": 20}).choices[0]
    assert len(n.logprobs.tokens) >= 20, n
    c = client.completions.create(model=model, prompt=PROMPT.replace("Hello", "Count to five"),
                                  temperature=0, max_tokens=32, stop=", 3",
                                  extra_body={"min_tokens": 20}).choices[0]
    assert c.text.startswith("1, 2, 3"), c.text


def test_truncate_prompt_tokens_and_return_token_ids(srv):
    ids = post(srv.base_url, "/tokenize", {"prompt": PROMPT}).json()["tokens"]
    r = post(srv.base_url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 3, "temperature": 0,
                                               "truncate_prompt_tokens": 5,
                                               "return_token_ids": True})
    assert r.status_code == 200, r.text
    body = r.json()
    c = body["choices"][0]
    assert body["usage"]["prompt_tokens"] == 5
    assert c["prompt_token_ids"] == ids[-5:]
    assert len(c["token_ids"]) == body["usage"]["completion_tokens"]
    # Token ids as the prompt: the same continuation as the truncated request.
    r2 = post(srv.base_url, "/v1/completions", {"prompt": ids[-5:], "max_tokens": 3,
                                                "temperature": 0, "return_token_ids": True})
    assert r2.json()["choices"][0]["token_ids"] == c["token_ids"]
    # Chat: prompt ids at the response level, generated ids per choice.
    r = post(srv.base_url, "/v1/chat/completions",
             {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2,
              "return_token_ids": True, "truncate_prompt_tokens": -1})
    body = r.json()
    assert len(body["prompt_token_ids"]) == body["usage"]["prompt_tokens"]
    assert len(body["choices"][0]["token_ids"]) == body["usage"]["completion_tokens"]
    for bad_value in (0, -2, "x"):
        r = post(srv.base_url, "/v1/completions", {"prompt": "Hi",
                                                   "truncate_prompt_tokens": bad_value})
        assert r.status_code == 400 and "truncate_prompt_tokens" in r.text, r.text


def test_json_object_mode(srv):
    # response_format json_object: the content is one JSON object (at temperature 0 and 1).
    for temperature in (0, 1):
        r = post(srv.base_url, "/v1/chat/completions",
                 {"messages": [{"role": "user", "content": "What is the capital of France?"}],
                  "max_tokens": 64, "temperature": temperature, "seed": 5,
                  "response_format": {"type": "json_object"}})
        assert r.status_code == 200, r.text
        c = r.json()["choices"][0]
        content = c["message"]["content"]
        if temperature == 0:  # the tiny model closes its object greedily
            assert c["finish_reason"] == "stop", c
        if c["finish_reason"] == "stop":
            assert isinstance(json.loads(content), dict), c
        else:  # max_tokens inside the object: a prefix of one
            assert content.startswith("{"), c
    r = post(srv.base_url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 64,
                                               "temperature": 0,
                                               "response_format": {"type": "json_object"}})
    assert r.status_code == 200, r.text
    assert isinstance(json.loads(r.json()["choices"][0]["text"]), dict), r.text
    # Refused: a json_schema format without its schema, and an object that could never end.
    r = post(srv.base_url, "/v1/chat/completions",
             {"messages": [{"role": "user", "content": "Hi"}],
              "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})
    assert r.status_code == 400 and "response_format" in r.text, r.text
    r = post(srv.base_url, "/v1/completions", {"prompt": "Hi", "ignore_eos": True,
                                               "response_format": {"type": "json_object"}})
    assert r.status_code == 400 and "response_format" in r.text, r.text


def test_structured_outputs_choice(srv):
    for body in ({"structured_outputs": {"choice": ["Paris", "London", "Rome"]}},
                 {"guided_choice": ["yes", "no"]}):
        allowed = next(iter(body.values()))
        allowed = allowed["choice"] if isinstance(allowed, dict) else allowed
        for temperature in (0, 1):
            b = {"messages": [{"role": "user", "content": "What is the capital of France?"}],
                 "max_tokens": 16, "temperature": temperature, "seed": 2}
            b.update(body)
            r = post(srv.base_url, "/v1/chat/completions", b)
            assert r.status_code == 200, r.text
            c = r.json()["choices"][0]
            assert c["message"]["content"] in allowed and c["finish_reason"] == "stop", c
    for body in ({"structured_outputs": {"regex": "a+(?=b)"}},
                 {"structured_outputs": {"choice": []}},
                 {"structured_outputs": {"choice": ["a"]}, "response_format": {"type": "json_object"}}):
        b = {"messages": [{"role": "user", "content": "Hi"}]}
        b.update(body)
        r = post(srv.base_url, "/v1/chat/completions", b)
        assert r.status_code == 400, (body, r.text)
