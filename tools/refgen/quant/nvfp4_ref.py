"""Shared NVFP4 helpers for the quant refgen scripts: read a producer checkpoint, dequantize it
exactly as the producer's own code does, build the fp32 transformers reference model, W4A4
activation emulation (spec §2.3, vLLM ref_nvfp4_quant order), and a Python copy of the C++
quantizer (src/quant/nvfp4.cpp) for bit-exactness checks.

Imported by make_nvfp4_fixtures.py and check_export.py.
"""
import json
import re
from pathlib import Path

import torch
from safetensors import safe_open

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                     -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=torch.float32)

HF_KW = {"attn_implementation": "eager", "experts_implementation": "eager", "dtype": torch.float32}


# --------------------------------------------------------------------------- primitives
def unpack_codes(packed):
    """uint8 [N, K/2] -> int64 codes [N, K]; element 2j = low nibble of byte j."""
    p = packed.to(torch.int64)
    return torch.stack([p & 0xF, p >> 4], dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


def e4m3_round(x):
    """fp32 -> nearest-even E4M3 value (caller clamps to ±448 first), back as fp32."""
    return x.to(torch.float8_e4m3fn).to(torch.float32)


def round_e2m1(x):
    """Round to the E2M1 grid, ties to the even code (spec §1.1 thresholds); x already in ±6."""
    a = x.abs()
    r = torch.zeros_like(a)
    r = torch.where((a > 0.25) & (a < 0.75), 0.5, r)
    r = torch.where((a >= 0.75) & (a <= 1.25), 1.0, r)
    r = torch.where((a > 1.25) & (a < 1.75), 1.5, r)
    r = torch.where((a >= 1.75) & (a <= 2.5), 2.0, r)
    r = torch.where((a > 2.5) & (a < 3.5), 3.0, r)
    r = torch.where((a >= 3.5) & (a <= 5.0), 4.0, r)
    r = torch.where(a > 5.0, 6.0, r)
    return torch.where(x < 0, -r, r)


def dequant_modelopt(packed, scale_fp8, s2):
    """ModelOpt NVFP4QTensor.dequantize order: ps = f32(s) * S2; W = q * ps."""
    q = E2M1[unpack_codes(packed)]
    ps = scale_fp8.to(torch.float32) * s2.to(torch.float32).reshape(())
    n, k = q.shape
    return (q.view(n, k // 16, 16) * ps.unsqueeze(-1)).reshape(n, k)


def dequant_ct(packed, scale_fp8, gs):
    """compressed-tensors _dequantize order: ps = f32(s) / global_scale; W = q * ps."""
    q = E2M1[unpack_codes(packed)]
    ps = scale_fp8.to(torch.float32) / gs.to(torch.float32).reshape(())
    n, k = q.shape
    return (q.view(n, k // 16, 16) * ps.unsqueeze(-1)).reshape(n, k)


def activation_qdq(x, input_scale):
    """W4A4 activation quantize-dequantize, fp32, spec §2.3 / vLLM ref_nvfp4_quant order:
    gA = 1/input_scale; sa = e4m3(clamp(gA*(amax_b*(1/6)), ±448));
    inv = sa==0 ? 0 : 1/(sa*(1/gA)); q = e2m1(clamp(x*inv, ±6)); out = q*(sa/gA)."""
    shape = x.shape
    xb = x.to(torch.float32).reshape(-1, shape[-1] // 16, 16)
    one = torch.tensor(1.0, dtype=torch.float32)
    ga = one / input_scale.to(torch.float32).reshape(())
    inv_ga = one / ga
    amax = xb.abs().amax(dim=-1, keepdim=True)
    sa = e4m3_round(torch.clamp(ga * (amax * torch.tensor(1.0 / 6.0, dtype=torch.float32)), -448.0, 448.0))
    inv = torch.where(sa == 0, torch.zeros_like(sa), one / (sa * inv_ga))
    q = round_e2m1(torch.clamp(xb * inv, -6.0, 6.0))
    return (q * (sa / ga)).reshape(shape).to(x.dtype)


# --------------------------------------------------------------------------- C++ quantizer copy
def float_to_e2m1_codes(x):
    """Codes as src/quant/nvfp4.cpp float_to_e2m1 makes them (sign from signbit)."""
    a = x.abs()
    m = torch.zeros(x.shape, dtype=torch.int64)
    for lo, incl, code in ((0.25, False, 1), (0.75, True, 2), (1.25, False, 3), (1.75, True, 4),
                           (2.5, False, 5), (3.5, True, 6), (5.0, False, 7)):
        m = torch.where(a >= lo if incl else a > lo, torch.full_like(m, code), m)
    return m | (torch.signbit(x).to(torch.int64) << 3)


def cpp_quantize(w, amax, producer, ct_fix=False):
    """Python copy of fc::quant::quantize (src/quant/nvfp4.cpp as of this writing) in fp32: returns
    (codes int64 [N,K], scale bytes uint8 [N,K/16], global fp32 scalar).
    ct_fix=True applies the corrections found against compressed-tensors 0.20 (README): the
    global scale is fl(fl(1/amax)*2688) (Python `2688.0 / tensor` is reciprocal-then-multiply in
    torch) and only an exact-zero block scale becomes 0.125."""
    w = w.to(torch.float32)
    n, k = w.shape
    amax = torch.tensor(float(amax), dtype=torch.float32)
    s2 = amax / torch.tensor(2688.0)
    gs = (torch.tensor(1.0) / amax) * 2688.0 if ct_fix else torch.tensor(2688.0) / amax
    wb = w.view(n, k // 16, 16)
    amax_b = wb.abs().amax(-1)
    if producer == "modelopt":
        raw = amax_b / (torch.tensor(6.0) * s2)
        sb = torch.clamp(raw, 2.0 ** -9, 448.0).to(torch.float8_e4m3fn)
        step = sb.to(torch.float32) * s2
        glob = s2
    else:
        raw = gs * (amax_b / torch.tensor(6.0))
        sb = torch.clamp(raw, -448.0, 448.0).to(torch.float8_e4m3fn)
        low = sb.to(torch.float32) == 0 if ct_fix else sb.to(torch.float32) < 0.125
        sb = torch.where(low, torch.tensor(0.125).to(torch.float8_e4m3fn), sb)
        step = sb.to(torch.float32) / gs
        glob = torch.tensor(1.0) / gs
    codes = float_to_e2m1_codes(torch.clamp(wb / step.unsqueeze(-1), -6.0, 6.0)).reshape(n, k)
    return codes, sb.view(torch.uint8), glob


# --------------------------------------------------------------------------- checkpoint reading
def load_tensors(d):
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        if f.name == "golden.safetensors":
            continue
        with safe_open(str(f), "pt") as fh:
            for k in fh.keys():
                out[k] = fh.get_tensor(k)
    return out


def detect_format(d):
    cfg = json.loads((Path(d) / "config.json").read_text())
    qc = cfg.get("quantization_config") or {}
    if qc.get("quant_method") == "modelopt":
        return "modelopt"
    if qc.get("quant_method") == "compressed-tensors":
        return "ct"
    if (Path(d) / "hf_quant_config.json").exists():
        return "modelopt"
    raise ValueError(f"{d}: no NVFP4 quantization description")


class Linear:
    """One NVFP4 linear of a checkpoint, in the producer's own terms."""

    def __init__(self, prefix, fmt, t):
        self.prefix, self.fmt = prefix, fmt
        if fmt == "modelopt":
            self.packed = t[prefix + ".weight"]
            self.scale = t[prefix + ".weight_scale"]
            self.s2 = t[prefix + ".weight_scale_2"].to(torch.float32)
            self.input_scale = t.get(prefix + ".input_scale")
            self.pqs = t.get(prefix + ".pre_quant_scale")
            self.weight = dequant_modelopt(self.packed, self.scale, self.s2)
            self.global_mul = self.s2.reshape(())   # multiplier form
        else:
            self.packed = t[prefix + ".weight_packed"]
            self.scale = t[prefix + ".weight_scale"]
            self.gs = t[prefix + ".weight_global_scale"].to(torch.float32)
            igs = t.get(prefix + ".input_global_scale")
            self.input_global_scale = igs
            # spec: input_scale = 1 / CT input_global_scale
            self.input_scale = None if igs is None else torch.tensor(1.0) / igs.to(torch.float32)
            self.pqs = None
            self.weight = dequant_ct(self.packed, self.scale, self.gs)
            self.global_mul = torch.tensor(1.0) / self.gs.reshape(())
        self.codes = unpack_codes(self.packed)


QUANT_SUFFIXES = (".weight_scale", ".weight_scale_2", ".input_scale", ".pre_quant_scale",
                  ".weight_packed", ".weight_global_scale", ".input_global_scale",
                  ".k_scale", ".v_scale")


def read_checkpoint(d):
    """Returns (fmt, tensors, {prefix: Linear})."""
    fmt = detect_format(d)
    t = load_tensors(d)
    marker = ".weight_scale_2" if fmt == "modelopt" else ".weight_packed"
    lins = {k[: -len(marker)]: None for k in t if k.endswith(marker)}
    for p in lins:
        lins[p] = Linear(p, fmt, t)
    return fmt, t, lins


EXPERT_RE = re.compile(r"^(.*\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)$")


def dense_state_dict(t, lins):
    """HF state dict (fp32) with every NVFP4 linear replaced by its dequantized weight and
    per-expert 2-D experts re-fused into HF's 3-D gate_up_proj / down_proj."""
    sd = {}
    experts = {}
    for k, v in t.items():
        if k.endswith(QUANT_SUFFIXES):
            continue
        if k.endswith(".weight") and k[: -len(".weight")] in lins:
            continue
        sd[k] = v.to(torch.float32)
    for p, lin in lins.items():
        m = EXPERT_RE.match(p)
        if m:
            experts.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = lin.weight
        else:
            sd[p + ".weight"] = lin.weight.clone()
    # unquantized per-expert weights (e.g. if a producer left some experts dense)
    for k in list(sd):
        m = EXPERT_RE.match(k[: -len(".weight")]) if k.endswith(".weight") else None
        if m:
            experts.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = sd.pop(k)
    for base, per in experts.items():
        ids = sorted(per)
        assert ids == list(range(len(ids))), f"{base}: experts {ids}"
        sd[base + ".gate_up_proj"] = torch.stack([torch.cat([per[e]["gate_proj"], per[e]["up_proj"]], 0)
                                                  for e in ids])
        sd[base + ".down_proj"] = torch.stack([per[e]["down_proj"] for e in ids])
    return sd


# --------------------------------------------------------------------------- reference model
class ActTransform:
    """The input transform of one quantized linear: x -> (x ⊙ pqs), then W4A4 QDQ if enabled."""

    def __init__(self, lin):
        self.pqs = None if lin.pqs is None else lin.pqs.to(torch.float32)
        self.input_scale = lin.input_scale
        self.w4a4 = False

    def __call__(self, x):
        if self.pqs is not None:
            x = x * self.pqs
        if self.w4a4:
            assert self.input_scale is not None
            x = activation_qdq(x, self.input_scale)
        return x

    def same(self, other):
        def eq(a, b):
            return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
        return eq(self.pqs, other.pqs) and eq(self.input_scale, other.input_scale)


def _experts_forward(mod, transforms):
    """Gemma4TextExperts.forward (transformers 5.23 eager) with per-expert input transforms."""
    import torch.nn as nn

    def forward(hidden_states, top_k_index, top_k_weights):
        final = torch.zeros_like(hidden_states)
        with torch.no_grad():
            expert_mask = torch.nn.functional.one_hot(top_k_index, num_classes=mod.num_experts + 1)
            expert_mask = expert_mask.permute(2, 1, 0)
            expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
        inter = mod.gate_up_proj.shape[1] // 2
        for expert_idx in expert_hit:
            e = int(expert_idx[0])
            if e == mod.num_experts:
                continue
            top_k_pos, token_idx = torch.where(expert_mask[e])
            x = hidden_states[token_idx]
            tg, tu, td = transforms[e]["gate_proj"], transforms[e]["up_proj"], transforms[e]["down_proj"]
            if tg.same(tu) and tg.w4a4 == tu.w4a4:
                gate, up = nn.functional.linear(tg(x), mod.gate_up_proj[e]).chunk(2, dim=-1)
            else:
                gate = nn.functional.linear(tg(x), mod.gate_up_proj[e][:inter])
                up = nn.functional.linear(tu(x), mod.gate_up_proj[e][inter:])
            h = mod.act_fn(gate) * up
            h = nn.functional.linear(td(h), mod.down_proj[e])
            h = h * top_k_weights[token_idx, top_k_pos, None]
            final.index_add_(0, token_idx, h.to(final.dtype))
        return final

    return forward


class RefModel:
    """fp32 transformers model of a quantized checkpoint: W = exact dequantization; pqs applied
    to the input; optional W4A4 activation emulation (set_w4a4)."""

    def __init__(self, cls, config, t, lins):
        self.model = cls._from_config(config, **HF_KW).eval()
        sd = dense_state_dict(t, lins)
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        allowed_missing = {"lm_head.weight"}
        assert set(missing) <= allowed_missing, f"missing {missing}"
        assert not unexpected, f"unexpected {unexpected}"
        self.model.tie_weights()
        self.transforms = []
        self.hooks = []
        modules = dict(self.model.named_modules())
        experts = {}
        for p, lin in lins.items():
            tr = ActTransform(lin)
            self.transforms.append(tr)
            m = EXPERT_RE.match(p)
            if m:
                experts.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = tr
                continue
            mod = modules[p]
            self.hooks.append(mod.register_forward_pre_hook(lambda _m, args, tr=tr: (tr(args[0]),) + args[1:]))
        for base, per in experts.items():
            mod = modules[base]
            mod.forward = _experts_forward(mod, per)

    def set_w4a4(self, on):
        for tr in self.transforms:
            tr.w4a4 = on

    @torch.no_grad()
    def logits(self, ids):
        return self.model(input_ids=ids[None], use_cache=False).logits[0].clone()
