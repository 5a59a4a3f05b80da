#!/usr/bin/env python3
"""Generate the EAGLE-3 drafter fixtures tests/fixtures/eagle3-mini{,-midlayer}/ (see README.md).

A random one-layer Llama-type EAGLE-3 head for the target tests/fixtures/mini-31b (H = 64,
V = 256), draft vocabulary 128 with a d2t map, saved in the speculators layout (`layers.0.*`) and
in the older HF-EAGLE3 layout (`midlayer.*`, LlamaForCausalLMEagle3). The reference forward is a
PyTorch transcription of spec weight-formats §6.4 built from transformers' Llama pieces
(LlamaRMSNorm, LlamaRotaryEmbedding, apply_rotary_pos_emb, LlamaMLP); the target aux hidden
states come from transformers' Gemma 4 (output_hidden_states).

    /work/refgen-venv/bin/python tools/refgen/make_eagle3_fixture.py

Never run by CI; the outputs are committed.
"""
import json
import shutil
from pathlib import Path

import safetensors
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Gemma4ForConditionalGeneration, LlamaConfig
from transformers.models.llama.modeling_llama import (LlamaMLP, LlamaRMSNorm,
                                                      LlamaRotaryEmbedding, apply_rotary_pos_emb)

from make_fixtures import sort_safetensors_header

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TARGET = FIXTURES / "mini-31b"
OUT = FIXTURES / "eagle3-mini"
OUT_MID = FIXTURES / "eagle3-mini-midlayer"
GENERATOR = "tools/refgen/make_eagle3_fixture.py"

SEED = 20260513  # picked once: four distinct drafts, margins >= 0.3
AUX_IDS = [1, 3, 5]      # residual entering target layers 1, 3, 5 (HF hidden_states[i])
DRAFT_VOCAB = 128
N_CHAIN = 3              # chained draft steps after the first pass (drafts = 1 + N_CHAIN)
MIN_MARGIN = 0.02        # every draft's top1-top2 mapped-logit gap must exceed this
NORM_RANGE = (0.5, 1.5)
LM_HEAD_STD = 0.4        # mapped logits std ~3
LLAMA = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16, hidden_act="silu",
             max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=50000.0,
             attention_bias=False, mlp_bias=False, tie_word_embeddings=False)


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


def make_weights(cfg, g):
    """Speculators-layout state dict (fp32 values that are exact in bf16)."""
    H, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    D, nh, nkv = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads

    def lin(n, k, std=None):
        return bf16(torch.randn(n, k, generator=g) * (std or k ** -0.5))

    def norm(n):
        return bf16(torch.empty(n).uniform_(*NORM_RANGE, generator=g))

    w = {"fc.weight": lin(H, 3 * H),
         "layers.0.self_attn.q_proj.weight": lin(nh * D, 2 * H),
         "layers.0.self_attn.k_proj.weight": lin(nkv * D, 2 * H),
         "layers.0.self_attn.v_proj.weight": lin(nkv * D, 2 * H),
         "layers.0.self_attn.o_proj.weight": lin(H, nh * D),
         "layers.0.mlp.gate_proj.weight": lin(I, H),
         "layers.0.mlp.up_proj.weight": lin(I, H),
         "layers.0.mlp.down_proj.weight": lin(H, I),
         "layers.0.input_layernorm.weight": norm(H),
         "layers.0.hidden_norm.weight": norm(H),
         "layers.0.post_attention_layernorm.weight": norm(H),
         "norm.weight": norm(H),
         "lm_head.weight": lin(DRAFT_VOCAB, H, LM_HEAD_STD)}
    # Draft vocabulary: 128 sorted target ids; d2t[d] = target_id - d (spec §7.2), t2d its mask.
    sel = torch.sort(torch.randperm(V, generator=g)[:DRAFT_VOCAB]).values
    w["d2t"] = (sel - torch.arange(DRAFT_VOCAB)).to(torch.int64)
    t2d = torch.zeros(V, dtype=torch.bool)
    t2d[sel] = True
    w["t2d"] = t2d
    return w


class Eagle3Ref:
    """Spec §6.4 line by line (Llama type, one layer, norm_before_residual as given)."""

    def __init__(self, cfg, w, embed, norm_before_residual):
        self.cfg, self.w, self.embed, self.nbr = cfg, w, embed, norm_before_residual
        H, eps = cfg.hidden_size, cfg.rms_norm_eps

        def rms(name):
            n = LlamaRMSNorm(H, eps=eps)
            n.weight.data.copy_(w[name])
            return n

        self.input_norm = rms("layers.0.input_layernorm.weight")
        self.hidden_norm = rms("layers.0.hidden_norm.weight")
        self.post_norm = rms("layers.0.post_attention_layernorm.weight")
        self.final_norm = rms("norm.weight")
        self.mlp = LlamaMLP(cfg)
        for p in ("gate_proj", "up_proj", "down_proj"):
            getattr(self.mlp, p).weight.data.copy_(w[f"layers.0.mlp.{p}.weight"])
        self.rope = LlamaRotaryEmbedding(cfg)
        d2t = w["d2t"]
        self.target_ids = torch.arange(DRAFT_VOCAB) + d2t

    def fc(self, aux):  # aux [T, 3H] -> g [T, H]
        return aux @ self.w["fc.weight"].T

    def forward(self, ids, g, pos):
        """ids [T] input tokens, g [T, H] hidden inputs (fc output or fed-back `pre`), pos [T].
        Full causal recomputation over all T rows (equals the incremental KV cache).
        Returns (mapped logits [T, V_target], pre [T, H])."""
        cfg, w = self.cfg, self.w
        T, D = ids.numel(), cfg.head_dim
        nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
        e = self.embed[ids]  # no sqrt(H) scaling (spec §9.8)
        e_n, g_n = self.input_norm(e), self.hidden_norm(g)
        residual = g_n if self.nbr else g
        x = torch.cat([e_n, g_n], dim=-1)  # embedding first
        q = (x @ w["layers.0.self_attn.q_proj.weight"].T).view(T, nh, D).transpose(0, 1)
        k = (x @ w["layers.0.self_attn.k_proj.weight"].T).view(T, nkv, D).transpose(0, 1)
        v = (x @ w["layers.0.self_attn.v_proj.weight"].T).view(T, nkv, D).transpose(0, 1)
        cos, sin = self.rope(x[None], pos[None])
        q, k = apply_rotary_pos_emb(q[None], k[None], cos, sin)
        q, k = q[0], k[0]
        rep = nh // nkv
        k, v = k.repeat_interleave(rep, dim=0), v.repeat_interleave(rep, dim=0)
        scores = (q @ k.transpose(1, 2)) * D ** -0.5
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask, float("-inf"))
        att = (torch.softmax(scores, dim=-1) @ v).transpose(0, 1).reshape(T, nh * D)
        h = att @ w["layers.0.self_attn.o_proj.weight"].T
        residual = residual + h
        h = self.mlp(self.post_norm(residual))
        pre = h + residual
        logits_d = self.final_norm(pre) @ w["lm_head.weight"].T
        logits_t = torch.full((T, cfg.vocab_size), float("-inf"))
        logits_t[:, self.target_ids] = logits_d
        return logits_t, pre


@torch.no_grad()
def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(SEED)
    cfg = LlamaConfig(**LLAMA)
    w = make_weights(cfg, g)

    target = Gemma4ForConditionalGeneration.from_pretrained(
        TARGET, attn_implementation="eager", dtype=torch.float32).eval()
    tgold = load_file(str(TARGET / "golden.safetensors"))
    prompt = tgold["p0.ids"]
    newest = tgold["p0.greedy"][:1]  # the target's first sample: not yet in the target KV
    ids = torch.cat([prompt, newest])  # [m + 1]
    m = prompt.numel()
    hs = target(input_ids=prompt[None], output_hidden_states=True, use_cache=False).hidden_states
    aux = torch.stack([hs[i][0] for i in AUX_IDS])  # [3, m, H]: residual entering layer i
    embed = target.model.language_model.embed_tokens.weight.detach().clone()  # unscaled table

    ref = Eagle3Ref(cfg, w, embed, norm_before_residual=True)
    # First pass: slot t gets token t+1 and the target's aux state at t.
    rows_ids = ids[1:].clone()
    rows_g = ref.fc(torch.cat(list(aux), dim=-1))
    rows_pos = torch.arange(m)
    first_logits, pre = ref.forward(rows_ids, rows_g, rows_pos)
    drafts, chain_logits, margins = [int(torch.argmax(first_logits[-1]))], [], []
    margins.append(float(torch.topk(first_logits[-1], 2).values.diff().abs()))
    last_pre = pre[-1:]
    for j in range(N_CHAIN):
        # Feed the previous draft at position +1 with the drafter's own `pre` (no fc).
        rows_ids = torch.cat([rows_ids, torch.tensor([drafts[-1]])])
        rows_g = torch.cat([rows_g, last_pre])
        rows_pos = torch.cat([rows_pos, torch.tensor([m + j])])
        logits, pre = ref.forward(rows_ids, rows_g, rows_pos)
        chain_logits.append(logits[-1])
        drafts.append(int(torch.argmax(logits[-1])))
        margins.append(float(torch.topk(logits[-1], 2).values.diff().abs()))
        last_pre = pre[-1:]
    assert min(margins) > MIN_MARGIN, f"near-tie among drafts: {margins}"
    assert all(bool(t) for t in w["t2d"][drafts]), "a draft outside the draft vocabulary"

    # norm_before_residual = false variant of the first pass (last row only), for the default test.
    ref_f = Eagle3Ref(cfg, w, embed, norm_before_residual=False)
    first_f, _ = ref_f.forward(ids[1:], ref.fc(torch.cat(list(aux), dim=-1)), torch.arange(m))

    golden = {"ids": ids, "aux": aux.contiguous(), "first_logits": first_logits.contiguous(),
              "chain_logits": torch.stack(chain_logits).contiguous(),
              "drafts": torch.tensor(drafts, dtype=torch.int64),
              "first_logits_nbr_false": first_f.contiguous()}
    meta = {"generator": GENERATOR, "target": "tests/fixtures/mini-31b", "reference_dtype": "F32",
            "aux_layer_ids": json.dumps(AUX_IDS), "norm_before_residual": "true",
            "torch": torch.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__, "seed": str(SEED)}

    # ---- speculators layout ----
    for d in (OUT, OUT_MID):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    layer_cfg = {k: v for k, v in cfg.to_dict().items()
                 if k not in ("transformers_version", "id2label", "label2id", "_name_or_path")}
    layer_cfg["architectures"] = ["LlamaForCausalLM"]
    spec_cfg = {
        "architectures": ["Eagle3Speculator"],
        "speculators_model_type": "eagle3",
        "speculators_version": "0.9.0",
        "transformer_layer_config": layer_cfg,
        "draft_vocab_size": DRAFT_VOCAB,
        "target_hidden_size": None,
        "eagle_aux_hidden_state_layer_ids": AUX_IDS,
        "norm_before_residual": True,
        "norm_before_fc": False,
        "embed_requires_grad": False,
        "speculators_config": {
            "algorithm": "eagle3",
            "proposal_methods": [{"proposal_type": "greedy", "speculative_tokens": 1 + N_CHAIN,
                                  "verifier_accept_k": 1, "accept_tolerance": 0.0}],
            "default_proposal_method": "greedy",
            "verifier": {"name_or_path": "tests/fixtures/mini-31b",
                         "architectures": ["Gemma4ForConditionalGeneration"]}},
        "dtype": "bfloat16",
    }
    (OUT / "config.json").write_text(json.dumps(spec_cfg, indent=2) + "\n")
    st = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous()
          for k, v in w.items()}
    save_file(st, str(OUT / "model.safetensors"))
    save_file(golden, str(OUT / "golden.safetensors"), metadata=meta)
    sort_safetensors_header(OUT / "golden.safetensors")

    # ---- older HF-EAGLE3 layout: midlayer.*, flat llama config, eagle_config, own embedding ----
    mid_cfg = {"architectures": ["LlamaForCausalLMEagle3"], "model_type": "llama",
               **{k: v for k, v in LLAMA.items()}, "rope_scaling": None,
               "draft_vocab_size": DRAFT_VOCAB, "target_hidden_size": 64,
               "norm_before_residual": True, "torch_dtype": "bfloat16",
               "eagle_config": {"eagle_aux_hidden_state_layer_ids": AUX_IDS,
                                "use_aux_hidden_state": True, "use_input_layernorm_in_first_layer": True,
                                "use_last_layernorm": True, "use_mtp_layernorm": False}}
    (OUT_MID / "config.json").write_text(json.dumps(mid_cfg, indent=2) + "\n")
    mid = {k.replace("layers.0.", "midlayer."): v for k, v in st.items() if k != "t2d"}
    mid["embed_tokens.weight"] = embed.to(torch.bfloat16).contiguous()  # = the target's table
    save_file(mid, str(OUT_MID / "model.safetensors"))

    # Reload check: the saved bf16 tensors are the reference's weights.
    back = load_file(str(OUT / "model.safetensors"))
    for k, v in w.items():
        assert torch.equal(back[k].to(v.dtype), v), k
    for d in (OUT, OUT_MID):
        size = sum(f.stat().st_size for f in d.iterdir())
        assert size < 512 * 1024, f"{d} is {size} bytes"
        print(f"{d.relative_to(REPO)}: {size / 1024:.0f} KiB")
    finite = first_logits[torch.isfinite(first_logits)]
    print(f"ids {ids.tolist()}\ndrafts {drafts}\nmargins {[round(x, 4) for x in margins]}\n"
          f"mapped logit std {float(finite.std()):.3f}, max |logit| {float(finite.abs().max()):.3f}")


if __name__ == "__main__":
    main()
