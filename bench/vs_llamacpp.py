#!/usr/bin/env python3
"""Helper of bench/vs_llamacpp.sh (fourcast vs llama.cpp on the same synthetic checkpoint).

Subcommands:
  convert-dir SRC DST     a directory llama.cpp's convert_hf_to_gguf.py can read: SRC's
                          safetensors and config.json linked, and a dense tokenizer.json (every id
                          below vocab_size present; fourcast's fixture tokenizer is sparse and the
                          converter walks ids 0..vocab_size-1).
      --config-only       no safetensors, and config.json written without its quantization_config
                          (the BF16 twin's config): for bench/gguf_from_nvfp4.py convert, which
                          reads SRC's NVFP4 tensors itself.
  gguf-bytes FILE         weight bytes one decode token reads from a GGUF (needs gguf-py on
                          PYTHONPATH): every tensor, but one row of the token and per-layer token
                          embeddings (the tied head still reads all of token_embd), and experts
                          scaled by used/total.
  run ...                 the interleaved rounds (see --help) and the table.

No third-party packages besides gguf-py (gguf-bytes only).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path


# ----------------------------------------------------------------------------- convert-dir

def convert_dir(src: Path, dst: Path, config_only: bool = False) -> None:
    cfg = json.loads((src / "config.json").read_text())
    text = cfg.get("text_config", cfg)
    vocab = int(text["vocab_size"])
    dst.mkdir(parents=True, exist_ok=True)
    if config_only:
        cfg.pop("quantization_config", None)
        (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    for f in [] if config_only else src.iterdir():
        if f.suffix == ".safetensors" or f.name in ("config.json", "model.safetensors.index.json"):
            link = dst / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    tok = json.loads((src / "tokenizer.json").read_text())
    model_vocab: dict[str, int] = tok["model"]["vocab"]
    used = set(model_vocab.values()) | {a["id"] for a in tok["added_tokens"]}
    if max(used) >= vocab:
        sys.exit(f"convert-dir: {src}/tokenizer.json has id {max(used)} >= vocab_size {vocab}")
    # Added tokens missing from the BPE vocabulary go in at their ids, the remaining holes get
    # placeholder pieces: the ids and therefore the embedding rows stay where they are.
    for a in tok["added_tokens"]:
        model_vocab.setdefault(a["content"], a["id"])
    for i in sorted(set(range(vocab)) - set(model_vocab.values())):
        model_vocab[f"<fc_unused{i}>"] = i
    if len(model_vocab) != vocab:
        sys.exit(f"convert-dir: {len(model_vocab)} vocabulary entries after filling, not {vocab}")
    (dst / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    special = {a["content"]: a["id"] for a in tok["added_tokens"] if a.get("special")}
    by_id = {v: k for k, v in special.items()}
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 20}
    for key, tid in (("bos_token", text.get("bos_token_id")), ("pad_token", text.get("pad_token_id"))):
        if tid in by_id:
            tc[key] = by_id[tid]
    eos = text.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    if eos in by_id:
        tc["eos_token"] = by_id[eos]
    (dst / "tokenizer_config.json").write_text(json.dumps(tc))
    print(f"convert-dir: {dst}: {vocab} tokens ({vocab - len(used)} placeholders)")


# ----------------------------------------------------------------------------- gguf-bytes

def gguf_bytes(path: Path) -> dict[str, float]:
    from gguf import GGUFReader  # gguf-py of the llama.cpp tree (PYTHONPATH)

    r = GGUFReader(str(path))
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()

    def meta_int(key: str) -> int:
        f = r.fields.get(f"{arch}.{key}")
        return int(f.parts[-1][0]) if f is not None else 0

    n_exp, n_used = meta_int("expert_count"), meta_int("expert_used_count")
    names = {t.name for t in r.tensors}
    tied = "output.weight" not in names
    out = {"total": 0.0, "head": 0.0, "experts": 0.0, "embed_rows": 0.0, "file": 0.0}
    for t in r.tensors:
        nb = float(t.n_bytes)
        out["file"] += nb
        rows = int(t.shape[-1]) if len(t.shape) > 1 else 1  # gguf shape: ne0 (row length) first
        if t.name in ("token_embd.weight", "per_layer_token_embd.weight"):
            row = nb / rows
            out["embed_rows"] += row
            out["total"] += row
            if t.name == "token_embd.weight" and tied:
                out["head"] += nb
                out["total"] += nb
            continue
        if t.name == "output.weight":
            out["head"] += nb
        if "_exps" in t.name and n_exp > 0:
            nb = nb * n_used / n_exp
            out["experts"] += nb
        out["total"] += nb
    return out


# ----------------------------------------------------------------------------- run

def own_autogroup(cmd: list[str], nice: int) -> list[str]:
    """cmd run in a scheduler autogroup of its own at `nice` (docs/benchmarks.md, issue 18)."""
    q = " ".join("'" + c.replace("'", "'\\''") + "'" for c in cmd)
    return ["setsid", "sh", "-c", f"echo {nice} > /proc/self/autogroup 2>/dev/null; exec {q}"]


class Runner:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.log = open(a.log, "a", encoding="utf-8")

    def sh(self, cmd: list[str], what: str) -> str:
        full = own_autogroup(cmd, self.a.nice)
        self.log.write(f"\n### {time.strftime('%H:%M:%S')} {what}: {' '.join(cmd)}\n")
        self.log.flush()
        p = subprocess.run(full, capture_output=True, text=True)
        self.log.write(p.stdout + p.stderr)
        self.log.flush()
        if p.returncode != 0:
            sys.exit(f"vs_llamacpp: {what} failed (exit {p.returncode}); see {self.a.log}:\n"
                     + (p.stderr or p.stdout)[-2000:])
        return p.stdout

    def probe(self) -> float:
        out = self.sh([self.a.probe, "--threads", str(self.a.threads)], "probe")
        m = re.search(r"bandwidth GB/s: ([0-9.]+)", out)
        if not m:
            sys.exit(f"vs_llamacpp: no figure in the probe's output: {out!r}")
        return float(m.group(1))

    def bracket(self, cmd: list[str], what: str) -> tuple[str, float]:
        """Output of cmd and the larger probe reading of those just before and after it."""
        before = self.probe()
        out = self.sh(cmd, what)
        after = self.probe()
        return out, max(before, after)


def llama_runs(r: Runner, gguf: str, a: argparse.Namespace) -> dict[str, float]:
    base = [a.llama_bench, "-m", gguf, "-t", str(a.threads), "-r", "1", "-o", "json"]
    res: dict[str, float] = {}
    out, _ = r.bracket(base + ["-p", ",".join(map(str, a.prompts)), "-n", "0"],
                       f"llama-bench prefill {Path(gguf).name}")
    for row in json.loads(out):
        res[f"pp{row['n_prompt']}"] = float(row["avg_ts"])
    out, bw = r.bracket(base + ["-p", "0", "-n", str(a.decode_tokens), "-d", str(a.prompts[0])],
                        f"llama-bench decode {Path(gguf).name}")
    res["tg"] = float(json.loads(out)[0]["avg_ts"])
    res["bw"] = bw
    return res


def fourcast_runs(r: Runner, head: str, a: argparse.Namespace) -> dict[str, float]:
    res: dict[str, float] = {}
    for i, n in enumerate(a.prompts):
        # The first prompt length also gives the decode figure (context n..n+decode_tokens, as
        # llama-bench -d n); the others decode 2 tokens only.
        dec = a.decode_tokens if i == 0 else 2
        # HEAD[+int8|+int8p|+int8d]: the --lm-head-dtype, and the opt-in int8 activations for
        # prefill and decode (+int8, llama.cpp's arithmetic), prefill only or decode only.
        dtype, _, extra = head.partition("+")
        cmd = [a.bench_model, "--model", a.nvfp4, "--threads", str(a.threads), "--prompt-len",
               str(n), "--decode-tokens", str(dec), "--reps", str(a.fourcast_reps),
               "--lm-head-dtype", dtype]
        flags = {"": [], "int8": ["--cpu-prefill-int8", "--cpu-decode-int8"],
                 "int8p": ["--cpu-prefill-int8"], "int8d": ["--cpu-decode-int8"]}
        if extra not in flags:
            sys.exit(f"vs_llamacpp: --heads {head}: '+{extra}' is not +int8, +int8p or +int8d")
        cmd += flags[extra]
        out, bw = r.bracket(cmd, f"bench_model p{n} head {head}")
        m = re.search(r"prefill \d+ tokens: [0-9.]+ s, ([0-9.]+) tok/s; decode .*?: ([0-9.]+) tok/s",
                      out)
        g = re.search(r"weight bytes read per decode token: ([0-9.]+) GB", out)
        if not m or not g:
            sys.exit(f"vs_llamacpp: unexpected bench_model output:\n{out[-2000:]}")
        res[f"pp{n}"] = float(m.group(1))
        if i == 0:
            res["tg"] = float(m.group(2))
            res["bw"] = bw
            res["bytes"] = float(g.group(1)) * 1e9
    return res


def fmt_range(v: list[float]) -> str:
    return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"


def run(a: argparse.Namespace) -> None:
    r = Runner(a)
    with open("/proc/loadavg") as f:
        load0 = f.read().split()[:3]
    configs: list[tuple[str, str, str]] = []  # (label, engine, model/head)
    for q, g, _ in a.gguf:
        configs.append((f"llama.cpp {q}", "llama", g))
    for head in a.heads:
        dtype, _, extra = head.partition("+")
        label = dtype + {"": "", "int8": ", int8 prefill + decode", "int8p": ", int8 prefill",
                         "int8d": ", int8 decode"}.get(extra, "+" + extra)
        configs.append((f"fourcast NVFP4, head {label}", "fourcast", head))
    samples: dict[str, list[dict[str, float]]] = {c[0]: [] for c in configs}
    loads = []
    for rnd in range(a.rounds):
        for label, eng, what in configs:  # A, B, C, ... then again: interleaved rounds
            t0 = time.time()
            res = llama_runs(r, what, a) if eng == "llama" else fourcast_runs(r, what, a)
            with open("/proc/loadavg") as f:
                loads.append(f.read().split()[0])
            samples[label].append(res)
            print(f"round {rnd + 1} {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()
                                                           if k != "bytes")
                  + f" ({time.time() - t0:.0f} s, load {loads[-1]})", flush=True)
    gguf_b = {f"llama.cpp {q}": float(b) for q, _, b in a.gguf}
    ref = f"llama.cpp {a.ref}"

    def med(label: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[label])

    print(f"\nload average at start {' '.join(load0)}; 1-min load after each run "
          f"{min(loads, key=float)}-{max(loads, key=float)}; {a.rounds} rounds interleaved, {a.threads} threads")
    hdr = ["engine / weights", "GB/token"]
    hdr += [f"prefill {n} tok/s" for n in a.prompts]
    hdr += [f"decode tok/s med (min-max)", "decode GB/s", "% of probe"]
    hdr += [f"× {a.ref} pp{n}" for n in a.prompts] + [f"× {a.ref} decode"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for label, _, _ in configs:
        ss = samples[label]
        nbytes = gguf_b.get(label, ss[0].get("bytes", 0.0))
        # % of bandwidth per round (decode bytes/s against the probe around that run); median.
        pct = statistics.median(nbytes * s["tg"] / (s["bw"] * 1e9) * 100 for s in ss)
        row = [label, f"{nbytes / 1e9:.3f}"]
        row += [fmt_range([s[f"pp{n}"] for s in ss]) for n in a.prompts]
        row += [fmt_range([s["tg"] for s in ss]), f"{nbytes * med(label, 'tg') / 1e9:.2f}",
                f"{pct:.0f}%"]
        if ref in samples:
            row += [f"{med(label, f'pp{n}') / med(ref, f'pp{n}'):.2f}" for n in a.prompts]
            row += [f"{med(label, 'tg') / med(ref, 'tg'):.2f}"]
        print("| " + " | ".join(row) + " |")
    bws = [s["bw"] for ss in samples.values() for s in ss]
    print(f"\nprobe (bench_bandwidth, larger of before/after each decode run): "
          f"{min(bws):.1f}-{max(bws):.1f} GB/s, median {statistics.median(bws):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert-dir")
    c.add_argument("src", type=Path)
    c.add_argument("dst", type=Path)
    c.add_argument("--config-only", action="store_true",
                   help="no weights; config.json without quantization_config")
    g = sub.add_parser("gguf-bytes")
    g.add_argument("file", type=Path)
    g.add_argument("--total", action="store_true", help="print only the bytes per token")
    r = sub.add_parser("run")
    r.add_argument("--llama-bench", required=True)
    r.add_argument("--bench-model", required=True)
    r.add_argument("--probe", required=True, help="build/bench/bench_bandwidth")
    r.add_argument("--nvfp4", required=True, help="fourcast NVFP4 checkpoint directory")
    r.add_argument("--gguf", nargs=3, action="append", metavar=("QUANT", "FILE", "BYTES"),
                   default=[], help="a llama.cpp model and its decode bytes/token (gguf-bytes)")
    r.add_argument("--heads", nargs="+", default=["checkpoint", "nvfp4", "nvfp4+int8"],
                   help="fourcast runs: --lm-head-dtype values; +int8 adds --cpu-prefill-int8 and "
                   "--cpu-decode-int8, +int8p / +int8d only one of them")
    # bench_model's best of 2: its first prefill touches the mmapped weights and allocates, as
    # llama-bench's warm-up run does for llama.cpp (which the table does not count either).
    r.add_argument("--fourcast-reps", type=int, default=2)
    r.add_argument("--ref", default="Q4_K_M", help="the GGUF quant the ratios are against")
    r.add_argument("--prompts", type=int, nargs="+", default=[256, 1024])
    r.add_argument("--decode-tokens", type=int, default=32)
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--nice", type=int, default=-15)
    r.add_argument("--log", required=True)
    a = ap.parse_args()
    if a.cmd == "convert-dir":
        convert_dir(a.src, a.dst, a.config_only)
    elif a.cmd == "gguf-bytes":
        b = gguf_bytes(a.file)
        print(f"{b['total']:.0f}" if a.total else json.dumps(b))
    else:
        if a.rounds < 1 or a.threads < 1 or a.decode_tokens < 1 or min(a.prompts) < 1:
            sys.exit("vs_llamacpp run: --rounds, --threads, --decode-tokens, --prompts must be > 0")
        for q, f, b in a.gguf:
            if not os.path.isfile(f):
                sys.exit(f"vs_llamacpp run: --gguf {q}: no file {f}")
            try:
                float(b)
            except ValueError:
                sys.exit(f"vs_llamacpp run: --gguf {q}: bytes/token '{b}' is not a number")
        run(a)


if __name__ == "__main__":
    main()
