#!/usr/bin/env python3
"""Writes the committed seed corpora of the libFuzzer targets (tests/fuzz/corpus/<target>/).

Seeds are small valid (and a few near-valid) inputs built from the repository's own fixtures
and hand-written cases, so each fuzzer starts deep inside the format. Rerun after changing the
input layout of a target:

    python3 tests/fuzz/make_seeds.py

Plain Python 3 (no third-party packages); byte-identical output on every run.
"""
import json
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIX = REPO / "tests" / "fixtures"
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------ request_fuzzer
def request_seeds():
    weather_tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "days": {"type": "integer"}},
                       "required": ["city"]}}}
    chats = {
        "hello": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2},
        "system_parts": {"messages": [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                                      {"role": "user", "content": "What is the capital of France?"}],
                         "temperature": 0.7, "top_p": 0.9, "top_k": 20, "seed": 3},
        "thinking": {"messages": [{"role": "user", "content": "Think first."}],
                     "chat_template_kwargs": {"enable_thinking": True}, "stream": True,
                     "stream_options": {"include_usage": True, "continuous_usage_stats": True}},
        "tools": {"messages": [{"role": "user", "content": "Weather in Paris?"}],
                  "tools": [weather_tool], "tool_choice": "auto"},
        "tool_required": {"messages": [{"role": "user", "content": "Weather in Paris?"}],
                          "tools": [weather_tool], "tool_choice": "required"},
        "tool_named": {"messages": [{"role": "user", "content": "x"}], "tools": [weather_tool],
                       "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        "tool_turns": {"messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "reasoning": "look it up",
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
            "tools": [weather_tool], "logprobs": True, "top_logprobs": 3},
        "sampling": {"messages": [{"role": "user", "content": "1, 2, 3"}], "n": 2,
                     "presence_penalty": 0.5, "frequency_penalty": 0.2, "repetition_penalty": 1.1,
                     "min_p": 0.05, "logit_bias": {"5": -100, "17": 5}, "stop": ["\n", "4"],
                     "stop_token_ids": [106], "min_tokens": 1, "bad_words": ["Paris"],
                     "ignore_eos": True, "include_stop_str_in_output": True},
        "json_mode": {"messages": [{"role": "user", "content": "JSON please"}],
                      "response_format": {"type": "json_object"}},
        "choice": {"messages": [{"role": "user", "content": "yes or no"}],
                   "structured_outputs": {"choice": ["yes", "no"]}},
        "continue": {"messages": [{"role": "user", "content": "Say hi"},
                                  {"role": "assistant", "content": "Hi the"}],
                     "add_generation_prompt": False, "continue_final_message": True, "echo": True},
        "media": {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
        "prompt_logprobs": {"messages": [{"role": "user", "content": "ab"}], "prompt_logprobs": 2,
                            "return_token_ids": True, "truncate_prompt_tokens": 8,
                            "num_speculative_tokens": 0, "skip_special_tokens": False},
    }
    for name, body in chats.items():
        write("request_fuzzer", "chat_" + name, dumps({"model": "tiny", **body}))
    completions = {
        "text": {"prompt": "The capital of France is", "max_tokens": 2},
        "ids": {"prompt": [2, 105, 2364, 107], "echo": True, "logprobs": 2, "max_tokens": 0},
        "batch": {"prompt": ["a", "b c"], "n": 2, "stream": True, "suffix": None},
        "tokenize": {"prompt": "<|turn>user\nhi<turn|>", "add_special_tokens": False,
                     "return_token_strs": True},
    }
    for name, body in completions.items():
        write("request_fuzzer", "completion_" + name, dumps(body))


# ------------------------------------------------------------------ jinja_fuzzer
def jinja_seeds():
    ctx = {"messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi"}],
           "add_generation_prompt": True, "bos_token": "<bos>", "enable_thinking": False}
    tiny = (REPO / "models" / "tiny-gemma4" / "chat_template.jinja").read_bytes()
    write("jinja_fuzzer", "tiny_gemma4", tiny + b"\0" + dumps(ctx).encode())
    small = {
        "loop": "{% for m in messages %}{{ loop.index }}:{{ m.role|upper }}={{ m.content|trim }}"
                "{% if not loop.last %},{% endif %}{% endfor %}",
        "macro": "{% macro f(x, y=2) %}{{ x * y }}{% if x > 0 %}{{ f(x - 1) }}{% endif %}{% endmacro %}"
                 "{{ f(3) }}",
        "namespace": "{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}"
                     "{% endfor %}{{ ns.n }}",
        "filters": "{{ messages|map(attribute='role')|join(',') }}|{{ messages|length }}|"
                   "{{ {'b': 1, 'a': [1, 2]}|tojson }}|{{ 'a,b'.split(',') }}|{{ '%s-%d'|format('x', 3) }}",
        "tests": "{% if bos_token is defined and bos_token is string %}{{ bos_token }}{% endif %}"
                 "{% for k, v in {'x': 1}.items() %}{{ k }}{{ v }}{% endfor %}",
        "raise": "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
        "slice": "{{ messages[1:]|selectattr('role', 'equalto', 'user')|list|length }}"
                 "{{ 'abcdef'[::-2] }}{{ (1, 2) + (3,) }}{{ 7 // 2 }}{{ 2 ** 10 }}",
        "whitespace": "  {%- for m in messages -%}\n  [{{- m.content -}}]\n{%- endfor %}\n{# c #}",
        "filter_block": "{% filter upper %}{{ messages[0]['content'] }}{% endfilter %}"
                        "{% set x %}in{% endset %}{{ x }}{{ strftime_now('%Y') }}",
    }
    for name, src in small.items():
        write("jinja_fuzzer", name, src.encode() + b"\0" + dumps(ctx).encode())


# ------------------------------------------------------------------ tokenizers
def tokenizer_json_seeds():
    """A trimmed copy of the fixture tokenizer: the same pipeline, the first 300 vocabulary
    entries plus every byte token, the merges among them, the special tokens."""
    full = json.loads((FIX / "tokenizer" / "tokenizer.json").read_text())
    vocab = full["model"]["vocab"]
    keep = {t: i for t, i in vocab.items() if i < 300 or (t.startswith("<0x") and len(t) == 6)}
    ids = sorted(keep.values())
    remap = {old: new for new, old in enumerate(ids)}
    keep = {t: remap[i] for t, i in keep.items()}
    merges = [m for m in full["model"]["merges"] if m[0] in keep and m[1] in keep and m[0] + m[1] in keep]
    added = [dict(a, id=remap[a["id"]]) for a in full["added_tokens"] if a["id"] in remap]
    small = dict(full, added_tokens=added, model=dict(full["model"], vocab=keep, merges=merges))
    write("tokenizer_json_fuzzer", "gemma4_trimmed", dumps(small))
    # The same model with other pipeline pieces tokenizers allows.
    variants = {
        "metaspace": dict(small, normalizer=None,
                          pre_tokenizer={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
                          decoder={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}),
        "sequence": dict(small, normalizer={"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
            decoder={"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}),
        "template_post": dict(small, post_processor={"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}}),
    }
    for name, doc in variants.items():
        write("tokenizer_json_fuzzer", name, dumps(doc))
    tiny = {"version": "1.0", "added_tokens": [
        {"id": 0, "content": "<s>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False, "special": True}],
        "normalizer": None, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": False},
        "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "u", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {"<s>": 0, "u": 1, "a": 2, "b": 3, "ab": 4, " ": 5}, "merges": [["a", "b"]]}}
    write("tokenizer_json_fuzzer", "tiny_unk", dumps(tiny))


def tokenizer_roundtrip_seeds():
    texts = ["Hello world", "  leading and trailing  ", "<|turn>user\nHi<turn|>\n<|turn>model\n",
             "wörld ñ 日本語 \U0001F600 \u2581x", "tabs\tand\r\nnewlines\n\n\n", "<bos><eos><pad><|\"|>",
             "1234567890 3.14159 -42", "\x00\x01\x7f", "<|channel>thought\nhmm<channel|>answer"]
    for i, t in enumerate(texts):
        for flags in (1, 2):
            write("tokenizer_roundtrip_fuzzer", f"text{i}_f{flags}", bytes([flags]) + t.encode())
    write("tokenizer_roundtrip_fuzzer", "ids", bytes([0]) + struct.pack("<8i", 2, 105, 2364, 107, 1, 256, 300, 16279))


# ------------------------------------------------------------------ safetensors_fuzzer
def safetensors_file(header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    write("safetensors_fuzzer", "one_f32", safetensors_file(
        {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, f32))
    write("safetensors_fuzzer", "meta_mixed", safetensors_file(
        {"__metadata__": {"format": "pt", "k": "v"},
         "a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
         "b": {"dtype": "I64", "shape": [], "data_offsets": [4, 12]},
         "c": {"dtype": "F8_E4M3", "shape": [4, 1], "data_offsets": [12, 16]},
         "d": {"dtype": "U8", "shape": [0, 5], "data_offsets": [16, 16]}},
        bytes(range(16))))
    write("safetensors_fuzzer", "empty", safetensors_file({}, b""))
    fixture = (FIX / "eagle3-mini" / "golden.safetensors").read_bytes()
    n = struct.unpack("<Q", fixture[:8])[0]
    header = json.loads(fixture[8:8 + n])
    # The fixture's header with its tensors shrunk to 1 element each, so the seed stays small.
    small, off = {}, 0
    for k, v in header.items():
        if k == "__metadata__":
            small[k] = v
            continue
        size = {"F32": 4, "I64": 8, "BF16": 2, "BOOL": 1}.get(v["dtype"], 4)
        small[k] = {"dtype": v["dtype"], "shape": [1] * len(v["shape"]), "data_offsets": [off, off + size]}
        off += size
    write("safetensors_fuzzer", "fixture_header", safetensors_file(small, bytes(off)))


# ------------------------------------------------------------------ config_fuzzer
def config_seeds():
    def add(which, name, text):
        write("config_fuzzer", name, bytes([which]) + (text if isinstance(text, bytes) else text.encode()))
    for d in ("kitchen-sink", "mini-31b", "mini-e2b", "mini-26b", "cfg-untied-head", "cfg-plc-empty"):
        add(0, "config_" + d, (FIX / d / "config.json").read_bytes())
    add(0, "config_flat", (FIX / "kitchen-sink" / "config.flat.json").read_bytes())
    add(0, "config_tiny", (REPO / "models" / "tiny-gemma4" / "config.json").read_bytes())
    for d in ("ct-e2b", "modelopt-31b-awq"):
        cfg = json.loads((FIX / "nvfp4" / d / "config.json").read_text())
        if "quantization_config" in cfg:
            add(1, "quant_" + d, dumps(cfg["quantization_config"]))
    for d in ("modelopt-26b", "modelopt-e2b"):
        p = FIX / "nvfp4" / d / "hf_quant_config.json"
        if p.exists():
            add(2, "hfquant_" + d, p.read_bytes())
    add(3, "generation", (FIX / "mini-31b" / "generation_config.json").read_bytes())
    add(3, "generation_tiny", (REPO / "models" / "tiny-gemma4" / "generation_config.json").read_bytes())
    add(4, "spec_mtp", dumps({"method": "mtp", "model": "tests/fixtures/mtp-mini", "num_speculative_tokens": 3}))
    add(4, "spec_eagle", dumps({"model": "tests/fixtures/eagle3-mini", "num_speculative_tokens": 2,
                                "adaptive": False, "quantization": "modelopt"}))
    add(5, "eagle3", (FIX / "eagle3-mini" / "config.json").read_bytes())
    add(5, "eagle3_midlayer", (FIX / "eagle3-mini-midlayer" / "config.json").read_bytes())


# ------------------------------------------------------------------ output_parser_fuzzer
def output_parser_seeds():
    cases = json.loads((FIX / "chat_gemma4" / "outputs.json").read_text())["cases"]
    n = 0
    for c in cases:
        text = c.get("text") if isinstance(c, dict) else None
        if not isinstance(text, str):
            continue
        write("output_parser_fuzzer", f"case{n:02d}", bytes([3]) + struct.pack("<I", 7 * n + 1) + text.encode())
        n += 1
    extra = ["<|channel>thought\nLet me look it up.<channel|><|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,days:3}<tool_call|><|tool_response>",
             "thought\nno channel marker<channel|>Answer.",
             "<|tool_call>call:a{x:[1,{y:true}],z:null}<tool_call|><|tool_call>call:b{}<tool_call|>",
             "plain answer <turn|>", "<|tool_call>bad header<tool_call|> text"]
    for i, t in enumerate(extra):
        for flags in (3, 7):
            write("output_parser_fuzzer", f"extra{i}_f{flags}", bytes([flags]) + struct.pack("<I", 12345 + i) + t.encode())


# ------------------------------------------------------------------ http_parser_fuzzer
def http_parser_seeds():
    body = dumps({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]}).encode()
    cases = {
        "get": b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
        "post": b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
        "chunked": b"POST /tokenize HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\n{\"a\":\r\n3;ext=1\r\n1}\n\r\n0\r\nX-Trailer: t\r\n\r\n",
        "pipelined": b"GET /health HTTP/1.1\r\n\r\nGET /version HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                     b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
        "expect": b"POST /v1/completions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
        "percent": b"GET /v1/models/a%2Fb%zz?q=%41 HTTP/1.1\r\n\r\n",
        "too_long_body": b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        "both_lengths": b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "bad_version": b"GET / HTTP/2.0\r\n\r\n",
        "lf_only": b"GET / HTTP/1.1\nHost: x\n\n",
    }
    for i, (name, data) in enumerate(cases.items()):
        write("http_parser_fuzzer", name, struct.pack("<I", 1000 + 17 * i) + data)


# ------------------------------------------------------------------ multipart_fuzzer
def multipart_seeds():
    """Content-Type value, '\n', body (tests/fuzz/multipart_fuzzer.cpp)."""
    ct = b"multipart/form-data; boundary=B\n"
    file_part = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                 b"Content-Type: audio/wav\r\n\r\nRIFF\x00\x01--B\r\n--BB\r\n")
    cases = {
        "form": ct + b"--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ntiny\r\n"
                + file_part + b"--B--\r\n",
        "preamble_epilogue": ct + b"pre\r\n--B \t\r\nContent-Disposition: form-data; name=a\r\n"
                             b"\r\n\r\n--B--epi",
        "quoted": b"Multipart/Form-Data; charset=utf-8; boundary=\"a b\\=c\"\n--a b=c\r\n"
                  b"Content-Disposition: form-data; name=\"x\\\"y\"\r\n\r\nv\r\n--a b=c--",
        "empty_form": ct + b"--B--",
        "lf_only": ct + b"--B\nContent-Disposition: form-data; name=a\n\nx\n--B--\n",
        "no_close": ct + file_part,
        "duplicates": ct + b"--B\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n"
                      b"--B\r\nContent-Disposition: form-data; name=x\r\n\r\n2\r\n--B--",
        "bad_header": ct + b"--B\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nx\r\n--B--",
        "not_multipart": b"application/json\n{}",
    }
    for name, data in cases.items():
        write("multipart_fuzzer", name, data)


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    request_seeds()
    jinja_seeds()
    tokenizer_json_seeds()
    tokenizer_roundtrip_seeds()
    safetensors_seeds()
    config_seeds()
    output_parser_seeds()
    http_parser_seeds()
    multipart_seeds()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
