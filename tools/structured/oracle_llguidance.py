#!/usr/bin/env python3
"""An independent oracle for the grammar engine (issue 13): on the same tokenizer, our allowed-token
sets must equal those of llguidance (PyPI `llguidance`, MIT; Microsoft's Earley + derivative-regex
engine, a different design from ours), position by position.

For every schema (the JSON-Schema-Test-Suite's draft2020-12 schemas that both engines compile, plus
generated realistic ones), `fourcast constrain --strict --compact --dump-masks` walks
  - each valid suite instance (serialized compactly in the grammar's property order), and
  - `--walks` random walks through our own masks (uniform over the allowed tokens),
writing the mask row before every token. This script replays the same tokens through an
llguidance LLMatcher built from the same schema with compact separators (whitespace_flexible
false: "," and ":" and no whitespace, like our --compact) and compares the rows bit for bit, text
tokens and the stop/EOS bit separately. Every position that differs is reported with a sample
of the tokens on each side, so each difference can be explained.

  tools/structured/oracle_llguidance.py [--suite DIR] [--generated 80] [--walks 2]
      [--bin build/apps/cli/fourcast] [--tokenizer models/tiny-gemma4/tokenizer.json]
      [--json OUT]
Needs llguidance (and jsonschema's sdist for the suite, fetched with pip when --suite is not
given), e.g. /work/venvs/structured/bin/python.
"""
import argparse
import collections
import json
import os
import random
import re
import subprocess
import sys
import tempfile

import llguidance as llg

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from run_schema_suite import fetch_suite, order  # noqa: E402

WORDS = ["name", "id", "email", "created_at", "title", "price", "count", "tags", "city", "zip",
         "status", "owner", "items", "description", "score", "enabled", "url", "notes", "kind"]
FORMATS = ["date", "time", "date-time", "uuid", "email", "ipv4", "ipv6", "uri"]


def gen_value(r, depth):
    k = r.randrange(7 if depth > 2 else 11)
    if k == 0:
        s = {"type": "string"}
        if r.random() < 0.5:
            s["maxLength"] = r.randrange(1, 20)
        if r.random() < 0.3:
            s["minLength"] = r.randrange(0, 3)
        return s
    if k == 1:
        return {"type": "string", "format": r.choice(FORMATS)}
    if k == 2:
        lo = r.randrange(-50, 50)
        return {"type": "integer", "minimum": lo, "maximum": lo + r.randrange(1, 2000)}
    if k == 3:
        s = {"type": "number"}
        if r.random() < 0.5:
            s["minimum"] = 0
        return s
    if k == 4:
        return {"type": "boolean"}
    if k == 5:
        return {"enum": r.sample(["low", "medium", "high", "urgent", 3, None, True], 3)}
    if k == 6:
        return {"type": [r.choice(["string", "integer", "number"]), "null"]}
    if k == 7:
        return {"type": "array", "items": gen_value(r, depth + 1),
                "minItems": r.randrange(0, 2), "maxItems": r.randrange(2, 6)}
    if k == 8:
        return {"type": "string", "pattern": r.choice(
            ["^[A-Z]{2}-[0-9]{4}$", "^[a-z]+(-[a-z]+)*$", "^\\+?[0-9]{6,12}$"])}
    if k == 9:
        return {"anyOf": [gen_value(r, depth + 1), {"type": "null"}]}
    return gen_object(r, depth + 1)


def gen_object(r, depth):
    props, req = {}, []
    for i in range(2 + r.randrange(3 if depth > 1 else 7)):
        key = r.choice(WORDS)
        if key in props:
            key += "_%d" % i
        props[key] = gen_value(r, depth)
        if r.random() < 0.6:
            req.append(key)
    s = {"type": "object", "properties": props, "required": req}
    if r.random() < 0.7:  # llguidance and we both allow extra keys otherwise (after the listed)
        s["additionalProperties"] = False
    return s


def generated_schemas(n, seed=7):
    r = random.Random(seed)
    out = []
    for i in range(n):
        if i % 10 == 9:  # recursion through $defs
            out.append({"$defs": {"node": {"type": "object", "properties": {
                "v": gen_value(r, 3), "kids": {"type": "array", "items": {"$ref": "#/$defs/node"},
                                               "maxItems": 3}},
                "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"})
        else:
            out.append(gen_object(r, 0))
    return out


def suite_schemas(suite):
    out = []
    for fn in sorted(os.listdir(suite)):
        if not fn.endswith(".json"):
            continue
        for case in json.load(open(os.path.join(suite, fn))):
            valid = [order(t["data"], case["schema"], case["schema"]) for t in case["tests"]
                     if t["valid"]]
            out.append(("suite:%s:%s" % (fn[:-5], case["description"]), case["schema"], valid))
    return out


def read_dump(path):
    rows = []
    with open(path) as f:
        for line in f:
            tok, hexrow = line.split()
            rows.append((int(tok), bytes.fromhex(hexrow)))
    return rows


def ids(mask):
    """The token ids whose bits are set in an integer mask."""
    out, i = [], 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return out


def classify(piece, prefix, forced=b""):
    """Why a token's bit may differ between the engines (docs/design.md, "llguidance oracle").
    piece, prefix: bytes (the token, the text before it); forced: the bytes llguidance says the
    grammar forces next (compute_ff_bytes)."""
    if forced and (forced.startswith(piece) or piece.startswith(forced)):
        # llguidance allows only the canonical tokenization of forced bytes (its first token),
        # not every token that spells a prefix of them (e.g. "9" but not <0x39>, "null" but not
        # "n", "nu"); we allow every token the grammar allows.
        return "forced"
    if b"\\" in piece or (len(prefix) - len(prefix.rstrip(b"\\"))) % 2 == 1:
        return "escape"  # a backslash escape, or the rest of one (see the docs: keys, \\u)
    tail = re.search(rb"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]*)?$", prefix)
    if tail and piece[:1] == b"." and tail.group(1) is None and tail.group(2) is None:
        return "integer-fraction"  # 2.0 is an integer in JSON Schema; llguidance refuses it
    if tail and piece[:1].isdigit():
        num = tail.group(0)
        ip = re.match(rb"-?([0-9]+)", num).group(1)
        if num == b"-":
            return "negative-zero"
        if (tail.group(2) and len(tail.group(2).lstrip(b"eE+-")) >= 3) or \
                (tail.group(1) and len(tail.group(1)) > 19) or len(ip) >= 19:
            return "number-length"  # we bound digits (19 + 19, exponent 3): no runaway
    if prefix.endswith(b"-") and piece[:1] == b"0":
        return "negative-zero"  # -0: llguidance allows it, our integers do not
    if b"\x7f" in piece:
        return "DEL"  # U+007F unescaped in a string: RFC 8259 allows it, llguidance does not
    if b"\\" in piece:
        return "escape"  # a backslash escape (see the docs: keys, \\u in values)
    if piece.startswith(b'"') and (prefix.endswith(b'{"') or prefix.endswith(b',"')
                                   or prefix.endswith(b'{') or prefix.endswith(b',')):
        return "empty-key"
    return "other"


class Oracle:
    def __init__(self, args):
        self.args = args
        self.tok = llg.LLTokenizer(open(args.tokenizer).read())
        self.n = self.tok.vocab_size
        spec = json.load(open(args.tokenizer))
        named = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        # Our stop set (fourcast constrain): EOS, <turn|>, <|tool_response>; llguidance: its EOS.
        self.stops = {self.tok.eos_token} | {named[s] for s in ("<turn|>", "<|tool_response>")
                                             if s in named}
        self.stop_bits = sum(1 << t for t in self.stops)
        self.tmp = tempfile.mkdtemp(prefix="oracle-")
        self.stats = {"schemas": 0, "schemas_both": 0, "ours_unsupported": 0,
                      "llg_unsupported": 0, "walks": 0, "positions": 0, "equal": 0,
                      "diff_positions": 0, "eos_diff": 0, "llg_refused_token": 0}
        self.diffs = []
        # Every differing token, classified (see classify()): {"ours_only:DEL": n, ...}; and the
        # positions whose differences are all in known classes.
        self.classes = collections.Counter()
        self.explained_positions = 0

    def run_ours(self, schema_path, extra):
        dump = os.path.join(self.tmp, "dump.txt")
        if os.path.exists(dump):
            os.remove(dump)
        cmd = [self.args.bin, "constrain", "--tokenizer", self.args.tokenizer, "--json-schema",
               schema_path, "--strict", "--compact", "--quiet", "--dump-masks", dump] + extra
        p = subprocess.run(cmd, capture_output=True, text=True)
        return p.returncode, (read_dump(dump) if os.path.exists(dump) else [])

    def compare_walk(self, name, grammar, rows):
        m = llg.LLMatcher(self.tok, grammar, log_level=0)
        self.stats["walks"] += 1
        for pos, (token, ours_row) in enumerate(rows):
            theirs_row = m.compute_bitmask()
            self.stats["positions"] += 1
            ours = int.from_bytes(ours_row, "little")
            theirs = int.from_bytes(theirs_row, "little")
            o_end = bool(ours & self.stop_bits)
            t_end = bool(theirs >> self.tok.eos_token & 1)
            o_text, t_text = ours & ~self.stop_bits, theirs & ~self.stop_bits
            if o_text == t_text and o_end == t_end:
                self.stats["equal"] += 1
            else:
                self.stats["diff_positions"] += 1
                if o_end != t_end:
                    self.stats["eos_diff"] += 1
                prefix_b = self.tok.decode_bytes([t for t, _ in rows[:pos]])
                forced = bytes(m.compute_ff_bytes())
                unexplained = {"ours_only": [], "llg_only": []}
                for side, m_ in (("ours_only", o_text & ~t_text), ("llg_only", t_text & ~o_text)):
                    for t in ids(m_):
                        c = classify(self.tok.decode_bytes([t]), prefix_b, forced)
                        self.classes[side + ":" + c] += 1
                        if c == "other":
                            unexplained[side].append(t)
                known = o_end == t_end and not unexplained["ours_only"] and not \
                    unexplained["llg_only"]
                if known:
                    self.explained_positions += 1
                elif len(self.diffs) < self.args.max_report:  # report what no class explains
                    oo, tt = unexplained["ours_only"], unexplained["llg_only"]
                    self.diffs.append({
                        "schema": name, "position": pos,
                        "prefix": prefix_b.decode("utf-8", "replace"),
                        "ours_only": [self.tok.dbg_tokens([t]) for t in oo[:8]],
                        "ours_only_count": len(oo),
                        "llg_only": [self.tok.dbg_tokens([t]) for t in tt[:8]],
                        "llg_only_count": len(tt),
                        "ours_can_end": o_end, "llg_can_end": t_end})
            if token < 0 or token in self.stops:
                return
            if not m.consume_token(token):
                self.stats["llg_refused_token"] += 1
                return

    def one(self, name, schema, instances):
        self.stats["schemas"] += 1
        path = os.path.join(self.tmp, "schema.json")
        with open(path, "w") as f:
            json.dump(schema, f)
        rc, _ = self.run_ours(path, ["--bench", "--bench-steps", "1"])
        if rc == 2:
            self.stats["ours_unsupported"] += 1
            return
        try:
            grammar = llg.LLMatcher.grammar_from_json_schema(
                schema, overrides={"whitespace_flexible": False})
        except ValueError:  # a boolean schema: llguidance takes options only on objects
            grammar = None
        if grammar is None or llg.LLMatcher(self.tok, grammar, log_level=0).is_error():
            self.stats["llg_unsupported"] += 1
            return
        self.stats["schemas_both"] += 1
        for inst in instances:
            ipath = os.path.join(self.tmp, "inst.json")
            with open(ipath, "w") as f:
                f.write(json.dumps(inst, separators=(",", ":"), ensure_ascii=False))
            _, rows = self.run_ours(path, ["--check", ipath])
            if rows:
                self.compare_walk(name, grammar, rows)
        for w in range(self.args.walks):
            _, rows = self.run_ours(path, ["--bench", "--bench-steps", str(self.args.steps),
                                           "--seed", str(w + 1)])
            self.compare_walk(name, grammar, rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite")
    ap.add_argument("--generated", type=int, default=80)
    ap.add_argument("--walks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--max-report", type=int, default=200)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/apps/cli/fourcast"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models/tiny-gemma4/tokenizer.json"))
    ap.add_argument("--json")
    ap.add_argument("--limit", type=int, default=0, help="at most this many suite schemas")
    args = ap.parse_args()
    o = Oracle(args)
    suite = args.suite or fetch_suite(tempfile.mkdtemp(prefix="jsts-"))
    cases = suite_schemas(suite)
    for name, schema, valid in cases[:args.limit] if args.limit else cases:
        o.one(name, schema, valid)
    for i, s in enumerate(generated_schemas(args.generated)):
        o.one("generated:%d" % i, s, [])
    o.stats["explained_positions"] = o.explained_positions
    o.stats["token_classes"] = dict(o.classes)
    print(json.dumps(o.stats))
    for d in o.diffs:
        print(json.dumps(d, ensure_ascii=False))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"stats": o.stats, "diffs": o.diffs}, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
