#!/usr/bin/env python3
"""PyTorch bfloat16 goldens for the tiny (and the hf-*) checkpoints: what transformers and PEFT compute with the
base model loaded as `from_pretrained(folder, dtype=torch.bfloat16)`.

Rerun from the repository root, after packages/models/scripts/make-tiny-models.py (which rewrites
fixtures/models/<name>/ and so removes the files written there below), with torch, transformers >= 5 and
peft installed (the venv of `pnpm bench`'s PyTorch side has them):

    python packages/models/scripts/make-bf16-goldens.py          # everything below
    python packages/models/scripts/make-bf16-goldens.py --hf     # only the hf-* logits goldens

The hf-* checkpoints (written by transformers' save_pretrained, one per model type in the v5 config
style: packages/models/scripts/make-hf-models.py, whose golden.json holds the float32 logits of eager
attention) get golden-bf16.json only, from the very batches and position_ids of their golden.json;
make-hf-models.py rewrites those folders, so rerun this script (--hf suffices) after it.

Writes
- fixtures/models/<name>/golden-bf16.json (the tiny-* and the HF_MODELS below): the logits (real
  tokens, as float32 numbers) of the right- and left-padded batches of golden.json, from
  <Arch>ForCausalLM in bfloat16 with transformers' default attention (sdpa), and under
  "bfloat16Weights" those of the same bfloat16 weights cast to float32 and run in float32 (right
  batch). golden.json holds the float32 logits.
- fixtures/models/<name>/golden-bf16-ops.safetensors (tiny-gpt-neox, tiny-llama): the input and
  output of each op of layer 0 in that forward pass (norms, projections, rotary, attention, the
  activation, the residual sum), bfloat16 values stored as F32, so that each of our ops can be run on
  PyTorch's very input and compared bit for bit.
- fixtures/adapters/<run>/ for two short LoRA training runs with a bfloat16 base and float32
  adapters (PEFT's autocast_adapter_dtype), each also run from the same start with a float32 base
  and with the bfloat16 weights in float32 arithmetic ("bfloat16Weights"):
    adapter_config.json, adapter_model.safetensors  the initial adapter, as PEFT's save_pretrained
                                                   writes it (random A and B, so both get gradients)
    head.safetensors                               seq-cls only: the score head (bf16 values, stored F32)
    golden.json                                    inputs, targets, hyperparameters, per-step losses
                                                   and gradient norms for each base
    expected.safetensors                           the adapter after the last step, "<base>.<key>"

The training loop: forward in train mode (lora_dropout 0, no other dropout: deterministic), the
loss as cross-entropy of the logits upcast to float32 (transformers' ForCausalLMLoss does this; its
sequence-classification loss does not, the upcast is used here for both runs), backward,
torch.optim.AdamW(lr, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01), zero_grad.
"""
import importlib.util
import json
import math
import os
import sys

if os.environ.get("PYTHONHASHSEED") != "0":
    # PEFT saves target_modules from a set: a fixed string hash keeps adapter_config.json's order.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODELS = os.path.join(ROOT, "fixtures", "models")
ADAPTERS = os.path.join(ROOT, "fixtures", "adapters")

spec = importlib.util.spec_from_file_location("tiny", os.path.join(ROOT, "packages", "models", "scripts", "make-tiny-models.py"))
tiny = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tiny)

PRODUCER = f"transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}"
# How the base model computes. "bfloat16Weights": loaded in bfloat16, then cast to float32 and run
# in float32 (bfloat16 storage without bfloat16 arithmetic): the tests tell our bfloat16 apart from it.
BASES = {"bfloat16": (torch.bfloat16, None), "float32": (torch.float32, None), "bfloat16Weights": (torch.bfloat16, torch.float32)}


def causal_lm(name, dtype):
    return transformers.AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, name), dtype=dtype).eval()


def reset_rope(model):
    """Forget what a dynamic rope learnt from earlier batches (as make-hf-models.py does before each golden)."""
    for m in model.modules():
        if hasattr(m, "original_inv_freq"):
            m.register_buffer("inv_freq", m.original_inv_freq.clone(), persistent=False)
            if hasattr(m, "original_max_seq_len"):
                m.max_seq_len_cached = m.original_max_seq_len


def logits_goldens(name):
    g = json.load(open(os.path.join(MODELS, name, "golden.json")))
    model = causal_lm(name, torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    out = {"producer": PRODUCER, "dtype": "bfloat16", "attnImplementation": model.config._attn_implementation}
    rounded = causal_lm(name, torch.bfloat16).float()
    fresh = name.startswith("hf-")  # the hf-* float32 goldens come from a freshly reset rope each time
    with torch.no_grad():
        for side in ("right", "left"):
            ids, mask = g[side]["inputIds"], g[side]["attentionMask"]
            if fresh:
                reset_rope(model)
            logits = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=tiny.positions(mask)).logits
            assert logits.dtype == torch.bfloat16
            out[side] = {"logits": tiny.real(logits.float(), mask)}
        # The bfloat16 weights in float32 arithmetic, right-padded batch only.
        ids, mask = g["right"]["inputIds"], g["right"]["attentionMask"]
        if fresh:
            reset_rope(rounded)
        logits = rounded(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=tiny.positions(mask)).logits
        out["bfloat16Weights"] = {"logits": tiny.real(logits, mask)}
    with open(os.path.join(MODELS, name, "golden-bf16.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: bf16 logits ({out['attnImplementation']})")


def ops_goldens(name):
    """Inputs and outputs of every op of layer 0 (right-padded batch) in bfloat16, [batch, seq, ...] layout."""
    g = json.load(open(os.path.join(MODELS, name, "golden.json")))
    model = causal_lm(name, torch.bfloat16)
    neox = model.config.model_type == "gpt_neox"
    layer = model.gpt_neox.layers[0] if neox else model.model.layers[0]
    modeling = sys.modules[type(layer).__module__]
    out, hooks = {}, []

    def record(key, module, inputs=False):
        def hook(mod, args, result):
            if key + ".out" in out:
                return
            if inputs:
                out[key + ".in"] = args[0]
            out[key + ".out"] = result

        hooks.append(module.register_forward_hook(hook))

    rotary = modeling.apply_rotary_pos_emb

    def recorded_rotary(q, k, cos, sin, *args, **kwargs):
        q_embed, k_embed = rotary(q, k, cos, sin, *args, **kwargs)
        if "rotary.q.in" not in out:  # [batch, heads, seq, dim] in transformers
            for key, t in (("q.in", q), ("k.in", k), ("q.out", q_embed), ("k.out", k_embed)):
                out["rotary." + key] = t.transpose(1, 2)
        return q_embed, k_embed

    modeling.apply_rotary_pos_emb = recorded_rotary
    try:
        record("layer", layer, inputs=True)
        if neox:
            record("input_layernorm", layer.input_layernorm, inputs=True)
            record("query_key_value", layer.attention.query_key_value)
            record("dense", layer.attention.dense, inputs=True)  # in: attention's output
            record("post_attention_layernorm", layer.post_attention_layernorm, inputs=True)
            record("dense_h_to_4h", layer.mlp.dense_h_to_4h)
            record("act", layer.mlp.act)
            record("dense_4h_to_h", layer.mlp.dense_4h_to_h)
        else:
            record("input_layernorm", layer.input_layernorm, inputs=True)
            for p in ("q_proj", "k_proj", "v_proj"):
                record(p, getattr(layer.self_attn, p))
            record("o_proj", layer.self_attn.o_proj, inputs=True)  # in: attention's output
            record("post_attention_layernorm", layer.post_attention_layernorm, inputs=True)
            record("gate_proj", layer.mlp.gate_proj)
            record("up_proj", layer.mlp.up_proj)
            record("down_proj", layer.mlp.down_proj, inputs=True)  # in: act(gate) · up
        ids, mask = g["right"]["inputIds"], g["right"]["attentionMask"]
        with torch.no_grad():
            model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=tiny.positions(mask))
    finally:
        modeling.apply_rotary_pos_emb = rotary
        for h in hooks:
            h.remove()
    for k, t in out.items():
        assert t.dtype == torch.bfloat16, k
    write_f32_safetensors(os.path.join(MODELS, name, "golden-bf16-ops.safetensors"), out, {"producer": PRODUCER})
    print(f"{name}: {len(out)} layer-0 tensors")


# --- training ------------------------------------------------------------------------------------

def write_f32_safetensors(path, tensors, metadata=None):
    tiny.save_safetensors(path, {k: v.detach().float().contiguous() for k, v in tensors.items()}, metadata)


def init_adapter(peft_model, gen):
    """Random A (as kaiming-uniform's scale) and B (0.2·N(0, 1)) in named_parameters order, so that both get gradients."""
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_A" in n:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
            elif "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def train(run, base, folder_init=None):
    """One run; returns (losses, grad norms, final adapter tensors by PEFT key)."""
    dtype, compute = BASES[base]
    gen = torch.Generator().manual_seed(sum(map(ord, run["name"])))
    path = os.path.join(MODELS, run["model"])
    if run["task"] == "seq-cls":
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            path, dtype=dtype, num_labels=run["labels"], pad_token_id=0)
        h = model.config.hidden_size
        # bfloat16 values, so that the float32 run starts from the very same head.
        head = (torch.randn(run["labels"], h, generator=gen) / math.sqrt(h)).bfloat16().float()
        with torch.no_grad():
            model.score.weight.copy_(head)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        head = None
    if compute is not None:
        model = model.to(compute)
    assert next(model.parameters()).dtype == (compute or dtype)
    peft_model = get_peft_model(model, LoraConfig(**run["lora"]))
    init_adapter(peft_model, gen)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in params)  # PEFT autocasts the adapter to float32
    if folder_init:
        peft_model.peft_config["default"].base_model_name_or_path = f"fixtures/models/{run['model']}"
        peft_model.save_pretrained(folder_init)
        os.remove(os.path.join(folder_init, "README.md"))  # the model card save_pretrained writes
        if head is not None:
            write_f32_safetensors(os.path.join(folder_init, "head.safetensors"), {"score.weight": head}, {"format": "pt"})
    opt = torch.optim.AdamW(params, lr=run["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    g = json.load(open(os.path.join(MODELS, run["model"], "golden.json")))
    ids, mask = g["right"]["inputIds"], g["right"]["attentionMask"]
    peft_model.train()
    losses, norms = [], []
    for _ in range(run["steps"]):
        out = peft_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=tiny.positions(mask))
        logits = out.logits.float()
        if run["task"] == "seq-cls":
            loss = F.cross_entropy(logits, torch.tensor(run["targets"]))
        else:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.tensor(g["targets"]).reshape(-1), ignore_index=-100)
        loss.backward()
        losses.append(loss.item())
        norms.append(math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params)))
        opt.step()
        opt.zero_grad()
    state = peft.get_peft_model_state_dict(peft_model)
    return losses, norms, {k: v.detach().float() for k, v in state.items()}, (ids, mask, g.get("targets"))


def training_goldens(run):
    folder = os.path.join(ADAPTERS, run["name"])
    os.makedirs(folder, exist_ok=True)
    golden = {"producer": PRODUCER, "model": run["model"], "task": run["task"], "steps": run["steps"], "lr": run["lr"],
              "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 0.01}
    expected = {}
    for dtype_name in BASES:
        losses, norms, state, (ids, mask, targets) = train(run, dtype_name, folder if dtype_name == "bfloat16" else None)
        golden[dtype_name] = {"losses": losses, "gradNorms": norms}
        for k, v in state.items():
            expected[f"{dtype_name}.{k}"] = v
        print(f"{run['name']} {dtype_name}: losses {' '.join(f'{x:.5f}' for x in losses)}")
    golden["inputIds"], golden["attentionMask"] = ids, mask
    if run["task"] == "seq-cls":
        golden["labels"] = run["targets"]
    else:
        golden["targets"] = targets
    write_f32_safetensors(os.path.join(folder, "expected.safetensors"), expected)
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


# One transformers-written checkpoint per supported model type (config style v5).
HF_MODELS = ("hf-gpt-neox-v5", "hf-llama-v5", "hf-mistral-v5", "hf-qwen2-v5")

RUNS = [
    # Study A's shape: GPT-NeoX sequence classification on the last real token, LoRA on
    # query_key_value (r 8, alpha 16), here with a frozen score head (a trainable one would train
    # in bfloat16 under PyTorch: modules_to_save keeps the base dtype).
    dict(name="tiny-gpt-neox-bf16-seq-cls", model="tiny-gpt-neox", task="seq-cls", labels=3, targets=[2, 0, 1], steps=8, lr=5e-3,
         lora=dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query_key_value"])),
    # Study B's shape: Llama causal LM, LoRA on every linear layer but the head.
    dict(name="tiny-llama-bf16-all-linear", model="tiny-llama", task="causal-lm", steps=8, lr=5e-3,
         lora=dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")),
]


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    if "--hf" in sys.argv:
        for name in HF_MODELS:
            logits_goldens(name)
        sys.exit(0)
    for name in HF_MODELS:
        logits_goldens(name)
    for name in ("tiny-gpt-neox", "tiny-gpt-neox-seq", "tiny-llama", "tiny-llama-bias"):
        logits_goldens(name)
    for name in ("tiny-gpt-neox", "tiny-llama"):
        ops_goldens(name)
    for run in RUNS:
        training_goldens(run)
