#!/usr/bin/env python3
"""Tiny random checkpoints written by transformers' own save_pretrained, one per model type and
config style, and goldens computed by transformers from the saved folders.

transformers 5 writes rope settings as `rope_parameters: {rope_type, rope_theta,
partial_rotary_factor, factor, ...}`; transformers 4 wrote `rope_theta` / `rope_scaling` (Llama,
Mistral, Qwen2) and `rotary_pct` / `rotary_emb_base` (GPT-NeoX). Run this script once with each:

    <python with transformers 5.x> packages/models/scripts/make-hf-models.py     # style v5
    <python with transformers 4.57> packages/models/scripts/make-hf-models.py    # style v4

(from the repository root; the style follows the installed transformers' major version;
transformers 4.57 pins huggingface-hub < 1.0: where only 1.x is installable, install it with
`pip install --no-deps transformers==4.57.*` beside huggingface-hub 1.x and tokenizers 0.22, and
relax the pin in its dependency_versions_table.py; it loads and saves local folders fine). Each run
writes fixtures/models/hf-<type>-<style>[-<variant>]/ (config.json and model.safetensors from
save_pretrained, golden.json) and fixtures/models/hf-rope/golden-<style>.json (the inverse
frequencies and attention scaling transformers' rotary embedding uses, for many config forms,
read from the rotary module after a forward pass at each listed sequence length).

golden.json: logits (float32, eager attention) of a right- and a left-padded batch and of each
row alone, position_ids counted over real tokens (padding gets 1) as generate does; the loss
(mean next-token cross-entropy over the right-padded batch's real targets) and the gradient at
the input of every nn.Linear. Rotary modules that cache per-length state (dynamic rope) are reset
before every forward, so each golden is what a fresh model computes for that batch.

`--check` loads the other style's folders with this transformers and prints the max |Δ| of its
logits from their goldens (how the two versions read each other's configs); nothing is written.
"""
import json
import math
import os
import shutil
import sys

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "fixtures", "models")
STYLE = "v%d" % int(transformers.__version__.split(".")[0])
if STYLE not in ("v4", "v5"):
    sys.exit(f"transformers {transformers.__version__}: expected 4.x or 5.x")

VOCAB = 64
SMALL = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, intermediate_size=48, initializer_range=0.02,
             bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
NEOX = dict(SMALL, num_attention_heads=2, hidden_act="gelu", use_parallel_residual=True, layer_norm_eps=1e-5,
            attention_bias=True, max_position_embeddings=64, hidden_dropout=0.0, attention_dropout=0.0)
LLAMA = dict(SMALL, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=64)
LONGROPE = dict(short_factor=[1.0, 1.25, 1.5, 2.0, 3.0, 4.0], long_factor=[1.5, 2.0, 3.0, 5.0, 8.0, 12.0])


def rope_kwargs(theta=None, scaling=None, neox_pct=None):
    """The rope settings as keyword arguments of this style's config class."""
    if STYLE == "v5":
        params = dict(scaling or {"rope_type": "default"})
        if theta is not None:
            params["rope_theta"] = theta
        if neox_pct is not None:
            params["partial_rotary_factor"] = neox_pct
        return {"rope_parameters": params}
    kw = {}
    if neox_pct is not None:
        kw["rotary_pct"] = neox_pct
        if theta is not None:
            kw["rotary_emb_base"] = theta
    elif theta is not None:
        kw["rope_theta"] = theta
    if scaling is not None:
        kw["rope_scaling"] = dict(scaling)
    return kw


def models():
    """(folder name, model_type, config kwargs); the same architectures in both styles where both can say them."""
    s = STYLE
    yield f"hf-gpt-neox-{s}", "gpt_neox", dict(NEOX, **rope_kwargs(10000.0, None, 0.25))
    yield f"hf-llama-{s}", "llama", dict(LLAMA, head_dim=12, **rope_kwargs(500000.0, dict(
        rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64),
    ), max_position_embeddings=512)
    yield f"hf-mistral-{s}", "mistral", dict(LLAMA, head_dim=12, sliding_window=16 if s == "v5" else None,
                                             **rope_kwargs(1000000.0))
    yield f"hf-qwen2-{s}", "qwen2", dict(LLAMA, tie_word_embeddings=True, use_sliding_window=s == "v5", sliding_window=16,
                                         max_window_layers=1, **rope_kwargs(1000000.0, dict(
                                             rope_type="yarn", factor=4.0, original_max_position_embeddings=16)))
    if s == "v5":
        yield "hf-gpt-neox-v5-yarn", "gpt_neox", dict(NEOX, use_parallel_residual=False, hidden_act="gelu_new",
                                                      tie_word_embeddings=True, max_position_embeddings=16,
                                                      **rope_kwargs(500.0, dict(rope_type="yarn", factor=4.0,
                                                                                original_max_position_embeddings=4), 0.5))
        yield "hf-llama-v5-linear", "llama", dict(LLAMA, num_key_value_heads=4, attention_bias=True, mlp_bias=True,
                                                  tie_word_embeddings=True,
                                                  **rope_kwargs(1000000.0, dict(rope_type="linear", factor=2.0)))
        yield "hf-llama-v5-dynamic", "llama", dict(LLAMA, max_position_embeddings=5,
                                                   **rope_kwargs(10000.0, dict(rope_type="dynamic", factor=2.0)))
        yield "hf-llama-v5-longrope", "llama", dict(LLAMA, head_dim=12, max_position_embeddings=20, **rope_kwargs(
            10000.0, dict(rope_type="longrope", original_max_position_embeddings=5, **LONGROPE)))
    else:
        yield "hf-gpt-neox-v4-linear", "gpt_neox", dict(NEOX, **rope_kwargs(500, {"type": "linear", "factor": 2.0}, 0.5))
        yield "hf-llama-v4-dynamic", "llama", dict(LLAMA, max_position_embeddings=5,
                                                   **rope_kwargs(10000.0, {"type": "dynamic", "factor": 2.0}))
        # Phi-3's form: original_max_position_embeddings at the top level, no factor (both versions agree).
        yield "hf-llama-v4-longrope", "llama", dict(LLAMA, head_dim=12, max_position_embeddings=20,
                                                    original_max_position_embeddings=5,
                                                    **rope_kwargs(10000.0, dict(type="longrope", **LONGROPE)))


# --- rope goldens ------------------------------------------------------------------------------------

def rope_cases():
    """(name, model_type, config kwargs for this style's config class, sequence lengths)."""
    L = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=1, intermediate_size=32,
             vocab_size=16)
    big = dict(L, hidden_size=512, head_dim=128)
    s = STYLE
    yield "gpt_neox default 0.25", "gpt_neox", dict(L, **rope_kwargs(10000.0, None, 0.25)), [4]
    yield "gpt_neox linear 0.5", "gpt_neox", dict(L, **rope_kwargs(500.0, dict(rope_type="linear", factor=2.0), 0.5)), [4]
    yield "gpt_neox dynamic", "gpt_neox", dict(L, max_position_embeddings=8, **rope_kwargs(
        10000.0, dict(rope_type="dynamic", factor=2.0), 1.0)), [4, 8, 9, 20]
    yield "gpt_neox yarn 0.5", "gpt_neox", dict(L, max_position_embeddings=32, **rope_kwargs(
        10000.0, dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=8), 0.5)), [4]
    yield "llama default 1e6", "llama", dict(L, **rope_kwargs(1000000.0)), [4]
    yield "llama linear 4", "llama", dict(L, **rope_kwargs(10000.0, dict(rope_type="linear", factor=4.0))), [4]
    yield "llama dynamic", "llama", dict(L, max_position_embeddings=8, **rope_kwargs(
        10000.0, dict(rope_type="dynamic", factor=2.0))), [4, 8, 9, 20]
    yield "llama 3.1 llama3", "llama", dict(big, max_position_embeddings=131072, **rope_kwargs(500000.0, dict(
        rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192))), [4]
    yield "llama 3.2 llama3", "llama", dict(big, head_dim=64, max_position_embeddings=131072, **rope_kwargs(500000.0, dict(
        rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192))), [4]
    yield "llama yarn", "llama", dict(big, max_position_embeddings=131072, **rope_kwargs(1000000.0, dict(
        rope_type="yarn", factor=4.0, original_max_position_embeddings=32768))), [4]
    yield "llama yarn mscale betas no truncate", "llama", dict(L, max_position_embeddings=256, **rope_kwargs(10000.0, dict(
        rope_type="yarn", factor=8.0, original_max_position_embeddings=32, mscale=0.707, mscale_all_dim=1.0,
        beta_fast=16, beta_slow=2, **({"truncate": False} if s == "v5" else {})))), [4]
    yield "llama yarn attention_factor", "llama", dict(L, max_position_embeddings=256, **rope_kwargs(10000.0, dict(
        rope_type="yarn", factor=2.0, original_max_position_embeddings=128, attention_factor=1.5))), [4]
    lr = dict(short_factor=[1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0], long_factor=[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0])
    if s == "v5":
        yield "llama longrope factor", "llama", dict(L, max_position_embeddings=32, **rope_kwargs(10000.0, dict(
            rope_type="longrope", factor=3.0, original_max_position_embeddings=8, **lr))), [4, 8, 9]
        yield "llama longrope", "llama", dict(L, max_position_embeddings=32, **rope_kwargs(10000.0, dict(
            rope_type="longrope", original_max_position_embeddings=8, **lr))), [4, 9]
    else:
        yield "llama longrope", "llama", dict(L, max_position_embeddings=32, original_max_position_embeddings=8,
                                              **rope_kwargs(10000.0, dict(rope_type="longrope", **lr))), [4, 8, 9]
    yield "mistral default", "mistral", dict(L, **rope_kwargs(1000000.0)), [4]
    yield "mistral linear", "mistral", dict(L, **rope_kwargs(10000.0, dict(rope_type="linear", factor=2.0))), [4]
    yield "qwen2 yarn", "qwen2", dict(big, max_position_embeddings=131072, **rope_kwargs(1000000.0, dict(
        rope_type="yarn", factor=4.0, original_max_position_embeddings=32768))), [4]
    yield "qwen2 dynamic", "qwen2", dict(L, max_position_embeddings=8, **rope_kwargs(
        1000000.0, dict(rope_type="dynamic", factor=3.0))), [4, 12]


RAW_BASE = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=1, intermediate_size=32,
                vocab_size=16)

# config.json as people have them today (transformers 4's keys, hand-written or from older
# versions), read by whichever transformers runs this script.
LEGACY_JSON = [
    ("legacy gpt_neox defaults", {"model_type": "gpt_neox"}, [4]),
    ("legacy gpt_neox rotary_pct rotary_emb_base", {"model_type": "gpt_neox", "rotary_pct": 0.5, "rotary_emb_base": 500}, [4]),
    ("legacy gpt_neox rotary_pct 1", {"model_type": "gpt_neox", "rotary_pct": 1.0}, [4]),
    ("legacy gpt_neox type linear", {"model_type": "gpt_neox", "rotary_pct": 0.5,
                                     "rope_scaling": {"type": "linear", "factor": 2.0}}, [4]),
    ("legacy llama defaults", {"model_type": "llama"}, [4]),
    ("legacy llama rope_theta", {"model_type": "llama", "rope_theta": 1000000.0, "rope_scaling": None}, [4]),
    ("legacy llama type linear", {"model_type": "llama", "rope_scaling": {"type": "linear", "factor": 2.0}}, [4]),
    ("legacy llama type dynamic", {"model_type": "llama", "max_position_embeddings": 8,
                                   "rope_scaling": {"type": "dynamic", "factor": 2.0}}, [4, 9]),
    ("legacy llama 3.1", {"model_type": "llama", "hidden_size": 512, "head_dim": 128, "rope_theta": 500000.0,
                          "max_position_embeddings": 131072,
                          "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 8192, "rope_type": "llama3"}}, [4]),
    ("legacy qwen2.5 yarn", {"model_type": "qwen2", "hidden_size": 512, "rope_theta": 1000000.0,
                             "max_position_embeddings": 32768,
                             "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}}, [4]),
    ("legacy phi3-style longrope", {"model_type": "llama", "max_position_embeddings": 32,
                                    "original_max_position_embeddings": 8,
                                    "rope_scaling": {"type": "longrope",
                                                     "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0],
                                                     "long_factor": [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]}}, [4, 9]),
    ("legacy mistral", {"model_type": "mistral", "rope_theta": 1000000.0, "sliding_window": None}, [4]),
]


def rotary_of(model):
    return next(m for m in model.modules() if hasattr(m, "original_inv_freq"))


def reset_rope(model):
    """Forget what a dynamic rope learnt from earlier batches (as a freshly loaded model)."""
    for m in model.modules():
        if hasattr(m, "original_inv_freq"):
            m.register_buffer("inv_freq", m.original_inv_freq.clone(), persistent=False)
            if hasattr(m, "original_max_seq_len"):
                m.max_seq_len_cached = m.original_max_seq_len


def rope_golden(name, config_json, lengths):
    d = json.loads(json.dumps(config_json))
    for k, v in RAW_BASE.items():
        d.setdefault(k, v)
    mt = d.pop("model_type")
    cfg = AutoConfig.for_model(mt, **d)
    model = AutoModelForCausalLM.from_config(cfg)
    rot = rotary_of(model)
    out = {}
    for n in lengths:
        reset_rope(model)
        rot(torch.zeros(1), torch.arange(n)[None])
        out[str(n)] = {"invFreq": rot.inv_freq.tolist(), "attentionScaling": float(rot.attention_scaling)}
    return out


def make_rope_goldens():
    cases = []
    for name, mt, kwargs, lengths in rope_cases():
        cfg = AutoConfig.for_model(mt, **json.loads(json.dumps(kwargs)))
        saved = json.loads(cfg.to_json_string(use_diff=False))
        cases.append({"name": f"{STYLE} {name}", "config": saved, "lengths": rope_golden(name, saved, lengths)})
    for name, raw, lengths in LEGACY_JSON:
        full = dict(RAW_BASE, **raw)
        cases.append({"name": f"{name}, read by transformers {STYLE}", "config": full, "lengths": rope_golden(name, full, lengths)})
    folder = os.path.join(OUT, "hf-rope")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"golden-{STYLE}.json"), "w") as f:
        json.dump({"producer": producer(), "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"hf-rope/golden-{STYLE}.json: {len(cases)} config forms")


# --- models -------------------------------------------------------------------------------------------

def producer():
    return f"transformers {transformers.__version__}, torch {torch.__version__} (packages/models/scripts/make-hf-models.py)"


def randomise(model, gen):
    """Weights large enough that logits spread over several units (transformers' init gives near-uniform ones)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("embed_in.weight") or name.endswith("embed_tokens.weight"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]) * 1.5)


def batches(gen):
    lengths = [7, 4, 6]
    t = max(lengths)
    rows = [torch.randint(3, VOCAB, (n,), generator=gen).tolist() for n in lengths]
    right = [r + [0] * (t - len(r)) for r in rows]
    left = [[0] * (t - len(r)) + r for r in rows]
    mask_r = [[1] * len(r) + [0] * (t - len(r)) for r in rows]
    mask_l = [[0] * (t - len(r)) + [1] * len(r) for r in rows]
    return rows, (right, mask_r), (left, mask_l)


def positions(mask):
    m = torch.tensor(mask)
    return (m.cumsum(-1) - 1).masked_fill(m == 0, 1)


def run(model, ids, mask):
    reset_rope(model)
    return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=positions(mask)).logits


def r8(x):
    """8 significant digits: float32 holds about 7, the tests compare to 1e-4."""
    if isinstance(x, list):
        return [r8(v) for v in x]
    return float("%.8g" % x)


def real(logits, mask):
    return [[r8(logits[b, t].tolist()) for t in range(len(mask[b])) if mask[b][t]] for b in range(len(mask))]


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()


def goldens(model, gen):
    rows, (right, mask_r), (left, mask_l) = batches(gen)
    g = {"producer": producer(), "rows": rows, "right": {"inputIds": right, "attentionMask": mask_r},
         "left": {"inputIds": left, "attentionMask": mask_l}}
    with torch.no_grad():
        g["right"]["logits"] = real(run(model, right, mask_r), mask_r)
        g["left"]["logits"] = real(run(model, left, mask_l), mask_l)
        g["alone"] = [real(run(model, [r], [[1] * len(r)]), [[1] * len(r)])[0] for r in rows]
    inputs, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            def hook(mod, args, name=name):
                args[0].retain_grad()
                inputs.setdefault(name, args[0])
            hooks.append(m.register_forward_pre_hook(hook))
    # Gradients reach the linear inputs through the (frozen) weights: the embedding needs a grad.
    model.get_input_embeddings().weight.requires_grad_(True)
    logits = run(model, right, mask_r)
    ids, m = torch.tensor(right), torch.tensor(mask_r)
    targets = torch.full_like(ids, -100)
    targets[:, :-1] = torch.where(m[:, 1:] == 1, ids[:, 1:], torch.full_like(ids[:, 1:], -100))
    loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    for h in hooks:
        h.remove()
    g["loss"] = loss.item()
    g["targets"] = targets.tolist()
    g["linearInputGrads"] = {n: r8(x.grad.tolist()) for n, x in inputs.items()}
    return g


def make(name, model_type, kwargs):
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    config = AutoConfig.for_model(model_type, **json.loads(json.dumps(kwargs)))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    randomise(model, gen)
    model.save_pretrained(folder)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(folder, extra)):
            os.remove(os.path.join(folder, extra))
    hf = load(folder)
    g = goldens(hf, gen)
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(g, f, separators=(",", ":"))
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"{name}: {model_type}, {sum(p.numel() for p in hf.parameters())} parameters, {size // 1024} KiB")


def check():
    other = "v4" if STYLE == "v5" else "v5"
    for name in sorted(os.listdir(OUT)):
        folder = os.path.join(OUT, name)
        if not (name.startswith("hf-") and f"-{other}" in name and os.path.exists(os.path.join(folder, "golden.json"))):
            continue
        g = json.load(open(folder + "/golden.json"))
        try:
            hf = load(folder)
        except Exception as e:  # noqa: BLE001
            print(f"{name}: transformers {transformers.__version__} does not load it: {e!r}"[:300])
            continue
        worst = 0.0
        with torch.no_grad():
            for side in ("right", "left"):
                b = g[side]
                got = real(run(hf, b["inputIds"], b["attentionMask"]), b["attentionMask"])
                for gr, wr in zip(got, b["logits"]):
                    for gt, wt in zip(gr, wr):
                        worst = max(worst, max(abs(x - y) for x, y in zip(gt, wt)))
        print(f"{name}: read by transformers {transformers.__version__}, max |Δ| from its {other} goldens {worst:.3g}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if "--check" in sys.argv:
        check()
        sys.exit(0)
    os.makedirs(OUT, exist_ok=True)
    for spec in models():
        make(*spec)
    make_rope_goldens()
