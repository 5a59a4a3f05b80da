#!/usr/bin/env python3
"""Check an NVFP4 checkpoint (e.g. one written by fourcast's own quantizer) with each
producer's own loading code.

    /work/refgen-quant-venv/bin/python tools/refgen/quant/check_export.py DIR [--golden]

compressed-tensors (quant_method "compressed-tensors"): compressed-tensors' own
unpack_fp4_from_uint8 + dequantize on every linear (must equal q * (weight_scale /
weight_global_scale) bit for bit), transformers from_pretrained with the compressed-tensors
quantizer (must load the packed tensors unchanged), plus the config fields vLLM's
compressed_tensors W4A4 / W4A16 NVFP4 schemes require. (transformers' run_compressed=False
decompression is not used: with transformers 5.23 + compressed-tensors 0.20 on this Gemma 4 it
yields weights ~0.2% off the checkpoint's q*s/gs, see tools/refgen/README.md.)

ModelOpt (quant_method "modelopt" / hf_quant_config.json): transformers 5.23 has no ModelOpt
loader, so: the hf_quant_config.json / config.json fields vLLM's modelopt.py (ModelOptNvFp4Config)
reads, tensor dtypes/shapes as ModelOptNvFp4LinearMethod creates them, and ModelOpt's own
NVFP4QTensor.dequantize on every linear, compared bit for bit with q * (weight_scale *
weight_scale_2).

Both: every nn.Linear of the model (built from config.json on the meta device) is either
quantized or excluded by the ignore / exclude_modules list (vLLM's matching rules), FP8 KV
scales are positive finite scalars, and the dense model built from the dequantized weights runs
(and matches golden.safetensors p{i}.logits if --golden and the file exists).
Exits 1 on the first failed group of checks, printing everything it checked.
"""
import argparse
import fnmatch
import json
import os
import re
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from transformers import AutoConfig  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nvfp4_ref as R  # noqa: E402

FAILS = []


def check(cond, msg):
    print(("  ok   " if cond else "  FAIL ") + msg)
    if not cond:
        FAILS.append(msg)
    return cond


def model_class(cfg):
    from transformers import Gemma4ForCausalLM, Gemma4ForConditionalGeneration
    return {"Gemma4ForCausalLM": Gemma4ForCausalLM,
            "Gemma4ForConditionalGeneration": Gemma4ForConditionalGeneration}[cfg["architectures"][0]]


def linear_modules(d, cfg_json):
    """Names of every nn.Linear (and Gemma 4 fused experts, as per-expert names) of the model."""
    config = AutoConfig.from_pretrained(d)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        m = model_class(cfg_json)._from_config(config, **R.HF_KW)
    names = []
    for n, mod in m.named_modules():
        if isinstance(mod, torch.nn.Linear):
            names.append(n)
        elif type(mod).__name__ == "Gemma4TextExperts":
            for e in range(mod.num_experts):
                names += [f"{n}.{e}.gate_proj", f"{n}.{e}.up_proj", f"{n}.{e}.down_proj"]
    return names, m


def vllm_modelopt_excluded(prefix, patterns):
    """vLLM ModelOptQuantConfigBase.is_layer_excluded: substring (legacy), fnmatch, and the
    hard-skipped vision prefixes."""
    if any(v in prefix for v in ("vision_tower", "vision_model", "visual")):
        return True
    for p in patterns:
        if p in prefix or fnmatch.fnmatchcase(prefix, p):
            return True
        # fused-name expansion
        for fused, parts in (("qkv_proj", ("q_proj", "k_proj", "v_proj")),
                             ("gate_up_proj", ("gate_proj", "up_proj"))):
            if any(prefix.endswith("." + x) for x in parts):
                alt = prefix.rsplit(".", 1)[0] + "." + fused
                if p in alt or fnmatch.fnmatchcase(alt, p):
                    return True
    return False


def ct_ignored(prefix, ignore):
    for p in ignore:
        if p.startswith("re:"):
            if re.match(p[3:], prefix):
                return True
        elif p == prefix:
            return True
    return False


def dtype_of(d):
    out = {}
    from safetensors import safe_open
    for f in sorted(Path(d).glob("model*.safetensors")):
        with safe_open(str(f), "pt") as fh:
            for k in fh.keys():
                s = fh.get_slice(k)
                out[k] = (s.get_dtype(), list(s.get_shape()))
    return out


def is_scalar(shape):
    return shape == [] or shape == [1]


# --------------------------------------------------------------------------- ModelOpt
def check_modelopt(d, cfg, t, lins, meta):
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor
    print("ModelOpt config (vLLM modelopt.py ModelOptNvFp4Config fields):")
    hq_path = Path(d) / "hf_quant_config.json"
    qc = cfg.get("quantization_config")
    check(hq_path.exists() or qc is not None, "hf_quant_config.json or config.json quantization_config present")
    if hq_path.exists():
        hq = json.loads(hq_path.read_text())
        check(hq.get("producer", {}).get("name") == "modelopt", "hf_quant_config producer.name == modelopt")
        q = hq.get("quantization", {})
    else:
        q = {}
    if qc is not None:
        check(qc.get("quant_method") == "modelopt", "config.json quantization_config.quant_method == modelopt")
        if not q:
            q = {"quant_algo": qc.get("quant_algo"), "exclude_modules": qc.get("ignore"),
                 "kv_cache_quant_algo": "FP8" if qc.get("kv_cache_scheme") else None,
                 "group_size": qc.get("config_groups", {}).get("group_0", {}).get("weights", {}).get("group_size")}
        check(qc.get("quant_algo") == q.get("quant_algo"), "config.json quant_algo == hf_quant_config quant_algo")
        check(sorted(qc.get("ignore") or []) == sorted(q.get("exclude_modules") or []),
              "config.json ignore == hf_quant_config exclude_modules")
    algo = q.get("quant_algo") or ""
    check("NVFP4" in algo or "FP4" in algo, f"quant_algo {algo!r} routes to modelopt_fp4")
    check(algo in ("NVFP4", "W4A16_NVFP4", "NVFP4_AWQ"), f"quant_algo {algo!r} is one fourcast reads "
          "(vLLM accepts only NVFP4 / W4A16_NVFP4)")
    for field in ("group_size", "kv_cache_quant_algo", "exclude_modules"):
        check(field in q, f"field {field!r} present (vLLM requires it for NVFP4)")
    check(q.get("group_size") == 16, f"group_size == 16 (got {q.get('group_size')})")
    kv = q.get("kv_cache_quant_algo")
    check(kv in (None, "FP8"), f"kv_cache_quant_algo {kv!r} in (null, FP8)")
    w4a4 = algo in ("NVFP4", "NVFP4_AWQ")
    excl = q.get("exclude_modules") or []

    print("ModelOpt tensors (ModelOptNvFp4LinearMethod.create_weights dtypes/shapes) and "
          "NVFP4QTensor.dequantize:")
    n_bad = 0
    for p, lin in lins.items():
        n, k2 = lin.packed.shape
        ok = (meta[p + ".weight"][0] == "U8" and meta[p + ".weight_scale"] == ("F8_E4M3", [n, k2 * 2 // 16])
              and meta[p + ".weight_scale_2"][0] == "F32" and is_scalar(meta[p + ".weight_scale_2"][1])
              and (k2 * 2) % 16 == 0)
        if w4a4:
            ok &= (p + ".input_scale") in meta and meta[p + ".input_scale"][0] == "F32" \
                and is_scalar(meta[p + ".input_scale"][1]) and float(lin.input_scale.reshape(-1)[0]) > 0
        if lin.pqs is not None:
            ok &= list(lin.pqs.shape) == [k2 * 2] and algo == "NVFP4_AWQ"
        s2 = lin.s2.reshape(-1)
        ok &= bool(torch.isfinite(s2).all() and (s2 > 0).all())
        ok &= not bool(torch.isnan(lin.scale.to(torch.float32)).any())
        qt = NVFP4QTensor(torch.Size([n, k2 * 2]), torch.float32, lin.packed)
        w_mo = qt.dequantize(dtype=torch.float32, scale=lin.scale, double_scale=lin.s2.reshape(()),
                             block_sizes={-1: 16})
        same = torch.equal(w_mo, lin.weight)
        ok &= same
        if not ok:
            n_bad += 1
            print(f"       bad linear {p}: dequant equal {same}")
    check(n_bad == 0, f"{len(lins)} NVFP4 linears: U8 [N,K/2], F8_E4M3 [N,K/16], F32 scalar "
          f"weight_scale_2{', input_scale' if w4a4 else ''}; ModelOpt dequantize == q*(s*S2) bitwise")
    return excl, w4a4, kv == "FP8", vllm_modelopt_excluded


# --------------------------------------------------------------------------- compressed-tensors
def check_ct(d, cfg, t, lins, meta):
    print("compressed-tensors config (vLLM compressed_tensors NVFP4 scheme detection):")
    qc = cfg["quantization_config"]
    check(qc.get("format") == "nvfp4-pack-quantized", f"format {qc.get('format')!r} == nvfp4-pack-quantized")
    check(qc.get("quantization_status") == "compressed", "quantization_status == compressed")
    groups = qc.get("config_groups", {})
    w4a4 = None
    for g, spec in groups.items():
        w = spec.get("weights") or {}
        check(w.get("num_bits") == 4 and w.get("type") == "float" and w.get("strategy") == "tensor_group"
              and w.get("group_size") == 16 and w.get("symmetric") is True,
              f"{g}.weights: 4-bit float tensor_group 16 symmetric")
        a = spec.get("input_activations")
        if a is not None:
            check(a.get("num_bits") == 4 and a.get("type") == "float" and a.get("strategy") == "tensor_group"
                  and a.get("group_size") == 16 and a.get("symmetric") is True and a.get("dynamic") == "local",
                  f"{g}.input_activations: 4-bit float tensor_group 16 symmetric dynamic=local (W4A4)")
        w4a4 = a is not None
    kvs = qc.get("kv_cache_scheme")
    if kvs is not None:
        check(kvs.get("num_bits") == 8 and kvs.get("type") == "float" and kvs.get("strategy") == "tensor",
              "kv_cache_scheme: 8-bit float per-tensor")

    print("compressed-tensors tensors and transformers/compressed-tensors decompression:")
    n_bad = 0
    for p, lin in lins.items():
        n, k2 = lin.packed.shape
        ok = (meta[p + ".weight_scale"] == ("F8_E4M3", [n, k2 * 2 // 16])
              and meta[p + ".weight_global_scale"] == ("F32", [1]))
        if w4a4:
            ok &= meta.get(p + ".input_global_scale") == ("F32", [1])
        if not ok:
            n_bad += 1
            print(f"       bad tensors for {p}")
    check(n_bad == 0, f"{len(lins)} NVFP4 linears: weight_packed U8 [N,K/2], weight_scale F8_E4M3 [N,K/16], "
          f"weight_global_scale F32 [1]{', input_global_scale F32 [1]' if w4a4 else ''}")

    # compressed-tensors' own decompression of each tensor (what NVFP4PackedCompressor
    # .decompress_weight does): unpack_fp4_from_uint8 + lifecycle dequantize.
    from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize
    args_w = QuantizationArgs(num_bits=4, type="float", strategy="tensor_group", group_size=16)
    n_bad = 0
    for p, lin in lins.items():
        n, k2 = lin.packed.shape
        q = unpack_fp4_from_uint8(lin.packed, n, k2 * 2, dtype=torch.float32)
        w = dequantize(x_q=q, scale=lin.scale.to(torch.float32), global_scale=lin.gs, args=args_w,
                       dtype=torch.float32)
        if not torch.equal(w, lin.weight):
            n_bad += 1
            print(f"       {p}: compressed-tensors dequantize differs from q*(s/gs)")
    check(n_bad == 0, f"compressed-tensors unpack_fp4_from_uint8 + dequantize of all {len(lins)} linears "
          f"== q*(weight_scale/weight_global_scale) bitwise")

    # transformers' own loader (compressed-tensors quantizer) must accept the checkpoint.
    from make_nvfp4_fixtures import patch_ct_head_dim
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    patch_ct_head_dim()
    auto = AutoModelForImageTextToText if cfg["architectures"][0].endswith("ConditionalGeneration") \
        else AutoModelForCausalLM
    m = auto.from_pretrained(d, dtype=torch.float32)
    sd = m.state_dict()
    n_bad = 0
    for p, lin in lins.items():
        if R.EXPERT_RE.match(p) and p + ".weight_packed" not in sd:
            continue  # transformers keeps fused 3-D experts; checked via the tensors above
        for suffix, ref in (("weight_packed", lin.packed), ("weight_scale", lin.scale),
                            ("weight_global_scale", lin.gs)):
            got = sd.get(f"{p}.{suffix}")
            if got is None or not torch.equal(got.view(torch.uint8) if got.dtype == torch.float8_e4m3fn else got,
                                              ref.view(torch.uint8) if ref.dtype == torch.float8_e4m3fn else ref):
                n_bad += 1
                print(f"       {p}.{suffix}: not loaded as written")
    check(n_bad == 0, "transformers from_pretrained (compressed-tensors quantizer, run_compressed) loads "
          "weight_packed / weight_scale / weight_global_scale unchanged")
    return qc.get("ignore") or [], w4a4, kvs is not None, lambda p, ign: ct_ignored(p, ign)


# --------------------------------------------------------------------------- common
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--golden", action="store_true", help="compare with DIR/golden.safetensors")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)
    d = args.dir
    cfg = json.loads((Path(d) / "config.json").read_text())
    fmt, t, lins = R.read_checkpoint(d)
    meta = dtype_of(d)
    print(f"{d}: format {fmt}, {len(lins)} NVFP4 linears, {len(meta)} tensors")
    if fmt == "modelopt":
        excl, w4a4, kv, excluded = check_modelopt(d, cfg, t, lins, meta)
    else:
        excl, w4a4, kv, excluded = check_ct(d, cfg, t, lins, meta)

    print("coverage (every Linear quantized or excluded) and KV scales:")
    names, meta_model = linear_modules(d, cfg)
    unquant_not_excl = [n for n in names if n not in lins and not excluded(n, excl) and
                        not n.endswith("lm_head")]
    quant_but_excl = [n for n in names if n in lins and excluded(n, excl)]
    stray = [p for p in lins if p not in names]
    # a dense linear that is neither quantized nor excluded would be loaded as NVFP4 by vLLM
    check(not unquant_not_excl, f"dense linears all excluded ({len(names) - len(lins)} dense; "
          f"offenders {unquant_not_excl[:4]})")
    check(not quant_but_excl, f"no quantized linear matches the exclude list ({quant_but_excl[:4]})")
    check(not stray, f"every quantized prefix is a module of the model ({stray[:4]})")
    kv_keys = sorted(k for k in t if k.endswith((".k_scale", ".v_scale")))
    if kv:
        vals = torch.stack([t[k].to(torch.float32).reshape(()) for k in kv_keys]) if kv_keys else torch.zeros(0)
        check(len(kv_keys) > 0 and bool(torch.isfinite(vals).all() and (vals > 0).all())
              and all(is_scalar(meta[k][1]) and meta[k][0] == "F32" for k in kv_keys),
              f"{len(kv_keys)} FP8 KV scales, F32 scalars, positive and finite "
              f"(e.g. {kv_keys[:2]})")
    else:
        check(not kv_keys, "no KV scales without a KV-cache scheme")

    print("dense reference model from the dequantized weights:")
    config = AutoConfig.from_pretrained(d)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    try:
        ref = R.RefModel(model_class(cfg), config, t, lins)
        ok = True
    except AssertionError as e:
        ok = False
        print(f"       {e}")
    check(ok, "state dict (dequantized, experts re-fused) loads into the HF model with no missing/unexpected keys")
    gpath = Path(d) / "golden.safetensors"
    if ok and args.golden and gpath.exists():
        from safetensors.torch import load_file
        g = load_file(str(gpath))
        for i in range(2):
            if f"p{i}.ids" not in g:
                continue
            ref.set_w4a4(False)
            l16 = ref.logits(g[f"p{i}.ids"])
            check(torch.equal(l16, g[f"p{i}.logits"]), f"p{i}.logits (W4A16) reproduced bitwise")
            if w4a4 and f"p{i}.logits_w4a4" in g:
                ref.set_w4a4(True)
                l4 = ref.logits(g[f"p{i}.ids"])
                check(torch.equal(l4, g[f"p{i}.logits_w4a4"]), f"p{i}.logits_w4a4 reproduced bitwise")
    if FAILS:
        print(f"FAILED: {len(FAILS)} check(s)")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
