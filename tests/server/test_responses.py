"""The OpenAI Responses API (/v1/responses) against the trained tiny model, through the official
openai SDK and raw HTTP: plain, streamed (event order, sequence_number), reasoning on and off,
function-tool round trips (previous_response_id and the full input list), the store (retrieve,
delete, background, cancel), bad requests. Prompts are checked against the chat path's
/tokenize where the output alone cannot show them."""
import json
import time

import openai
import pytest
import requests

from helpers import assert_error, post

HELLO = "Hello! I am the fourcast tiny model."
WEATHER_Q = "What is the weather in Paris?"
PARAMS = {"type": "object",
          "properties": {"city": {"type": "string", "description": "The city name"}},
          "required": ["city"]}
TOOL = {"type": "function", "name": "get_weather",
        "description": "Get the current weather in a city.", "parameters": PARAMS}
CHAT_TOOL = {"type": "function", "function": {k: v for k, v in TOOL.items() if k != "type"}}
THOUGHT = "Two plus two is four."


@pytest.fixture(scope="module")
def srv(behaviour_server):
    """The plain server only (conftest's `client` and `model` follow this `srv`)."""
    return behaviour_server


def tokenize_chat(srv, messages, **kw):
    r = post(srv.base_url, "/tokenize", {"messages": messages, **kw})
    assert r.status_code == 200, r.text
    return r.json()["count"]


def token_count(srv, text):
    r = post(srv.base_url, "/tokenize", {"prompt": text, "add_special_tokens": False})
    return r.json()["count"]


def items(resp):
    """Output items as plain dicts without their random ids."""
    out = []
    for it in resp.output:
        d = it.model_dump(exclude_none=True)
        d.pop("id", None)
        out.append(d)
    return out


def raw_events(srv, body):
    """POSTs a streamed request; returns [(event name, payload dict)] and checks SSE framing."""
    r = post(srv.base_url, "/v1/responses", dict(body, stream=True), stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream")
    raw = r.content.decode()
    assert raw.endswith("\n\n") and "[DONE]" not in raw
    out = []
    for block in raw.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: ")
        ev = json.loads(lines[1][len("data: "):])
        assert ev["type"] == lines[0][len("event: "):]
        out.append(ev)
    return out


def check_sequence(events):
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == []
    # Per item: added ... done, output_index counting items in order.
    open_idx, n_items = None, 0
    for e in events[2:-1]:
        if e["type"] == "response.output_item.added":
            assert open_idx is None and e["output_index"] == n_items, e
            open_idx = e["output_index"]
        elif e["type"] == "response.output_item.done":
            assert e["output_index"] == open_idx, e
            open_idx, n_items = None, n_items + 1
        else:
            assert e["output_index"] == open_idx, e
    assert open_idx is None
    assert len(events[-1]["response"]["output"]) == n_items
    return types


# ---------------------------------------------------------------- plain and streamed
def test_create_plain(client, model, srv):
    r = client.responses.create(model=model, input="Hello", temperature=0)
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status == "completed" and r.model == model
    assert r.output_text == HELLO
    assert len(r.output) == 1 and r.output[0].type == "message"
    assert r.output[0].role == "assistant" and r.output[0].status == "completed"
    assert r.output[0].content[0].type == "output_text"
    assert r.usage.input_tokens == tokenize_chat(srv, [{"role": "user", "content": "Hello"}])
    assert r.usage.output_tokens == token_count(srv, HELLO) + 1  # + <turn|>
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.output_tokens_details.reasoning_tokens == 0
    assert r.temperature == 0 and r.tools == [] and r.tool_choice == "auto"


def test_instructions_become_the_system_turn(client, model, srv):
    sys_msg = "You are a helpful assistant."
    r = client.responses.create(model=model, instructions=sys_msg, temperature=0,
                                input="What is the capital of France?")
    assert r.output_text == "Paris."
    assert r.instructions == sys_msg
    assert r.usage.input_tokens == tokenize_chat(srv, [
        {"role": "system", "content": sys_msg},
        {"role": "user", "content": "What is the capital of France?"}])


def test_stream_event_sequence(client, model, srv):
    events = raw_events(srv, {"model": model, "input": "Hello", "temperature": 0})
    types = check_sequence(events)
    assert types[2:5] == ["response.output_item.added", "response.content_part.added",
                          "response.output_text.delta"]
    assert types[-4:-1] == ["response.output_text.done", "response.content_part.done",
                            "response.output_item.done"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == HELLO
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == HELLO
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["output_tokens"] > 0
    assert final["output"][0]["content"][0]["text"] == HELLO
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["id"] == final["output"][0]["id"]  # the streamed item is the final one


def test_stream_with_the_sdk_equals_non_stream(client, model):
    full = client.responses.create(model=model, input="Count to five", temperature=0)
    events = list(client.responses.create(model=model, input="Count to five", temperature=0,
                                          stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert final.output_text == full.output_text == "1, 2, 3, 4, 5"
    assert items(final) == items(full)
    # The SDK's stream helper accumulates the same response.
    with client.responses.stream(model=model, input="Count to five", temperature=0) as s:
        assert s.get_final_response().output_text == "1, 2, 3, 4, 5"


def test_max_output_tokens_is_incomplete(client, model):
    r = client.responses.create(model=model, input="Hello", temperature=0, max_output_tokens=3)
    assert r.status == "incomplete"
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 3 and r.max_output_tokens == 3


def test_json_object_format_and_logprobs(client, model):
    r = client.responses.create(model=model, input="Hello", max_output_tokens=40, temperature=0,
                                text={"format": {"type": "json_object"}})
    if r.status == "completed":  # the tiny model rambles; a finished object must parse
        assert isinstance(json.loads(r.output_text), dict)
    else:
        assert r.output_text.lstrip().startswith("{")
    assert r.text.format.type == "json_object"
    lp = client.responses.create(model=model, input="Hello", temperature=0, top_logprobs=2,
                                 include=["message.output_text.logprobs"])
    part = lp.output[0].content[0]
    # One entry per generated token, the stop token's last (as the chat path and vLLM report).
    assert "".join(x.token for x in part.logprobs) == HELLO + "<turn|>"
    assert all(len(x.top_logprobs) == 2 and x.logprob <= 0 for x in part.logprobs)
    assert lp.top_logprobs == 2


def test_json_schema_format_with_the_sdk_parse(client, model):
    """text.format json_schema is a structured output (issue 13): the SDK's responses.parse
    with a pydantic model gets a parsed object, properties in the schema's order."""
    from typing import Literal

    from pydantic import BaseModel

    class Verdict(BaseModel):  # bounded fields: the tiny model at T = 1 never ends a free string
        verdict: Literal["yes", "no", "maybe"]
        confidence: int
        sure: bool

    for seed in range(3):
        r = client.responses.parse(model=model, input="Is Paris in France?", text_format=Verdict,
                                   max_output_tokens=96, temperature=1,
                                   extra_body={"seed": seed})
        assert r.status == "completed", r
        assert isinstance(r.output_parsed, Verdict), r.output_text
        assert list(json.loads(r.output_text)) == ["verdict", "confidence", "sure"]
        assert r.text.format.type == "json_schema"


# ---------------------------------------------------------------- reasoning
def test_reasoning_on(client, model, srv):
    r = client.responses.create(model=model, input="What is 2+2?", temperature=0,
                                reasoning={"effort": "high"})
    assert [it.type for it in r.output] == ["reasoning", "message"]
    rs = r.output[0]
    assert rs.content[0].type == "reasoning_text" and rs.content[0].text == THOUGHT
    assert rs.summary == []
    assert r.output_text == "4"
    # Reasoning tokens: the thought channel's tokens between <|channel> and <channel|>.
    assert r.usage.output_tokens_details.reasoning_tokens == token_count(srv, "thought\n" + THOUGHT)
    assert r.reasoning.effort == "high"
    # The prompt had thinking switched on (<|think|> in the system turn).
    assert r.usage.input_tokens == tokenize_chat(
        srv, [{"role": "user", "content": "What is 2+2?"}],
        chat_template_kwargs={"enable_thinking": True})


def test_reasoning_stream_events(srv, model):
    events = raw_events(srv, {"model": model, "input": "What is 2+2?", "temperature": 0,
                              "reasoning": {"effort": "medium"}})
    types = check_sequence(events)
    assert types[2:5] == ["response.output_item.added", "response.reasoning_part.added",
                          "response.reasoning_text.delta"]
    assert events[2]["item"]["type"] == "reasoning"
    thought = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_text.delta")
    assert thought == THOUGHT
    i = types.index("response.reasoning_text.done")
    assert types[i:i + 3] == ["response.reasoning_text.done", "response.reasoning_part.done",
                              "response.output_item.done"]
    assert events[i]["text"] == THOUGHT
    assert events[-1]["response"]["output"][1]["content"][0]["text"] == "4"


def test_reasoning_off(client, model, srv):
    r = client.responses.create(model=model, input="What is 2+2?", temperature=0,
                                reasoning={"effort": "none"})
    assert all(it.type != "reasoning" for it in r.output)
    assert r.usage.output_tokens_details.reasoning_tokens == 0
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    off = tokenize_chat(srv, msgs, chat_template_kwargs={"enable_thinking": False})
    on = tokenize_chat(srv, msgs, chat_template_kwargs={"enable_thinking": True})
    assert r.usage.input_tokens == off < on


# ---------------------------------------------------------------- function tools
def first_call(client, model, **kw):
    r = client.responses.create(model=model, input=WEATHER_Q, tools=[TOOL], temperature=0, **kw)
    assert r.status == "completed"
    assert [it.type for it in r.output] == ["function_call"]
    fc = r.output[0]
    assert fc.name == "get_weather" and fc.status == "completed"
    assert json.loads(fc.arguments) == {"city": "Paris"}
    assert fc.call_id and fc.id.startswith("fc_")
    return r, fc


def expected_round_trip_prompt(srv, fc):
    return tokenize_chat(srv, [
        {"role": "user", "content": WEATHER_Q},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": fc.call_id, "type": "function",
             "function": {"name": fc.name, "arguments": fc.arguments}}]},
        {"role": "tool", "tool_call_id": fc.call_id, "content": '{"temp": 20}'}],
        tools=[CHAT_TOOL])


def test_tool_round_trip_previous_response_id(client, model, srv):
    r1, fc = first_call(client, model)
    out = {"type": "function_call_output", "call_id": fc.call_id, "output": '{"temp": 20}'}
    r2 = client.responses.create(model=model, previous_response_id=r1.id, input=[out],
                                 tools=[TOOL], temperature=0)
    assert r2.output_text == "It is 20 degrees in Paris."
    assert r2.previous_response_id == r1.id
    assert r2.usage.input_tokens == expected_round_trip_prompt(srv, fc)


def test_tool_round_trip_full_input_list(client, model, srv):
    r1, fc = first_call(client, model, store=False)
    history = [{"role": "user", "content": WEATHER_Q}] + \
        [it.model_dump(exclude_none=True) for it in r1.output] + \
        [{"type": "function_call_output", "call_id": fc.call_id, "output": '{"temp": 20}'}]
    r2 = client.responses.create(model=model, input=history, tools=[TOOL], temperature=0,
                                 store=False)
    assert r2.output_text == "It is 20 degrees in Paris."
    assert r2.usage.input_tokens == expected_round_trip_prompt(srv, fc)
    with pytest.raises(openai.NotFoundError):  # store=False: nothing to continue from
        client.responses.retrieve(r1.id)


def test_tool_call_stream_events(srv, model):
    events = raw_events(srv, {"model": model, "input": WEATHER_Q, "tools": [TOOL],
                              "temperature": 0})
    types = check_sequence(events)
    assert types[2] == "response.output_item.added"
    assert events[2]["item"]["type"] == "function_call"
    assert events[2]["item"]["name"] == "get_weather" and events[2]["item"]["arguments"] == ""
    args = "".join(e["delta"] for e in events
                   if e["type"] == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Paris"}
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == args and done["name"] == "get_weather"
    final = events[-1]["response"]["output"][0]
    assert final["arguments"] == args and final["call_id"] == events[2]["item"]["call_id"]


def test_tool_choice_none_and_builtin_tools(client, model):
    r = client.responses.create(model=model, input=WEATHER_Q, tools=[TOOL], tool_choice="none",
                                temperature=0)
    assert all(it.type != "function_call" for it in r.output)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=model, input="x", tools=[{"type": "web_search"}])
    assert "web_search" in str(e.value)


# ---------------------------------------------------------------- store
def test_retrieve_and_delete(client, model):
    r = client.responses.create(model=model, input="Hello", temperature=0,
                                metadata={"run": "t1"})
    assert r.metadata == {"run": "t1"}
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == HELLO and items(got) == items(r)
    assert client.responses.delete(r.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_unknown_previous_response_is_404(srv, model):
    r = post(srv.base_url, "/v1/responses", {"model": model, "input": "Hi",
                                             "previous_response_id": "resp_nope"})
    assert_error(r, 404, "previous_response_id")
    assert_error(requests.get(srv.base_url + "/v1/responses/resp_nope"), 404, "response_id")


def wait_status(client, rid, want, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.responses.retrieve(rid)
        if r.status in want:
            return r
        time.sleep(0.05)
    raise AssertionError(f"{rid} still {r.status}")


def test_background_and_cancel(client, model):
    r = client.responses.create(model=model, input="Hello", temperature=0, background=True)
    assert r.status in ("queued", "in_progress") and r.background is True
    done = wait_status(client, r.id, ("completed",))
    assert done.output_text == HELLO
    with pytest.raises(openai.BadRequestError, match="Cannot cancel a synchronous response"):
        client.responses.cancel(done.id)
    # A long one (ignore_eos, thousands of tokens) cancelled while it runs.
    long = client.responses.create(model=model, input="Hello", background=True,
                                   max_output_tokens=4000, extra_body={"ignore_eos": True})
    c = client.responses.cancel(long.id)
    assert c.status == "cancelled"
    got = client.responses.retrieve(long.id)
    assert got.status == "cancelled"
    assert got.usage is None or got.usage.output_tokens < 4000


def test_background_stream_replay(srv, model):
    events = raw_events(srv, {"model": model, "input": "Hello", "temperature": 0,
                              "background": True})
    check_sequence(events)
    rid = events[0]["response"]["id"]
    r = requests.get(f"{srv.base_url}/v1/responses/{rid}",
                     params={"stream": "true", "starting_after": 3}, timeout=30)
    assert r.status_code == 200
    replay = [json.loads(b.split("\ndata: ", 1)[1]) for b in r.text.split("\n\n")[:-1]]
    assert replay == events[4:]
    # A foreground response keeps no events to replay.
    fg = post(srv.base_url, "/v1/responses", {"model": model, "input": "Hi", "temperature": 0})
    r = requests.get(f"{srv.base_url}/v1/responses/{fg.json()['id']}", params={"stream": "true"})
    assert_error(r, 400, "stream")


# ---------------------------------------------------------------- bad requests
BAD = [
    ({}, "input"),
    ({"input": []}, "input"),
    ({"input": 42}, "input"),
    ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
    ({"input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}, "tools[0].type"),
    ({"input": "x", "tools": [{"type": "function", "name": ""}]}, "tools[0].name"),
    ({"input": "x", "tools": [TOOL], "tool_choice": {"type": "function", "name": "nope"}},
     "tool_choice.name"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "s",
                                        "schema": {"type": "nonsense"}}}}, "text.format"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "s"}}}, "text.format"),
    ({"input": "x", "reasoning": {"effort": "ultra"}}, "reasoning.effort"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "x", "max_output_tokens": 100000}, "max_output_tokens"),
    ({"input": "x", "background": True, "store": False}, "background"),
    ({"input": "x", "temperature": "hot"}, "temperature"),
    ({"input": [{"role": "user", "content": [{"type": "input_image",
                                              "image_url": "data:image/png;base64,AAAA"}]}]},
     "input"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{oops"}]},
     None),
    ({"input": "x", "metadata": {"k": {"nested": 1}}}, "metadata"),
]


@pytest.mark.parametrize("body,param", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_request(srv, model, body, param):
    r = post(srv.base_url, "/v1/responses", dict(body, model=model))
    err = assert_error(r, 400)
    if param is not None:
        assert err["param"] == param, err


def test_deep_nesting_is_refused(srv, model):
    deep = "[" * 5000 + "]" * 5000
    body = ('{"model": %s, "input": "x", "tools": [{"type": "function", "name": "f", '
            '"parameters": {"type": "object", "properties": {"a": %s}}}]}'
            % (json.dumps(model), deep)).encode()
    err = assert_error(post(srv.base_url, "/v1/responses", data=body), 400)
    assert "deeper than 256 levels" in err["message"]
    assert requests.get(srv.base_url + "/health").status_code == 200


def test_still_serving_after_bad_requests(srv, model, client):
    for body, _ in BAD:
        assert 400 <= post(srv.base_url, "/v1/responses", dict(body, model=model)).status_code < 500
    assert_error(post(srv.base_url, "/v1/responses", data=b"{not json"), 400)
    assert_error(post(srv.base_url, "/v1/responses", {"model": "other", "input": "x"}), 404,
                 "model")
    assert requests.get(srv.base_url + "/health").status_code == 200
    assert client.responses.create(model=model, input="Hello", temperature=0).output_text == HELLO


# ---------------------------------------------------------------- models, tokenizer_info, CORS
def test_models_retrieve(client, model):
    m = client.models.retrieve(model)
    assert m.id == model and m.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_tokenizer_info_off_by_default_and_cors_star(srv):
    assert requests.get(srv.base_url + "/tokenizer_info").status_code == 404
    r = requests.options(srv.base_url + "/v1/responses", headers={
        "Origin": "http://anywhere.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert r.status_code == 200 and r.text == "OK"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type,authorization"
    g = requests.get(srv.base_url + "/v1/models", headers={"Origin": "http://anywhere.example"})
    assert g.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in requests.get(srv.base_url + "/v1/models").headers
