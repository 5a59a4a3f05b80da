#!/usr/bin/env python3
"""Tiny random Gemma4ForConditionalGeneration fixtures with a vision tower, both layouts:

  tests/fixtures/mm-31b  31B-shape text mini (bidirectional image blocks on sliding layers,
                         k_eq_v, W = 8) + the 26B/31B tower form (standardize, no clipping), BF16
  tests/fixtures/mm-e2b  E2B-shape text mini (PLE, KV sharing, causal) + the E2B/E4B tower form
                         (clipped linears, no standardize), F32

Image blocks (54..64 soft tokens) exceed the sliding window 8. golden.safetensors holds, all fp32
from transformers (eager attention, one thread):
  img{i}.pixel_values [630, 48], img{i}.position_ids I32 [630, 2]  the processor's output
  img{i}.patch_embed [P, d]      patch embedder output (real patches)
  img{i}.layer{l} [P, d]         each encoder layer's output (real patches)
  img{i}.pooled [N, d]           pooler output (×√d, fp32) before standardize
  img{i}.tower [N, d]            vision tower output (after standardize where on)
  img{i}.embed [N, H]            embed_vision output (the soft tokens)
  {p}.ids I64 [T], {p}.images I64 [k] (image index per placeholder run), {p}.merged [T, H]
  (inputs_embeds entering the text model), {p}.logits [T, V], {p}.greedy I64 [4] (generate() with
  KV cache), {p}.greedy_logits [4, V], {p}.mask_sliding / {p}.mask_full U8 [T, T] (the eager
  attention masks HF built: 1 = may attend)
for prompts one (one image), two (two images), between (text | image | text), chat (a
multi-turn chat laid out by hand with the tiny vocabulary: the image in the second user turn)
and stray (an image placeholder id with no image: HF embeds it as pad).

    /work/venvs/vision/bin/python tools/refgen/make_vision_fixtures.py
"""
import io
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import make_fixtures as mf
from transformers import Gemma4Config, Gemma4ForConditionalGeneration, Gemma4VisionConfig
from transformers.models.gemma4.image_processing_gemma4 import Gemma4ImageProcessor
from transformers.models.gemma4.modeling_gemma4 import (Gemma4ClippableLinear, Gemma4TextAttention,
                                                        Gemma4VisionModel)

SEED = 20260614
W = 8
IMAGE_SIZES = [(40, 60), (24, 24), (100, 20)]  # (H, W): 60, 64 and 54 soft tokens (spec §9.1)
VISION = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 8,
    "patch_size": 4, "pooling_kernel_size": 3, "position_embedding_size": 256,
    "rms_norm_eps": 1e-6, "hidden_activation": "gelu_pytorch_tanh",
    "rope_parameters": {"rope_type": "axial", "rope_theta": 100.0},
}
MODELS = {
    "mm-31b": dict(text={**mf.MINI_31B_EDITS, "sliding_window": W}, dtype="BF16", seed=61,
                   vision={**VISION, "standardize": True, "use_clipped_linears": False}),
    "mm-e2b": dict(text={**mf.MINI_E2B_EDITS, "sliding_window": W}, dtype="F32", seed=62,
                   vision={**VISION, "standardize": False, "use_clipped_linears": True}),
}
BOI, EOI, IMG = 248, 249, 250
N_GREEDY = 4


def new_model(spec, seed):
    torch.manual_seed(seed)
    vc = Gemma4VisionConfig(**spec["vision"], initializer_range=mf.INIT_RANGE)
    vc.default_output_length = 70  # what the converter writes; vLLM's fallback budget
    cfg = Gemma4Config(text_config=mf.text_kwargs(spec["text"]), vision_config=vc,
                       audio_config=None, initializer_range=mf.INIT_RANGE, **mf.WRAPPER_12_3)
    return Gemma4ForConditionalGeneration._from_config(cfg, **mf.HF_KW).eval()


@torch.no_grad()
def randomize_vision(model, seed):
    """What the initialiser leaves degenerate (spec multimodal.md §9.1): the position table
    (ones), std_bias / std_scale (empty), the clip bounds (±inf)."""
    g = torch.Generator().manual_seed(seed)
    vt = model.model.vision_tower
    t = vt.patch_embedder.position_embedding_table
    t.copy_(torch.randn(t.shape, generator=g) * 0.5)
    if vt.config.standardize:
        vt.std_bias.copy_(torch.randn(vt.std_bias.shape, generator=g) * 3.0)
        vt.std_scale.copy_(torch.empty(vt.std_scale.shape).uniform_(0.05, 0.3, generator=g))
    for mod in vt.modules():
        if isinstance(mod, Gemma4ClippableLinear) and mod.use_clipped_linears:
            # Bounds that clip a few percent of the activations.
            mod.input_min.fill_(-float(torch.empty(1).uniform_(1.5, 3.0, generator=g)))
            mod.input_max.fill_(float(torch.empty(1).uniform_(1.5, 3.0, generator=g)))
            mod.output_min.fill_(-float(torch.empty(1).uniform_(2.0, 6.0, generator=g)))
            mod.output_max.fill_(float(torch.empty(1).uniform_(2.0, 6.0, generator=g)))


def make_images(rng):
    out = []
    for h, w in IMAGE_SIZES:
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([127 + 100 * np.sin(0.3 * x + 0.2 * c * y + c) for c in range(3)], -1)
        img += rng.normal(0, 20, size=img.shape)
        out.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)))
    return out


def prompts(n_tokens, rng):
    """Token layouts; each image run is boi + N×IMG + eoi (the processor's expansion)."""
    def text(n):
        return [int(v) for v in rng.integers(3, 248, n)]

    def image(i):
        return [BOI] + [IMG] * n_tokens[i] + [EOI]
    bos = [2]
    # A chat laid out like the Gemma 4 template with stand-in ids: <turn> user ... <turn|> etc.
    TURN, END = 105, 106
    chat = (bos + [TURN] + text(3) + [END] + [TURN] + text(4) + [END] + [TURN] + text(2) +
            image(1) + text(3) + [END] + [TURN] + text(2))
    return {
        "one": (bos + image(0) + text(3), [0]),
        "two": (bos + text(2) + image(0) + image(2) + text(2), [0, 2]),
        "between": (bos + text(5) + image(1) + text(6), [1]),
        "chat": (chat, [1]),
        "stray": (bos + text(4) + [IMG] + text(3), []),
    }


def capture_vision(model, pv, pos):
    """Intermediates of one image through the tower, real patches only."""
    vt: Gemma4VisionModel = model.model.vision_tower
    real = int((pos != -1).all(-1).sum())
    got = {}
    hooks = [vt.patch_embedder.register_forward_hook(lambda m, a, o: got.__setitem__("pe", o)),
             vt.pooler.register_forward_hook(lambda m, a, o: got.__setitem__("pool", o[0]))]
    layers = []
    hooks += [l.register_forward_hook(lambda m, a, o: layers.append(o)) for l in vt.encoder.layers]
    try:
        tower = vt(pixel_values=pv[None], pixel_position_ids=pos[None]).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    n = tower.shape[0]
    res = {"patch_embed": got["pe"][0, :real], "pooled": got["pool"][0, :n], "tower": tower,
           "embed": model.model.embed_vision(inputs_embeds=tower)}
    for l, o in enumerate(layers):
        res[f"layer{l}"] = o[0, :real]
    return res


def capture_masks(model, fwd):
    """The additive eager masks of the first sliding and the first full layer, as 0/1."""
    masks = {}
    tm = model.model.language_model

    def hook(name):
        def f(mod, args, kwargs):
            m = kwargs.get("attention_mask")
            if name not in masks and m is not None:
                masks[name] = (m[0, 0] == 0).to(torch.uint8)
        return f
    types = tm.config.layer_types
    hs = []
    for kind in ("sliding_attention", "full_attention"):
        i = types.index(kind)
        hs.append(tm.layers[i].self_attn.register_forward_pre_hook(hook(kind), with_kwargs=True))
    try:
        out = fwd()
    finally:
        for h in hs:
            h.remove()
    return out, masks


def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    proc = Gemma4ImageProcessor(patch_size=4, max_soft_tokens=70, pooling_kernel_size=3)
    images = make_images(np.random.default_rng(SEED))
    batch = proc(images=images, return_tensors="pt")
    pvs, poss = batch["pixel_values"], batch["image_position_ids"]
    n_tokens = [int(n) for n in batch["num_soft_tokens_per_image"]]
    assert n_tokens == [60, 64, 54], n_tokens
    for name, spec in MODELS.items():
        seed = SEED + spec["seed"]
        model = new_model(spec, seed)
        mf.randomize_scales(model, seed + 100)
        randomize_vision(model, seed + 200)
        if spec["dtype"] == "BF16":
            mf.round_to_bf16(model)
        golden = {}
        for i in range(len(images)):
            golden[f"img{i}.pixel_values"] = pvs[i].contiguous()
            golden[f"img{i}.position_ids"] = poss[i].to(torch.int32).contiguous()
            for k, v in capture_vision(model, pvs[i], poss[i]).items():
                golden[f"img{i}.{k}"] = v.float().contiguous()
        rng = np.random.default_rng(seed)
        summary = []
        for pname, (ids, imgs) in prompts(n_tokens, rng).items():
            ids_t = torch.tensor(ids, dtype=torch.int64)[None]
            kw = {}
            if imgs:
                kw = {"pixel_values": pvs[imgs], "image_position_ids": poss[imgs],
                      "mm_token_type_ids": (ids_t == IMG).to(torch.int64)}
            merged = {}
            h = model.model.language_model.register_forward_pre_hook(
                lambda m, a, k: merged.__setitem__("e", k["inputs_embeds"][0].clone()),
                with_kwargs=True)
            try:
                out, masks = capture_masks(model, lambda: model(input_ids=ids_t, use_cache=False, **kw))
            finally:
                h.remove()
            logits = out.logits[0]
            gc = model.generation_config
            gc.eos_token_id, gc.do_sample, gc.max_new_tokens, gc.max_length = None, False, N_GREEDY, None
            gen = model.generate(input_ids=ids_t, attention_mask=torch.ones_like(ids_t),
                                 output_scores=True, return_dict_in_generate=True, **kw)
            greedy = gen.sequences[0, len(ids):]
            rows = torch.stack([s[0] for s in gen.scores])
            assert torch.allclose(rows[0], logits[-1], atol=1e-4), pname
            # Manual check of the cached greedy run: recompute each step without the cache.
            seq = ids_t
            for t in range(N_GREEDY):
                mk = dict(kw)
                if imgs:
                    mk["mm_token_type_ids"] = (seq == IMG).to(torch.int64)
                row = model(input_ids=seq, use_cache=False, **mk).logits[0, -1]
                assert int(row.argmax()) == int(greedy[t]), (name, pname, t)
                seq = torch.cat([seq, greedy[t].view(1, 1)], 1)
            top2 = torch.topk(rows, 2, -1).values
            margin = float((top2[:, 0] - top2[:, 1]).min())
            assert margin > mf.MIN_GREEDY_MARGIN, (name, pname, margin)
            assert not set(greedy.tolist()) & mf.MM_TOKEN_IDS, (name, pname)
            golden.update({f"{pname}.ids": ids_t[0], f"{pname}.images": torch.tensor(imgs, dtype=torch.int64),
                           f"{pname}.merged": merged["e"].float(), f"{pname}.logits": logits.float(),
                           f"{pname}.greedy": greedy.clone(), f"{pname}.greedy_logits": rows.float(),
                           f"{pname}.mask_sliding": masks["sliding_attention"],
                           f"{pname}.mask_full": masks["full_attention"]})
            summary.append(f"{pname}: T={len(ids)} margin {margin:.3f} greedy {greedy.tolist()}")
        out_dir = mf.FIXTURES / name
        if out_dir.exists():
            shutil.rmtree(out_dir)
        to_save = model.to(torch.bfloat16) if spec["dtype"] == "BF16" else model
        to_save.save_pretrained(out_dir, safe_serialization=True)
        meta = mf.metadata(name, spec["dtype"], seed)
        meta["generator"] = "tools/refgen/make_vision_fixtures.py"
        meta["image_processor"] = "Gemma4ImageProcessor(patch_size=4, max_soft_tokens=70) torchvision"
        save_file({k: v.contiguous() for k, v in golden.items()}, str(out_dir / "golden.safetensors"),
                  metadata=meta)
        mf.sort_safetensors_header(out_dir / "golden.safetensors")
        size = sum(f.stat().st_size for f in out_dir.iterdir())
        print(f"== {name}: {size / 1024:.0f} KiB, image tokens {n_tokens}")
        for s in summary:
            print("   " + s)
        assert size < 3 * 1024 * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main())
