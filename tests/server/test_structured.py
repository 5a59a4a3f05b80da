"""Structured outputs end to end (issue 13): the clients' own calls — the openai SDK's
chat.completions.parse(response_format=PydanticModel), LangChain's with_structured_output() and
bind_tools(tool_choice="any") — and vLLM's structured_outputs / guided_* fields, against the tiny
model (random enough at T = 1 to wander everywhere the grammar lets it). Every output that ends
by stop validates (jsonschema); none runs away in whitespace; tool_choice required/named always
gives parsed calls; bad constraints are 400s with vLLM's messages. Also with speculative
decoding (the same model drafting for itself)."""
import json
import random
import re
from typing import Literal

import pytest

jsonschema = pytest.importorskip("jsonschema")  # tests/server/requirements.txt
from openai import OpenAI
from pydantic import BaseModel

from helpers import post

USER = [{"role": "user", "content": "Tell me about Paris."}]


@pytest.fixture(params=["plain", "speculative"])
def srv(request, behaviour_server, spec_behaviour_server):
    return behaviour_server if request.param == "plain" else spec_behaviour_server


def chat(srv, body):
    b = {"messages": USER, "max_tokens": 96}
    b.update(body)
    return post(srv.base_url, "/v1/chat/completions", b)


class Answer(BaseModel):
    verdict: Literal["yes", "no", "maybe"]
    confidence: int
    sure: bool


def test_openai_sdk_parse_pydantic(srv):
    client = OpenAI(base_url=srv.base_url + "/v1", api_key="x")
    for seed in range(3):
        done = client.chat.completions.parse(model="", messages=USER, response_format=Answer,
                                             max_tokens=96, temperature=1, seed=seed)
        msg = done.choices[0].message
        assert isinstance(msg.parsed, Answer), msg
        assert done.choices[0].finish_reason == "stop"


def test_langchain_with_structured_output_and_bind_tools(srv):
    lc = pytest.importorskip("langchain_openai")
    import requests
    name = requests.get(srv.base_url + "/v1/models").json()["data"][0]["id"]
    llm = lc.ChatOpenAI(base_url=srv.base_url + "/v1", api_key="x", model=name, temperature=1,
                        max_tokens=96)
    out = llm.with_structured_output(Answer).invoke("Is Paris in France?")  # json_schema method
    assert isinstance(out, Answer)

    def get_forecast(unit: Literal["celsius", "fahrenheit"], days: int) -> str:
        """Forecast for Paris."""
        return ""
    msg = llm.bind_tools([get_forecast], tool_choice="any").invoke("Weather?")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_forecast", msg
    # LangChain sends no additionalProperties: false, so extra keys are valid (T = 1, no seed).
    assert {"unit", "days"} <= set(msg.tool_calls[0]["args"])


FORECAST = {"type": "function", "function": {
    "name": "get_forecast", "parameters": {"type": "object", "properties": {
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14}},
        "required": ["unit", "days"], "additionalProperties": False}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"utc": {"type": "boolean"}}, "required": ["utc"]}}}


def test_tool_choice_required_and_named_always_give_calls(srv):
    client = OpenAI(base_url=srv.base_url + "/v1", api_key="x")
    for seed in range(4):
        r = client.chat.completions.create(model="", messages=USER, tools=[FORECAST, CLOCK],
                                           tool_choice="required", max_tokens=128,
                                           temperature=1, seed=seed)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls" and c.message.tool_calls, c
        for tc in c.message.tool_calls:
            args = json.loads(tc.function.arguments)
            params = (FORECAST if tc.function.name == "get_forecast" else CLOCK)["function"]
            jsonschema.validate(args, params["parameters"])
    r = client.chat.completions.create(
        model="", messages=USER, tools=[FORECAST, CLOCK], max_tokens=128, temperature=1, seed=1,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = r.choices[0].message.tool_calls
    assert calls and len(calls) == 1 and calls[0].function.name == "get_time", r
    assert isinstance(json.loads(calls[0].function.arguments)["utc"], bool)
    # parallel_tool_calls false: exactly one call
    r = client.chat.completions.create(model="", messages=USER, tools=[FORECAST, CLOCK],
                                       tool_choice="required", parallel_tool_calls=False,
                                       max_tokens=128, temperature=1, seed=3)
    assert len(r.choices[0].message.tool_calls) == 1


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                      "age": {"type": "integer", "minimum": 0, "maximum": 150}},
     "required": ["name", "age"], "additionalProperties": False},
    {"type": "array", "items": {"enum": ["red", "green", 3, None]}, "minItems": 1, "maxItems": 4},
    {"type": "object", "properties": {"when": {"type": "string", "format": "date"},
                                      "id": {"type": "string", "format": "uuid"},
                                      "score": {"type": "number", "minimum": -1, "maximum": 1}},
     "required": ["when", "score"]},
    {"$defs": {"t": {"type": "object", "properties": {
        "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/t"},
                                           "maxItems": 2}},
        "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/t"},
    {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"}]},
]


def test_sampled_outputs_validate_and_whitespace_is_bounded(behaviour_server):
    # 1,000 sampled completions (T = 1) over varied schemas: each that ends by stop validates,
    # and no gap of whitespace is longer than the bound (a line break and 16 blanks).
    total = stopped = 0
    for i, schema in enumerate(SCHEMAS):
        for rep in range(13):
            r = post(behaviour_server.base_url, "/v1/completions", {
                "prompt": "JSON:", "max_tokens": 64, "temperature": 1, "seed": 100 * i + rep,
                "n": 16, "structured_outputs": {"json": schema}})
            assert r.status_code == 200, r.text
            for c in r.json()["choices"]:
                total += 1
                assert not re.search(r"\s{19,}", c["text"]), c["text"]
                if c["finish_reason"] == "stop":
                    stopped += 1
                    jsonschema.validate(json.loads(c["text"]), schema,
                                        format_checker=jsonschema.FormatChecker())
    assert total >= 1000 and stopped > 300, (total, stopped)


def test_kinds_via_structured_outputs_extra_body_and_guided(srv):
    for body, check in [
        ({"structured_outputs": {"regex": "[a-c]{2,4}-[0-9]+"}},
         lambda t: re.fullmatch(r"[a-c]{2,4}-[0-9]+", t)),
        ({"extra_body": {"structured_outputs": {"choice": ["north", "south"]}}},
         lambda t: t in ("north", "south")),
        ({"structured_outputs": {"grammar": 'root ::= "ok" ("!" | "?"){1,3}'}},
         lambda t: re.fullmatch(r"ok[!?]{1,3}", t)),
        ({"structured_outputs": {"grammar": 'start: WORD ("," WORD)~1..2\nWORD: /[xyz]+/'}},
         lambda t: re.fullmatch(r"[xyz]+(,[xyz]+){1,2}", t)),
        ({"guided_regex": "(yes|no)"}, lambda t: t in ("yes", "no")),
        ({"guided_json": {"type": "boolean"}}, lambda t: t in ("true", "false")),
        ({"response_format": {"type": "json_schema", "json_schema": {
            "name": "b", "strict": True, "schema": {"type": "integer", "maximum": 99}}}},
         lambda t: 0 <= abs(int(t)) and int(t) <= 99),
    ]:
        for seed in range(3):
            r = chat(srv, {**body, "temperature": 1, "seed": seed, "max_tokens": 48})
            assert r.status_code == 200, (body, r.text)
            c = r.json()["choices"][0]
            if c["finish_reason"] == "stop":
                assert check(c["message"]["content"]), (body, c)


@pytest.mark.parametrize("body,needle", [
    ({"structured_outputs": {"regex": "a", "choice": ["a"]}}, "only use one kind"),
    ({"structured_outputs": {"choice": ["a"]}, "response_format": {"type": "json_object"}},
     "only use one kind"),
    ({"structured_outputs": {}}, "must use one kind"),
    ({"structured_outputs": {"choice": []}}, "cannot be an empty list"),
    ({"structured_outputs": {"grammar": ""}}, "cannot be an empty string"),
    ({"structured_outputs": {"json_object": False}}, "must be True if set"),
    ({"structured_outputs": {"regex": "a\u0000"}}, "NUL"),
    ({"structured_outputs": {"regex": "(?=a)b"}}, "Failed to transform regex"),
    ({"structured_outputs": {"grammar": "root ::= undefined_rule"}}, "Invalid grammar"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "strict": True, "schema": {"type": "array", "uniqueItems": True}}}},
     "uniqueItems"),
    ({"structured_outputs": {"json": "{not json"}}, "Invalid JSON grammar"),
    ({"structured_outputs": {"choice": ["a"], "backend": "xgrammar"}}, "backend selection"),
    ({"response_format": {"type": "json_schema"}}, "'json_schema' field must be provided"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "strict": True, "schema": {"type": "integer", "multipleOf": 3}}}},
     "multipleOf"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"structured_outputs": {"choice": ["a"]}, "tools": [CLOCK],
      "tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "not both"),
])
def test_bad_constraints_are_400(behaviour_server, body, needle):
    r = chat(behaviour_server, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert needle in err["message"], err
