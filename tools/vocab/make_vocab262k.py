#!/usr/bin/env python3
"""Writes a 262,144-id byte-fallback BPE tokenizer.json shaped like Gemma 4's, for mask-time
benchmarks (bench/grammar_bench) and the llguidance oracle: the fixture tokenizer's special
tokens, byte-fallback pieces and merges at their real ids, then every free id filled with a
realistic piece — words of the fixture corpus with and without the leading "▁" and all their
prefixes, numbers, CJK and Hangul characters, JSON/code punctuation runs, whitespace runs, and
pronounceable syllable words — each added with a merge (prefix, last character) so the file
tokenizes text like a trained BPE. No download; deterministic (seeded).

  tools/vocab/make_vocab262k.py OUT.json
"""
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZE = 262144


def main():
    out = sys.argv[1]
    t = json.loads((ROOT / "tests/fixtures/tokenizer/tokenizer.json").read_text())
    vocab = t["model"]["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in t["model"]["merges"]]
    used = set(vocab.values())
    for a in t["added_tokens"]:
        used.add(a["id"])
    free = [i for i in range(SIZE) if i not in used]
    fi = iter(free)
    have = set(vocab)

    def add(piece):
        if piece in have or len(piece) == 0:
            return True
        chars = list(piece)
        if len(chars) > 1:
            pre = "".join(chars[:-1])
            if not add(pre):
                return False
            if chars[-1] not in have and not add(chars[-1]):
                return False
        try:
            i = next(fi)
        except StopIteration:
            return False
        vocab[piece] = i
        have.add(piece)
        if len(chars) > 1:
            merges.append(("".join(chars[:-1]), chars[-1]))
        return True

    rng = random.Random(262144)
    words = []
    for line in (ROOT / "tests/fixtures/tokenizer/corpus.jsonl").read_text().splitlines():
        try:
            text = json.loads(line)
        except Exception:
            continue
        words += re.findall(r"\w+|[^\w\s]+", text)
    uniq = list(dict.fromkeys(w for w in words if len(w) <= 16))
    rng.shuffle(uniq)
    punct = ['",', '":', '{"', '"}', '},', '],', '":"', '","', '"]', '[{', '}}', ']]', '":{',
             '":[', '"},', '"],', '});', '();', '()', '[]', '{}', '->', '=>', '==', '!=', '<=',
             '>=', '&&', '||', '::', '...', '//', '/*', '*/', '#!', '\\n', '\\"', "'s", "n't"]
    ok = True
    for p in punct:
        ok = ok and add(p) and add("▁" + p)
    for n in range(1, 32):
        add("▁" * n)
        add("\n" + "▁" * n)
    for n in range(10000):
        add(str(n))
    for cp in list(range(0x4E00, 0xA000)) + list(range(0xAC00, 0xAC00 + 4000)) + list(range(0x3040, 0x3100)):
        add(chr(cp))
    for w in uniq:
        if not (add(w) and add("▁" + w) and add("▁" + w.capitalize())):
            break
    cons, vows = "bcdfghjklmnprstvwz", "aeiou"
    while len(vocab) + len(t["added_tokens"]) < SIZE - 2:
        w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.3:
            w += rng.choice(cons)
        if rng.random() < 0.55:
            w = "▁" + w
        if rng.random() < 0.1:
            w = w.capitalize() if not w.startswith("▁") else "▁" + w[1:].capitalize()
        if not add(w):
            break
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = [list(m) for m in merges]
    Path(out).write_text(json.dumps(t, ensure_ascii=False))
    print(f"{out}: {len(vocab)} pieces + {len(t['added_tokens'])} added, ids < {SIZE}, "
          f"{len(merges)} merges")


if __name__ == "__main__":
    main()
