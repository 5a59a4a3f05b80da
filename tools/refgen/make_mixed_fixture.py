#!/usr/bin/env python3
"""Generate tests/fixtures/mm-audio-e2b/: a tiny random E-layout Gemma4ForConditionalGeneration
with BOTH towers — the E2B vision tower form of make_vision_fixtures.py (clipped linears, no
standardize) and the audio tower of make_audio_fixture.py — and transformers' references for
prompts that hold an image and an audio clip (see README.md here).

    /work/venvs/refgen/bin/python tools/refgen/make_mixed_fixture.py   # one CPU thread

golden.safetensors (fp32 references from the BF16 weights, eager attention):
  img0.pixel_values [P, 48], img0.position_ids I32 [P, 2]  the processor's output, real patches
                                                           only (P = 486: the 100x20 image of
                                                           make_vision_fixtures.py, 54 tokens)
  img0.embed [54, H]      embed_vision output (the image soft tokens)
  sig.short I16 [11200]   the 0.7 s clip of make_audio_fixture.py (16 kHz PCM)
  audio.embed [18, H]     get_audio_features' pooler output stripped by its mask (soft tokens)
  {p}.ids I64 [T], {p}.merged [T, H] (inputs_embeds entering the language model),
  {p}.logits [T, V], {p}.greedy I64 [4] (generate() with the KV cache, checked against full
  re-forwards), {p}.greedy_logits [4, V]
for prompts image_audio (text, image, text, clip, text) and audio_image (text, clip, text,
image, text). Never run by CI; the outputs are committed.
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (Gemma4AudioConfig, Gemma4Config, Gemma4ForConditionalGeneration,
                          Gemma4VisionConfig)
from transformers.models.gemma4.image_processing_gemma4 import Gemma4ImageProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_audio_fixture as af  # noqa: E402
import make_fixtures as mf  # noqa: E402
import make_vision_fixtures as vf  # noqa: E402

GENERATOR = "tools/refgen/make_mixed_fixture.py"
NAME = "mm-audio-e2b"
SEED = mf.SEED + 96  # the first offset from 95 whose greedy margins all exceed 0.02
W = 8          # sliding window (causal layout: the image and clip runs both exceed it)
IMAGE = 2      # make_vision_fixtures' third image, 100x20 -> 54 soft tokens
CLIP = "short"  # make_audio_fixture's 0.7 s clip -> 18 soft tokens
N_GREEDY = 4
MAX_DIR_BYTES = 1536 * 1024
IMG, AUD = af.WRAPPER["image_token_id"], af.WRAPPER["audio_token_id"]
BOI, EOI = af.WRAPPER["boi_token_id"], af.WRAPPER["eoi_token_id"]
BOA, EOA = af.WRAPPER["boa_token_id"], af.WRAPPER["eoa_token_index"]


def new_model():
    torch.manual_seed(SEED)
    vc = Gemma4VisionConfig(**{**vf.VISION, "standardize": False, "use_clipped_linears": True},
                            initializer_range=mf.INIT_RANGE)
    vc.default_output_length = 70
    cfg = Gemma4Config(text_config=mf.text_kwargs({**mf.MINI_E2B_EDITS, "sliding_window": W}),
                       vision_config=vc, audio_config=Gemma4AudioConfig(**af.AUDIO),
                       initializer_range=mf.INIT_RANGE, **af.WRAPPER)
    return Gemma4ForConditionalGeneration._from_config(cfg, **mf.HF_KW).eval()


def prompts(n_img, n_aud, rng):
    def text(n):
        return [int(v) for v in rng.integers(3, 248, n)]
    image = [BOI] + [IMG] * n_img + [EOI]
    audio = [BOA] + [AUD] * n_aud + [EOA]
    return {"image_audio": [2] + text(3) + image + text(2) + audio + text(3),
            "audio_image": [2] + text(2) + audio + text(4) + image + text(2)}


def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    # The image: the processor's patches, cut to the real ones.
    proc = Gemma4ImageProcessor(patch_size=4, max_soft_tokens=70, pooling_kernel_size=3)
    image = vf.make_images(np.random.default_rng(vf.SEED))[IMAGE]
    batch = proc(images=[image], return_tensors="pt")
    n_img = int(batch["num_soft_tokens_per_image"][0])
    # HF runs the processor's padded arrays (630 patches); the fixture keeps the real ones,
    # which are what our encoder input holds (tests/common/mm_fixture.h).
    pv, pos = batch["pixel_values"][0], batch["image_position_ids"][0]
    real = int((pos != -1).all(-1).sum())
    assert n_img == 54 and real == n_img * 9 and bool((pos[real:] == -1).all()), (n_img, real)
    # The clip: features as the processor passes them.
    pcm = af.make_signals()[CLIP]
    x = af.as_float(pcm)
    fe = af.Gemma4AudioFeatureExtractor()
    feats = fe([x], return_tensors="pt")
    n_aud = int(af.processor()._compute_audio_num_tokens(x, af.SR))
    assert n_aud == 18, n_aud

    model = new_model()
    mf.randomize_scales(model, SEED + 100)
    vf.randomize_vision(model, SEED + 200)
    af.randomize_audio(model, SEED + 300)
    mf.round_to_bf16(model)

    golden = {"img0.pixel_values": pv[:real], "img0.position_ids": pos[:real].to(torch.int32),
              "sig.short": torch.from_numpy(pcm)}
    img_emb = model.model.get_image_features(pixel_values=pv[None], image_position_ids=pos[None],
                                             return_dict=True).pooler_output
    assert len(img_emb) == 1
    img_emb = img_emb[0]
    aud = model.model.get_audio_features(feats["input_features"], feats["input_features_mask"],
                                         return_dict=True)
    aud_emb = aud.pooler_output[0][aud.attention_mask[0]]
    assert img_emb.shape[0] == n_img and aud_emb.shape[0] == n_aud, (img_emb.shape, aud_emb.shape)
    golden["img0.embed"], golden["audio.embed"] = img_emb.float(), aud_emb.float()

    summary = []
    for pname, ids in prompts(n_img, n_aud, np.random.default_rng(SEED)).items():
        ids_t = torch.tensor(ids, dtype=torch.int64)[None]
        # mm_token_type_ids as the processor makes them (1 image, 3 audio); the E layout is
        # causal and ignores them.
        kw = {"pixel_values": pv[None], "image_position_ids": pos[None],
              "input_features": feats["input_features"],
              "input_features_mask": feats["input_features_mask"]}

        def types(seq):
            return (seq == IMG).to(torch.int64) + 3 * (seq == AUD).to(torch.int64)
        merged = {}
        h = model.model.language_model.register_forward_pre_hook(
            lambda m, a, k: merged.__setitem__("e", k["inputs_embeds"][0].clone()),
            with_kwargs=True)
        try:
            logits = model(input_ids=ids_t, use_cache=False, mm_token_type_ids=types(ids_t),
                           **kw).logits[0]
        finally:
            h.remove()
        # The soft-token rows of the merge are the towers' outputs, unscaled.
        assert torch.equal(merged["e"][ids_t[0] == IMG], img_emb), pname
        assert torch.equal(merged["e"][ids_t[0] == AUD], aud_emb), pname
        gc = model.generation_config
        gc.eos_token_id, gc.do_sample, gc.max_new_tokens, gc.max_length = None, False, N_GREEDY, None
        gen = model.generate(input_ids=ids_t, attention_mask=torch.ones_like(ids_t),
                             mm_token_type_ids=types(ids_t), output_scores=True,
                             return_dict_in_generate=True, **kw)
        greedy = gen.sequences[0, len(ids):]
        rows = torch.stack([s[0] for s in gen.scores])
        assert torch.allclose(rows[0], logits[-1], atol=1e-4), pname
        seq = ids_t
        for t in range(N_GREEDY):  # the cached run against full re-forwards
            row = model(input_ids=seq, use_cache=False, mm_token_type_ids=types(seq),
                        **kw).logits[0, -1]
            assert int(row.argmax()) == int(greedy[t]), (pname, t)
            seq = torch.cat([seq, greedy[t].view(1, 1)], 1)
        top2 = torch.topk(rows, 2, -1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
        assert margin > mf.MIN_GREEDY_MARGIN, (pname, margin)
        assert not set(greedy.tolist()) & mf.MM_TOKEN_IDS, pname
        golden.update({f"{pname}.ids": ids_t[0], f"{pname}.merged": merged["e"].float(),
                       f"{pname}.logits": logits.float(), f"{pname}.greedy": greedy.clone(),
                       f"{pname}.greedy_logits": rows.float()})
        summary.append(f"{pname}: T={len(ids)} margin {margin:.3f} greedy {greedy.tolist()}")

    out_dir = mf.FIXTURES / NAME
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    meta = mf.metadata(NAME, "BF16", SEED)
    meta.update({"generator": GENERATOR, "numpy": np.__version__,
                 "image_processor": "Gemma4ImageProcessor(patch_size=4, max_soft_tokens=70) "
                                    "torchvision",
                 "image": f"make_vision_fixtures.py image {IMAGE}",
                 "clip": f"make_audio_fixture.py sig.{CLIP}"})
    save_file({k: v.contiguous() for k, v in golden.items()}, str(out_dir / "golden.safetensors"),
              metadata=meta)
    mf.sort_safetensors_header(out_dir / "golden.safetensors")
    size = sum(f.stat().st_size for f in out_dir.iterdir())
    print(f"== {NAME}: {size / 1024:.0f} KiB, image tokens {n_img}, audio tokens {n_aud}")
    for s in summary:
        print("   " + s)
    assert size < MAX_DIR_BYTES, size
    json.loads((out_dir / "config.json").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
