#!/usr/bin/env python3
"""Generate the tiny Gemma 4 MTP assistant fixtures (tests/fixtures/mtp-mini{,-centroids}/).

A random `Gemma4AssistantForCausalLM` (spec gemma4-architecture §12.4, geometry adapted to the
target) paired with the committed mini-e2b target, and fp32 eager references of k = 3 chained
draft steps computed exactly as transformers' `SinglePositionMultiTokenCandidateGenerator` drives
the assistant (see README.md here, "MTP assistant").

    /work/refgen-venv/bin/python tools/refgen/make_mtp_fixture.py

Never run by CI; the outputs are committed.
"""
import copy
import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import (Gemma4AssistantConfig, Gemma4AssistantForCausalLM, Gemma4ForCausalLM,
                          Gemma4TextConfig, GenerationConfig)
from transformers.generation.candidate_generator import SinglePositionMultiTokenCandidateGenerator
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import (FIXTURES, HF_KW, SEED, check_scales_randomized,  # noqa: E402
                           make_prompts, randomize_scales, round_to_bf16, sort_safetensors_header)

GENERATOR = "tools/refgen/make_mtp_fixture.py"
TARGET = "mini-e2b"
K = 3                 # chained draft steps
SPLIT = 9             # second flow: prefill p0[:SPLIT], then one 4-token "verify" forward
MAX_DIR_BYTES = 256 * 1024
MIN_DRAFT_MARGIN = 0.02
VARIANTS = {"mtp-mini": (False, 71), "mtp-mini-centroids": (True, 72)}  # ordered?, seed offset

# Spec §12.4 with the head geometry of mini-e2b's KV-owning layers (sliding: 1 KV head x 16, full:
# 1 KV head x 32; no k_eq_v) and 3 layers S, S, F.
ASSISTANT_TEXT = {
    "vocab_size": 256, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
    "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
    "num_attention_heads": 4, "num_key_value_heads": 1, "num_global_key_value_heads": 1,
    "head_dim": 16, "global_head_dim": 32, "attention_k_eq_v": False, "sliding_window": 4,
    "rope_parameters": {
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25,
                           "rope_theta": 1000000.0},
    },
    "num_kv_shared_layers": 3, "use_double_wide_mlp": False, "hidden_size_per_layer_input": 0,
    "vocab_size_per_layer_input": 0, "enable_moe_block": False,
    # Present as in the real assistant configs; transformers' assistant does not apply it (vLLM does).
    "final_logit_softcapping": 30.0, "rms_norm_eps": 1e-6,
    "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 1024,
    "tie_word_embeddings": True, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
    "initializer_range": 0.4,
}
ASSISTANT = {"backbone_hidden_size": 64, "num_centroids": 8, "centroid_intermediate_top_k": 2,
             "tie_word_embeddings": True}


def patch_kv_sharing_modes():
    """transformers 5.23 bug: Gemma4TextConfig.kv_sharing_modes raises ("The set of layer types
    producing a cache is different ...") when every layer is KV-shared, which is exactly what
    Gemma4AssistantConfig requires, so no assistant can be constructed. The evident intent (and
    what the assistant's attention code does with it) is "reuse" on every layer."""
    orig = Gemma4TextConfig.kv_sharing_modes

    def modes(self):
        if self.num_kv_shared_layers and self.num_kv_shared_layers == self.num_hidden_layers:
            return ["reuse"] * self.num_hidden_layers
        return orig.fget(self)

    Gemma4TextConfig.kv_sharing_modes = property(modes)


def load_target():
    m = Gemma4ForCausalLM.from_pretrained(FIXTURES / TARGET, **HF_KW).eval()
    modes = m.config.get_text_config().kv_sharing_modes
    # The target must hand out shared_kv_states (a "store" layer per type); mini-31b (no KV
    # sharing) stores none in transformers 5.23, so the assistant cannot run on it there.
    assert modes.count("store") == 2, modes
    return m


def new_assistant(ordered, seed):
    torch.manual_seed(seed)
    cfg = Gemma4AssistantConfig(text_config=dict(ASSISTANT_TEXT), use_ordered_embeddings=ordered,
                                **ASSISTANT)
    a = Gemma4AssistantForCausalLM._from_config(cfg, **HF_KW).eval()
    if ordered:  # a real token_ordering is a permutation of the vocabulary
        g = torch.Generator().manual_seed(seed + 200)
        a.masked_embedding.token_ordering.copy_(torch.randperm(cfg.text_config.vocab_size,
                                                               generator=g))
    return a


@torch.no_grad()
def drive(target, assistant, ids, split=None):
    """The target runs over `ids` (in one forward, or as ids[:split] then ids[split:] as if the
    second chunk were k+1 verified tokens all accepted); its greedy token `t` is appended; then
    transformers' own candidate generator drafts K tokens from (ids + [t]). Returns (t, drafts,
    draft_logits [K, V], hidden [H] the generator fed in)."""
    kw = dict(output_hidden_states=True, return_shared_kv_states=True, use_cache=True)
    if split is None:
        out = target(input_ids=ids[None], **kw)
        n_last = None
    else:
        first = target(input_ids=ids[None, :split], **kw)
        out = target(input_ids=ids[None, split:], past_key_values=first.past_key_values, **kw)
        n_last = ids.numel() - split - 1
    t = int(out.logits[0, -1].argmax())
    full = torch.cat([ids, torch.tensor([t])])[None]
    gc = copy.deepcopy(assistant.generation_config)
    gc.num_assistant_tokens = K
    assistant.generation_config = gc
    gen = SinglePositionMultiTokenCandidateGenerator(
        assistant_model=assistant, target_model_input_embeddings=target.get_input_embeddings(),
        generation_config=GenerationConfig(max_length=1024))
    if n_last is not None:
        gen.is_main_model_prefill = False
    cand, logits = gen.get_candidates(full, {"attention_mask": torch.ones_like(full)}, out,
                                      is_first_iteration=False, n_last_matches=n_last or 0)
    drafts = cand[0, full.shape[1]:]
    assert drafts.numel() == K
    return t, drafts, logits[0], out.hidden_states[-1][0, -1]


@torch.no_grad()
def check_generate(target, assistant, ids):
    """HF's own assisted generate() runs with this pair and, greedy, reproduces plain greedy."""
    kw = dict(max_new_tokens=8, do_sample=False, eos_token_id=None)
    ref = target.generate(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None], **kw)
    got = target.generate(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None],
                          assistant_model=assistant, **kw)
    assert torch.equal(ref, got), (ref, got)


def build(name, ordered, seed_off, target, prompts):
    seed = SEED + seed_off
    a = new_assistant(ordered, seed)
    randomize_scales(a, seed + 100)
    round_to_bf16(a)
    check_scales_randomized(a)
    golden, info = {}, []
    for i, ids in enumerate(prompts):
        t, drafts, logits, hidden = drive(target, a, ids)
        top2 = torch.topk(logits, 2, dim=-1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
        assert margin > MIN_DRAFT_MARGIN, f"{name} p{i}: draft near-tie ({margin:.3g})"
        golden.update({f"p{i}.ids": ids, f"p{i}.next": torch.tensor([t]),
                       f"p{i}.drafts": drafts.clone(), f"p{i}.draft_logits": logits.clone(),
                       f"p{i}.hidden": hidden.clone()})
        info.append((t, drafts.tolist(), margin))
    # Second flow for p0 (two target forwards, hidden row picked by n_last_matches, the sliding
    # cache's W-1 + chunk states): same drafts, logits within 1e-4 of max|logit| (measured 2e-5:
    # the target's own fp32 summation order differs between one and two forwards).
    t2, d2, l2, _ = drive(target, a, prompts[0], split=SPLIT)
    assert t2 == int(golden["p0.next"]) and torch.equal(d2, golden["p0.drafts"])
    ref = golden["p0.draft_logits"]
    assert float((l2 - ref).abs().max()) <= 1e-4 * float(ref.abs().max())
    check_generate(target, a, prompts[0])

    out_dir = FIXTURES / name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    a.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    a.to(torch.float32)
    meta = {"generator": GENERATOR, "target": f"tests/fixtures/{TARGET}", "k": str(K),
            "weight_dtype": "BF16", "reference_dtype": "F32", "attn_implementation": "eager",
            "torch": torch.__version__, "transformers": transformers.__version__,
            "seed": str(seed), "use_ordered_embeddings": str(ordered).lower()}
    golden = {k: v.contiguous() for k, v in golden.items()}
    save_file(golden, str(out_dir / "golden.safetensors"), metadata=meta)
    sort_safetensors_header(out_dir / "golden.safetensors")
    verify_reload(target, out_dir, golden, len(prompts))
    size = sum(f.stat().st_size for f in out_dir.iterdir())
    assert size < MAX_DIR_BYTES, f"{name}: {size} bytes"
    print(f"== {name}: {sum(p.numel() for p in a.parameters())} params, {size / 1024:.0f} KiB")
    for i, (t, d, m) in enumerate(info):
        print(f"   p{i}: next {t}, drafts {d}, min top1-top2 margin {m:.4f}")


@torch.no_grad()
def verify_reload(target, out_dir, golden, n_prompts):
    """The saved BF16 checkpoint, reloaded as fp32, reproduces the references exactly."""
    a = Gemma4AssistantForCausalLM.from_pretrained(out_dir, **HF_KW).eval()
    for mod in a.modules():  # aligned copies (see make_fixtures.verify_reload)
        for n, p in mod._parameters.items():
            if p is not None:
                p.data = p.data.clone()
        for n, b in mod._buffers.items():
            if b is not None:
                mod._buffers[n] = b.clone()
    a.tie_weights()
    for i in range(n_prompts):
        _, d, l, _ = drive(target, a, golden[f"p{i}.ids"])
        assert torch.equal(d, golden[f"p{i}.drafts"]), f"{out_dir.name}: reload drafts p{i}"
        assert torch.equal(l, golden[f"p{i}.draft_logits"]), f"{out_dir.name}: reload logits p{i}"


def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    patch_kv_sharing_modes()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    target = load_target()
    prompts = make_prompts()
    for name, (ordered, off) in VARIANTS.items():
        build(name, ordered, off, target, prompts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
