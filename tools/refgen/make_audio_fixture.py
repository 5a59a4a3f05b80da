#!/usr/bin/env python3
"""Generate tests/fixtures/audio-mini/: a tiny random E-layout Gemma4ForConditionalGeneration with an
audio tower, and the transformers references of the audio path (see README.md here).

    /work/venvs/refgen/bin/python tools/refgen/make_audio_fixture.py

Never run by CI; the outputs are committed.
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import (Gemma4AudioConfig, Gemma4AudioFeatureExtractor, Gemma4Config,
                          Gemma4ForConditionalGeneration, Gemma4Processor)
from transformers.models.gemma4.modeling_gemma4 import Gemma4ClippableLinear

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import (FIXTURES, HF_KW, MINI_E2B_EDITS, SEED, randomize_scales,  # noqa: E402
                           round_to_bf16, sort_safetensors_header, text_kwargs)

GENERATOR = "tools/refgen/make_audio_fixture.py"
NAME = "audio-mini"
MODEL_SEED = SEED + 91
SR = 16000
MAX_DIR_BYTES = 2 * 1024 * 1024

# The E-shape tower of spec multimodal §9.1 with two changes forced by transformers:
# subsampling_conv_channels[0] must be 128 because Gemma4AudioSubSampleConvProjection sizes
# input_proj_linear as (channels[0] // 4) * channels[1], which only equals the flattened
# (128 mels / 4) * channels[1] when channels[0] == 128; and attention_chunk_size 4 with
# attention_context_left 5 as in the spec. Smaller logit cap and gradient_clipping than the real
# model so the tanh cap and the residual clamps actually change values in the reference.
AUDIO = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, hidden_act="silu",
             subsampling_conv_channels=[128, 8], conv_kernel_size=3, residual_weight=0.5,
             attention_chunk_size=4, attention_context_left=5, attention_context_right=0,
             attention_logit_cap=5.0, attention_invalid_logits_value=-1.0e9,
             use_clipped_linears=True, rms_norm_eps=1e-6, gradient_clipping=6.0,
             output_proj_dims=32, initializer_range=0.3)
# Token ids of the tiny vocabulary (256): the mini-31b wrapper's §12.3 placeholder ids.
WRAPPER = {"boi_token_id": 248, "eoi_token_id": 249, "image_token_id": 250,
           "audio_token_id": 251, "boa_token_id": 252, "eoa_token_index": 253,
           "video_token_id": 254, "tie_word_embeddings": True}
TOWER_SIGNALS = ("sweep", "short", "noise")
LONG_TILES = 31  # the 31 s signal is the 1 s noise signal repeated 31 times
LONG_ROWS = 64   # rows of the 31 s features kept at each end
N_RANDOM_LENGTHS = 600


# --------------------------------------------------------------------------- signals
def make_signals():
    """int16 PCM test signals (the C++ test reads them and scales by 1/32768, as a WAV decoder)."""
    rng = np.random.RandomState(20260716)
    t2 = np.arange(2 * SR) / SR
    t1 = np.arange(SR) / SR
    sweep = 0.8 * np.sin(2 * np.pi * (50 * t2 + (7950 - 50) / (2 * 2.0) * t2 * t2))
    noise = np.clip(rng.randn(SR) * 0.25, -1, 1)
    clipped = np.clip(3.0 * np.sin(2 * np.pi * 300 * t1), -1, 1)
    short = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(int(0.7 * SR)) / SR) + \
        0.1 * rng.randn(int(0.7 * SR))
    sig = {"silence": np.zeros(SR), "sweep": sweep, "noise": noise, "clipped": clipped,
           "short": np.clip(short, -1, 1)}
    return {k: np.round(v * 32767).astype(np.int16) for k, v in sig.items()}


def as_float(pcm):
    return pcm.astype(np.float32) / np.float32(32768.0)


def features(fe, x):
    """What the extractor returns for one float32 clip (as the processor passes it)."""
    out = fe([x], return_tensors="np")
    return out["input_features"][0], out["input_features_mask"][0]


def processor():
    """Gemma4Processor's audio logic without its image/video processors (which need PIL and
    torchvision): the same feature extractor and the same replace_audio_token /
    _compute_audio_num_tokens methods the processor runs."""
    p = Gemma4Processor.__new__(Gemma4Processor)
    p.feature_extractor = Gemma4AudioFeatureExtractor()
    p.audio_seq_length = 750
    p.audio_ms_per_token = 40
    p.audio_token, p.boa_token, p.eoa_token = "<|audio|>", "<|audio>", "<audio|>"
    return p


def token_counts(p):
    golden_table = {38560: 60, 48000: 75, 48800: 76, 99360: 155, 640000: 750}
    rng = np.random.RandomState(7)
    lengths = sorted(set([0, 1, 160, 161, 320, 321, 480, 481, 640, 641, 11200, 479999, 480000,
                          480001, 960000] + list(golden_table) +
                         rng.randint(0, 36 * SR, size=N_RANDOM_LENGTHS).tolist()))
    counts, counts_mask = [], []
    for n in lengths:
        c = p._compute_audio_num_tokens(np.zeros(n), SR)
        if n > 0:
            fe = p.feature_extractor([np.zeros(n, np.float32)], return_tensors="np")
            m = p.replace_audio_token(fe, 0).count(p.audio_token)
        else:
            m = 0  # the extractor rejects an empty list
        assert c == m, (n, c, m)
        counts.append(c)
    for n, want in golden_table.items():
        assert counts[lengths.index(n)] == want, (n, counts[lengths.index(n)], want)
    return torch.tensor(lengths, dtype=torch.int64), torch.tensor(counts, dtype=torch.int64)


# --------------------------------------------------------------------------- model
def new_model():
    torch.manual_seed(MODEL_SEED)
    text = text_kwargs({**MINI_E2B_EDITS})
    cfg = Gemma4Config(text_config=text, vision_config=None,
                       audio_config=Gemma4AudioConfig(**AUDIO), initializer_range=0.4, **WRAPPER)
    return Gemma4ForConditionalGeneration._from_config(cfg, **HF_KW).eval()


@torch.no_grad()
def randomize_audio(model, seed):
    """Values the initialiser leaves degenerate: LayerNorm weights (ones), per_dim_scale (zeros),
    the clip bounds (±inf) — finite, and tight enough that some values are clipped."""
    g = torch.Generator().manual_seed(seed)
    tower = model.model.audio_tower
    for name, mod in tower.named_modules():
        if isinstance(mod, torch.nn.LayerNorm):
            mod.weight.copy_(torch.empty(mod.weight.shape).uniform_(0.5, 1.5, generator=g))
        if hasattr(mod, "per_dim_scale"):
            mod.per_dim_scale.copy_(torch.empty(mod.per_dim_scale.shape).uniform_(-1, 1, generator=g))
        if isinstance(mod, Gemma4ClippableLinear):
            lo = float(torch.empty(()).uniform_(1.5, 3.0, generator=g))
            hi = float(torch.empty(()).uniform_(1.5, 3.0, generator=g))
            mod.input_min.fill_(-lo)
            mod.input_max.fill_(hi)
            mod.output_min.fill_(-float(torch.empty(()).uniform_(1.0, 3.0, generator=g)))
            mod.output_max.fill_(float(torch.empty(()).uniform_(1.0, 3.0, generator=g)))
    tower.output_proj.bias.copy_(torch.empty(tower.output_proj.bias.shape).normal_(0, 0.5,
                                                                                generator=g))


@torch.no_grad()
def tower_refs(model, feats, mask):
    """Tower output and embed_audio for one item, stripped with the subsampled mask; the
    subsampling output and every layer's output as intermediates."""
    tower = model.model.audio_tower
    x = torch.from_numpy(feats)[None]
    m = torch.from_numpy(mask)[None]
    sub = {}
    h = tower.subsample_conv_projection.register_forward_hook(
        lambda mod, a, o: sub.update(out=o[0].detach().clone(), mask=o[1].detach().clone()))
    layers = []
    hooks = [l.register_forward_hook(lambda mod, a, o: layers.append(o.detach().clone()))
             for l in tower.layers]
    try:
        out = model.model.get_audio_features(x, m, return_dict=True)
    finally:
        h.remove()
        for k in hooks:
            k.remove()
    keep = out.attention_mask[0]
    assert torch.equal(keep, sub["mask"][0])
    n = int(keep.sum())
    assert torch.all(keep[:n]) and not torch.any(keep[n:]), "subsampled mask is not a prefix"
    return {"out": out.last_hidden_state[0][keep], "embed": out.pooler_output[0][keep],
            "subsample": sub["out"][0][keep],
            "layers": torch.stack([l[0][keep] for l in layers])}


@torch.no_grad()
def check_batch_invariance(model, fe, a, b, ra, rb):
    """Two items padded into one batch give the same stripped rows as one at a time."""
    out = fe([a, b], return_tensors="pt")
    res = model.model.get_audio_features(out["input_features"], out["input_features_mask"],
                                         return_dict=True)
    for i, ref in enumerate((ra, rb)):
        got = res.pooler_output[i][res.attention_mask[i]]
        assert got.shape == ref["embed"].shape, (got.shape, ref["embed"].shape)
        assert torch.allclose(got, ref["embed"], atol=1e-5, rtol=0), (got - ref["embed"]).abs().max()


@torch.no_grad()
def lm_refs(model, fe, pcm):
    """A prompt with the expanded audio placeholder (phase 2 wires it up): the merged
    inputs_embeds, the logits at every position and 8 greedy tokens (full re-forward each step)."""
    x = as_float(pcm)
    out = fe([x], return_tensors="pt")
    n_audio = int(processor()._compute_audio_num_tokens(x, SR))
    text_a = [2, 17, 99, 203, 41]
    text_b = [88, 5, 140, 71, 33, 160]
    ids = torch.tensor(text_a + [WRAPPER["boa_token_id"]] + [WRAPPER["audio_token_id"]] * n_audio +
                       [WRAPPER["eoa_token_index"]] + text_b, dtype=torch.int64)
    emb = {}
    lm = model.model.language_model
    h = lm.register_forward_pre_hook(
        lambda mod, a, kw: emb.update(x=kw["inputs_embeds"].detach().clone()), with_kwargs=True)
    try:
        logits = model(input_ids=ids[None], input_features=out["input_features"],
                       input_features_mask=out["input_features_mask"], use_cache=False).logits[0]
    finally:
        h.remove()
    seq, greedy, margin = ids.clone(), [], float("inf")
    for _ in range(8):
        row = model(input_ids=seq[None], input_features=out["input_features"],
                    input_features_mask=out["input_features_mask"], use_cache=False).logits[0, -1]
        top2 = torch.topk(row, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        tok = int(torch.argmax(row))
        greedy.append(tok)
        seq = torch.cat([seq, torch.tensor([tok])])
    assert margin > 0.02, f"greedy near-tie (margin {margin:.3g})"
    print(f"   lm: smallest greedy top1-top2 margin {margin:.4f}")
    assert torch.allclose(logits[-1], model(input_ids=ids[None], input_features=out["input_features"],
                                            input_features_mask=out["input_features_mask"],
                                            use_cache=False).logits[0, -1])
    return {"lm.ids": ids, "lm.inputs_embeds": emb["x"][0], "lm.logits": logits,
            "lm.greedy": torch.tensor(greedy, dtype=torch.int64),
            "lm.n_audio": torch.tensor([n_audio], dtype=torch.int64)}


def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}")
    fe = Gemma4AudioFeatureExtractor()
    golden = {"fe.mel_filters": torch.from_numpy(fe.mel_filters.astype(np.float32)),
              "fe.window": torch.from_numpy(fe.window)}
    sigs = make_signals()
    feats = {}
    for name, pcm in sigs.items():
        golden[f"sig.{name}"] = torch.from_numpy(pcm)
        f32, mask = features(fe, as_float(pcm))
        feats[name] = (f32, mask)
        golden[f"fe.{name}.features"] = torch.from_numpy(f32)
        golden[f"fe.{name}.mask"] = torch.from_numpy(mask.astype(np.uint8))
        print(f"   {name}: {len(pcm)} samples -> {f32.shape[0]} frames, {int(mask.sum())} valid")
    # 31 s: noise tiled; HF truncates to 30 s. Only the ends are stored (the whole is 1.5 MB).
    long_pcm = np.tile(sigs["noise"], LONG_TILES)
    f32, mask = features(fe, as_float(long_pcm))
    print(f"   long: {len(long_pcm)} samples -> {f32.shape[0]} frames, {int(mask.sum())} valid")
    golden["fe.long.head"] = torch.from_numpy(f32[:LONG_ROWS].copy())
    golden["fe.long.tail"] = torch.from_numpy(f32[-LONG_ROWS:].copy())
    golden["fe.long.mask"] = torch.from_numpy(mask.astype(np.uint8))

    p = processor()
    golden["tokens.lengths"], golden["tokens.counts"] = token_counts(p)
    print(f"   token counts: {len(golden['tokens.lengths'])} lengths agree (formula = processor)")

    model = new_model()
    randomize_scales(model, MODEL_SEED + 100)
    randomize_audio(model, MODEL_SEED + 200)
    round_to_bf16(model)
    refs = {}
    for name in TOWER_SIGNALS:
        f, m = feats[name]
        r = tower_refs(model, f, m)
        refs[name] = r
        for k, v in r.items():
            golden[f"tower.{name}.{k}"] = v
        print(f"   tower {name}: {tuple(r['out'].shape)} out std {float(r['out'].std()):.3f}, "
              f"embed std {float(r['embed'].std()):.3f}")
    check_batch_invariance(model, fe, as_float(sigs["sweep"]), as_float(sigs["short"]),
                           refs["sweep"], refs["short"])
    golden.update(lm_refs(model, fe, sigs["short"]))
    print(f"   lm: {len(golden['lm.ids'])} ids ({int(golden['lm.n_audio'][0])} audio), "
          f"greedy {golden['lm.greedy'].tolist()}")

    out_dir = FIXTURES / NAME
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    golden = {k: v.contiguous() for k, v in golden.items()}
    meta = {"generator": GENERATOR, "model": NAME, "weight_dtype": "BF16",
            "reference_dtype": "F32", "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__,
            "safetensors": safetensors.__version__, "seed": str(MODEL_SEED),
            "long_signal": f"sig.noise tiled {LONG_TILES}x", "long_rows": str(LONG_ROWS)}
    save_file(golden, str(out_dir / "golden.safetensors"), metadata=meta)
    sort_safetensors_header(out_dir / "golden.safetensors")
    size = sum(f.stat().st_size for f in out_dir.iterdir())
    print(f"== {NAME}: {out_dir} {size / 1024:.0f} KiB")
    assert size < MAX_DIR_BYTES
    json.loads((out_dir / "config.json").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
