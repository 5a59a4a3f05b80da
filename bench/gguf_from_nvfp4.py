#!/usr/bin/env python3
"""A llama.cpp GGUF made from a fourcast NVFP4 (ModelOpt) checkpoint, without a BF16 one (issue 18).

llama.cpp's own convert_hf_to_gguf.py converter runs as it is on a checkpoint's config and
tokenizer, but reads its tensors from this file: every NVFP4 linear is dequantized on the fly,
tensor by tensor, and handed over under the name and shape the BF16 twin (`fourcast synth` of
the same shape without --quant) has; the converter then quantizes it to the --outtype. Both
engines so read the same weights, and the 52 GB BF16 checkpoint is never written.

  gguf_from_nvfp4.py convert --llama-cpp LSRC NVFP4_DIR CONV_DIR OUT [--outtype q4_0|q8_0|f32]
      CONV_DIR: config.json and tokenizer files for the converter (vs_llamacpp.py convert-dir
      --config-only NVFP4_DIR CONV_DIR). --outtype q4_0, which the converter's own command
      line does not offer, quantizes with gguf-py's numpy Q4_0 every tensor the converter would
      give its --outtype (q8_0: Q8_0); the others keep the converter's choice (F32 norms,
      router, scalars; F16 where a row is not a multiple of 32).
  gguf_from_nvfp4.py check-dequant NVFP4_DIR SRC_DIR
      SRC_DIR is the checkpoint a real producer quantized into NVFP4_DIR
      (tests/fixtures/mini-26b -> tests/fixtures/nvfp4/modelopt-26b). Checks, per tensor of the
      twin: same names and shapes as SRC_DIR; unquantized tensors bit-identical; dequantized
      ones bit-identical to tools/refgen/quant/nvfp4_ref.py's dequant_modelopt, on the NVFP4
      grid of their block scales, and equal to SRC_DIR's weights rounded to that grid.
  gguf_from_nvfp4.py compare-gguf A B [--map Q8_0=Q4_0 ...] [--metadata-only]
      Same metadata (general.* and tokenizer.ggml.* included, bar general.file_type, the name
      and size label), tensor names, shapes and (after --map) types in two GGUFs. A from
      `convert_hf_to_gguf.py --vocab-only` on the same CONV_DIR has the metadata a BF16 twin
      gets without its weights: compare that with --metadata-only (from a directory of the same
      name: the converter takes general.finetune and the like from it).

Dequantization (fourcast's src/quant/nvfp4.cpp dequantize_row, ModelOpt's order):
  W[n, k] = e2m1(code[n, k]) * (e4m3(weight_scale[n, k / 16]) * weight_scale_2), in fp32;
  code[n, 2j] = low nibble of weight[n, j], code[n, 2j + 1] the high one.
MoE experts: the NVFP4 checkpoint has per-expert 2-D linears
  layers.L.experts.E.{gate_proj [I, H], up_proj [I, H], down_proj [H, I]};
the BF16 twin (and HF) has the fused 3-D parameters
  layers.L.experts.gate_up_proj [E, 2I, H] (gate rows [0, I), up rows [I, 2I)) and
  layers.L.experts.down_proj [E, H, I].
weight_scale, weight_scale_2, input_scale, k_scale and v_scale have no twin and are dropped.

Needs torch, safetensors and numpy (and transformers for the converter).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import struct
import sys
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                     -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=torch.float32)
DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32,
          "U8": torch.uint8, "I8": torch.int8, "I32": torch.int32, "I64": torch.int64,
          "F8_E4M3": torch.float8_e4m3fn}
DROPPED = (".weight_scale", ".weight_scale_2", ".input_scale", ".k_scale", ".v_scale")
EXPERT = re.compile(r"^(.*\.)experts\.(\d+)\.(gate_proj|up_proj|down_proj)$")


def fail(msg: str) -> None:
    sys.exit(f"gguf_from_nvfp4: {msg}")


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [N, K/2] -> int64 codes [N, K]; element 2j in the low nibble of byte j."""
    p = packed.to(torch.int64)
    return torch.stack([p & 0xF, p >> 4], dim=-1).reshape(packed.shape[0], packed.shape[1] * 2)


def dequant(packed: torch.Tensor, scale: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """fp32 [N, K] from packed [N, K/2] u8, block scales [N, K/16] e4m3, scalar s2 fp32."""
    n, k = packed.shape[0], packed.shape[1] * 2
    if tuple(scale.shape) != (n, k // 16):
        raise ValueError(f"block scales {tuple(scale.shape)} do not fit codes [{n}, {k}]")
    ps = scale.to(torch.float32) * s2.to(torch.float32).reshape(())  # [N, K/16]
    q = E2M1[unpack_codes(packed)].view(n, k // 16, 16)
    return (q * ps.unsqueeze(-1)).reshape(n, k)


def read_header(path: Path) -> dict[str, tuple[str, list[int]]]:
    """name -> (dtype, shape) of one safetensors file, from its JSON header only."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            fail(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", head)
        meta = json.loads(f.read(n))
    meta.pop("__metadata__", None)
    return {k: (v["dtype"], list(v["shape"])) for k, v in meta.items()}


class Checkpoint:
    """A safetensors checkpoint directory, read tensor by tensor (mmapped by safetensors)."""

    def __init__(self, d: Path):
        self.dir = d
        index = d / "model.safetensors.index.json"
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        else:
            files = sorted(p.name for p in d.glob("model*.safetensors"))  # not golden.safetensors
        if not files:
            fail(f"{d}: no safetensors files")
        self.info: dict[str, tuple[str, str, list[int]]] = {}  # name -> (file, dtype, shape)
        for fn in files:
            for name, (dt, shape) in read_header(d / fn).items():
                self.info[name] = (fn, dt, shape)
        self._open: dict[str, object] = {}

    def get(self, name: str) -> torch.Tensor:
        fn = self.info[name][0]
        if fn not in self._open:
            self._open[fn] = safe_open(str(self.dir / fn), framework="pt")
        return self._open[fn].get_tensor(name)  # type: ignore[attr-defined]

    def is_nvfp4(self, module: str) -> bool:
        w, s = self.info.get(module + ".weight"), self.info.get(module + ".weight_scale")
        return w is not None and s is not None and w[1] == "U8" and len(s[2]) == 2

    def dequant(self, module: str) -> torch.Tensor:
        s2 = (self.get(module + ".weight_scale_2") if module + ".weight_scale_2" in self.info
              else torch.tensor(1.0))
        try:
            return dequant(self.get(module + ".weight"), self.get(module + ".weight_scale"), s2)
        except ValueError as e:
            fail(f"{self.dir}: {module}: {e}")
            raise

    def nvfp4_shape(self, module: str) -> list[int]:
        rows, half = self.info[module + ".weight"][2]
        return [rows, half * 2]


# A tensor of the BF16 twin: name, shape, dtype, and a loader giving it.
Twin = tuple[str, list[int], torch.dtype, Callable[[], torch.Tensor]]


def twin_tensors(ck: Checkpoint) -> list[Twin]:
    """The BF16 twin's tensors (names, shapes; NVFP4 ones dequantized to fp32) in checkpoint order."""
    out: list[Twin] = []
    experts: dict[str, dict[int, dict[str, str]]] = {}  # layer prefix -> expert -> proj -> module
    first_at: dict[str, int] = {}  # layer prefix -> position of its fused tensors in `out`
    for name, (_, dt, shape) in ck.info.items():
        if name.endswith(DROPPED):
            continue
        module = name.removesuffix(".weight")
        if name.endswith(".weight") and ck.is_nvfp4(module):
            if m := EXPERT.match(module):
                layer, e, proj = m.group(1), int(m.group(2)), m.group(3)
                experts.setdefault(layer, {}).setdefault(e, {})[proj] = module
                first_at.setdefault(layer, len(out))
                continue
            out.append((name, ck.nvfp4_shape(module), torch.float32,
                        lambda m=module: ck.dequant(m)))
            continue
        if dt not in DTYPES:
            fail(f"{ck.dir}: tensor {name} has dtype {dt}, not one of {sorted(DTYPES)}")
        out.append((name, shape, DTYPES[dt], lambda n=name: ck.get(n)))
    # Fused experts, inserted where the layer's first expert was (later layers first, so the
    # earlier positions stay valid).
    for layer in sorted(experts, key=lambda p: first_at[p], reverse=True):
        ex = experts[layer]
        n_exp = len(ex)
        if sorted(ex) != list(range(n_exp)) or any(len(p) != 3 for p in ex.values()):
            fail(f"{ck.dir}: {layer}experts: need gate_proj, up_proj, down_proj of experts "
                 f"0..{n_exp - 1}, found {sorted(ex)}")
        i_dim, h_dim = ck.nvfp4_shape(ex[0]["gate_proj"])
        for e, p in ex.items():
            want = {"gate_proj": [i_dim, h_dim], "up_proj": [i_dim, h_dim], "down_proj": [h_dim, i_dim]}
            for proj, shp in want.items():
                if ck.nvfp4_shape(p[proj]) != shp:
                    fail(f"{ck.dir}: {p[proj]} is {ck.nvfp4_shape(p[proj])}, expected {shp}")

        def gate_up(ex=ex, i_dim=i_dim, h_dim=h_dim) -> torch.Tensor:
            t = torch.empty(len(ex), 2 * i_dim, h_dim, dtype=torch.float32)
            for e, p in ex.items():
                t[e, :i_dim] = ck.dequant(p["gate_proj"])
                t[e, i_dim:] = ck.dequant(p["up_proj"])
            return t

        def down(ex=ex, i_dim=i_dim, h_dim=h_dim) -> torch.Tensor:
            t = torch.empty(len(ex), h_dim, i_dim, dtype=torch.float32)
            for e, p in ex.items():
                t[e] = ck.dequant(p["down_proj"])
            return t

        at = first_at[layer]
        out[at:at] = [(layer + "experts.gate_up_proj", [n_exp, 2 * i_dim, h_dim], torch.float32, gate_up),
                      (layer + "experts.down_proj", [n_exp, h_dim, i_dim], torch.float32, down)]
    return out


# ----------------------------------------------------------------------------- convert

def import_converter(lsrc: Path):
    if not (lsrc / "convert_hf_to_gguf.py").is_file():
        fail(f"--llama-cpp {lsrc}: no convert_hf_to_gguf.py there")
    sys.path[:0] = [str(lsrc / "gguf-py"), str(lsrc)]
    import gguf  # noqa: E402  (the tree's gguf-py)
    import conversion  # noqa: E402
    from conversion.base import LazyTorchTensor  # noqa: E402
    return gguf, conversion, LazyTorchTensor


def converter_class(base: type, ck: Checkpoint, gguf, lazy_cls) -> type:
    """base (the converter's class for the architecture) reading `ck` through twin_tensors."""
    # Tensors the converter keeps in F32 by name whatever the --outtype (its prepare_tensors);
    # compare-gguf against a q8_0 conversion checks that this set is complete for Gemma 4.
    f32_keys = [getattr(gguf.MODEL_TENSOR, k) for k in (
        "FFN_GATE_INP", "FFN_GATE_INP_SHEXP", "POS_EMBD", "TOKEN_TYPES",
        "ALTUP_CORRECT_COEF", "ALTUP_PREDICT_COEF") if hasattr(gguf.MODEL_TENSOR, k)]

    def index_tensors(self, remote_hf_model_id=None):
        del remote_hf_model_id
        tensors = {}
        for name, shape, dtype, load in twin_tensors(ck):
            if self.lazy:  # a fresh lazy tensor per call: nothing stays resident once written
                meta = lazy_cls.meta_with_dtype_and_shape(dtype, tuple(shape))
                gen = lambda meta=meta, load=load: lazy_cls(meta=meta, func=load)  # noqa: E731
            else:
                gen = load
            if item := self.filter_tensors((name, gen)):
                tensors[item[0]] = item[1]
        return tensors

    def tensor_force_quant(self, name, new_name, bid, n_dims):
        forced = base.tensor_force_quant(self, name, new_name, bid, n_dims)
        if forced is not False or self.ftype != gguf.LlamaFileType.MOSTLY_Q4_0:
            return forced
        # Left to the converter (False): what it makes F32 whatever the file type.
        if n_dims <= 1 or new_name.endswith("_norm.weight"):
            return False
        if not new_name.endswith((".weight", ".lora_a", ".lora_b")):
            return False
        if any(self.match_model_tensor_name(new_name, k, bid) for k in f32_keys):
            return False
        return gguf.GGMLQuantizationType.Q4_0  # F16 where the row is not a multiple of 32

    return type(f"Nvfp4{base.__name__}", (base,), {
        "model_arch": base.model_arch, "index_tensors": index_tensors,
        "tensor_force_quant": tensor_force_quant})


def convert(a: argparse.Namespace) -> None:
    gguf, conv, lazy_cls = import_converter(a.llama_cpp)
    ftypes = {"q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
              "f32": gguf.LlamaFileType.ALL_F32}
    cfg = a.conv_dir / "config.json"
    if not cfg.is_file() or not (a.conv_dir / "tokenizer.json").is_file():
        fail(f"{a.conv_dir}: needs config.json and tokenizer.json (vs_llamacpp.py convert-dir "
             f"--config-only)")
    if "quantization_config" in json.loads(cfg.read_text()):
        fail(f"{cfg} has a quantization_config: the converter would take the NVFP4 path "
             f"(vs_llamacpp.py convert-dir --config-only writes it without)")
    ck = Checkpoint(a.nvfp4)
    if not any(ck.is_nvfp4(n.removesuffix(".weight")) for n in ck.info if n.endswith(".weight")):
        fail(f"{a.nvfp4}: no NVFP4 (ModelOpt weight + 2-D weight_scale) tensor")
    logging.basicConfig(level=logging.INFO)
    with torch.inference_mode():
        hparams = conv.ModelBase.load_hparams(a.conv_dir, False)
        arch = conv.get_model_architecture(hparams, conv.ModelType.TEXT)
        cls = converter_class(conv.get_model_class(arch), ck, gguf, lazy_cls)
        model = cls(a.conv_dir, ftypes[a.outtype], a.outfile)
        model.write()
    print(f"gguf_from_nvfp4: wrote {a.outfile} ({a.outtype}, from {a.nvfp4})")


# ----------------------------------------------------------------------------- check-dequant

def check_dequant(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "refgen" / "quant"))
    import nvfp4_ref  # the repo's Python NVFP4 reference (ModelOpt's dequantize order)

    ck, src = Checkpoint(a.nvfp4), Checkpoint(a.src)
    twins = twin_tensors(ck)
    names = {t[0] for t in twins}
    missing = sorted(set(src.info) - names)
    extra = sorted(names - set(src.info))
    if missing or extra:
        fail(f"twin names differ from {a.src}: missing {missing[:5]}, extra {extra[:5]}")
    n_q = n_plain = n_vals = n_off = 0
    for name, shape, _, load in twins:
        t, ref = load(), src.get(name)
        if list(t.shape) != shape or list(ref.shape) != shape:
            fail(f"{name}: twin shape {list(t.shape)} (declared {shape}), {a.src} {list(ref.shape)}")
        module = name.removesuffix(".weight")
        if name.endswith(".weight") and ck.is_nvfp4(module):
            mods, rows = [module], [t]
        elif name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            layer = name[: name.index("experts.") + len("experts.")]
            projs = ["gate_proj", "up_proj"] if name.endswith("gate_up_proj") else ["down_proj"]
            mods = [f"{layer}{e}.{p}" for e in range(shape[0]) for p in projs]
            rows = list(t.reshape(len(mods), -1, shape[-1]))
        else:
            if not torch.equal(t, ref):
                fail(f"{name}: unquantized tensor differs from {a.src}")
            n_plain += 1
            continue
        n_q += 1
        ref_rows = list(ref.to(torch.float32).reshape(len(mods), -1, shape[-1]))
        for m, w, r in zip(mods, rows, ref_rows):
            s2 = ck.get(m + ".weight_scale_2") if m + ".weight_scale_2" in ck.info else torch.tensor(1.0)
            want = nvfp4_ref.dequant_modelopt(ck.get(m + ".weight"), ck.get(m + ".weight_scale"), s2)
            if not torch.equal(w, want):
                fail(f"{m}: dequantized values differ from nvfp4_ref.dequant_modelopt")
            ps = (ck.get(m + ".weight_scale").to(torch.float32) * s2.to(torch.float32)).repeat_interleave(16, dim=1)
            # On the grid: each value is e2m1 * ps exactly (w / ps itself may be off by an ulp,
            # the product having been rounded to fp32).
            on_grid = nvfp4_ref.round_e2m1((w / ps).clamp(-6.0, 6.0)) * ps == w
            if not bool(on_grid.all()):
                fail(f"{m}: {int((~on_grid).sum())} values off the NVFP4 grid of their block scales")
            # The producer's codes are the source weights rounded to the grid of these scales.
            requant = nvfp4_ref.round_e2m1((r / ps).clamp(-6.0, 6.0)) * ps
            n_vals += w.numel()
            n_off += int((requant != w).sum())
    print(f"check-dequant: {n_q} NVFP4 twin tensors ({n_vals} values): bit-identical to "
          f"nvfp4_ref.dequant_modelopt, all on the grid; {n_off} values differ from {a.src} "
          f"rounded to that grid; {n_plain} unquantized tensors bit-identical")
    if n_off > n_vals // 1000:
        fail(f"{n_off} of {n_vals} values differ from the source rounded to the grid (> 0.1%)")


# ----------------------------------------------------------------------------- compare-gguf

def compare_gguf(a: argparse.Namespace) -> None:
    from gguf import GGUFReader  # gguf-py of the llama.cpp tree (PYTHONPATH)

    ra, rb = GGUFReader(str(a.a)), GGUFReader(str(a.b))
    skip = {"general.file_type", "general.name", "general.basename", "general.size_label"}
    problems: list[str] = []

    def fields(r) -> dict[str, object]:
        out = {}
        for k, f in r.fields.items():
            if k.startswith("GGUF.") or k in skip:
                continue
            out[k] = [bytes(f.parts[i]).hex() for i in f.data]
        return out

    fa, fb = fields(ra), fields(rb)
    for k in sorted(set(fa) | set(fb)):
        if fa.get(k) != fb.get(k):
            problems.append(f"metadata {k}: {'present' if k in fa else 'absent'} in A, "
                            f"{'present' if k in fb else 'absent'} in B"
                            if (k in fa) != (k in fb) else f"metadata {k} differs")
    type_map = dict(m.split("=", 1) for m in a.map)
    ta: dict[str, tuple[str, list[int]]] = {}
    tb: dict[str, tuple[str, list[int]]] = {}
    if not a.metadata_only:
        ta = {t.name: (t.tensor_type.name, [int(x) for x in t.shape]) for t in ra.tensors}
        tb = {t.name: (t.tensor_type.name, [int(x) for x in t.shape]) for t in rb.tensors}
    for n in sorted(set(ta) | set(tb)):
        if n not in ta or n not in tb:
            problems.append(f"tensor {n} only in {'A' if n in ta else 'B'}")
            continue
        (qa, sa), (qb, sb) = ta[n], tb[n]
        if sa != sb:
            problems.append(f"tensor {n}: shape {sa} vs {sb}")
        if type_map.get(qa, qa) != qb:
            problems.append(f"tensor {n}: type {qa} vs {qb}")
    counts: dict[str, int] = {}
    for q, _ in tb.values():
        counts[q] = counts.get(q, 0) + 1
    print(f"compare-gguf: {len(fa)} metadata keys in A, {len(fb)} in B, {len(ta)} tensors; "
          f"B's types {counts}")
    for p in problems:
        print("  " + p)
    if problems:
        sys.exit(f"compare-gguf: {len(problems)} differences between {a.a} and {a.b}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source tree")
    c.add_argument("--outtype", choices=["q4_0", "q8_0", "f32"], default="q4_0")
    c.add_argument("nvfp4", type=Path, help="fourcast NVFP4 (ModelOpt) checkpoint directory")
    c.add_argument("conv_dir", type=Path, help="config.json + tokenizer for the converter")
    c.add_argument("outfile", type=Path)
    d = sub.add_parser("check-dequant")
    d.add_argument("nvfp4", type=Path)
    d.add_argument("src", type=Path, help="the checkpoint the NVFP4 one was quantized from")
    g = sub.add_parser("compare-gguf")
    g.add_argument("a", type=Path)
    g.add_argument("b", type=Path)
    g.add_argument("--map", nargs="*", default=[], metavar="TYPE_A=TYPE_B",
                   help="A's type that stands for B's (e.g. Q8_0=Q4_0)")
    g.add_argument("--metadata-only", action="store_true", help="compare the metadata only")
    a = ap.parse_args()
    {"convert": convert, "check-dequant": check_dequant, "compare-gguf": compare_gguf}[a.cmd](a)


if __name__ == "__main__":
    main()
