#!/usr/bin/env python3
"""PEFT-format LoRA adapters for the tiny checkpoints, and PyTorch goldens of what they compute.

Rerun from the repository root (after packages/models/scripts/make-tiny-models.py):
    /usr/bin/python3 packages/core/scripts/make-lora-goldens.py

peft and transformers are not needed: the adapter files are written here with Python PEFT's
conventions (0.18.1): adapter_config.json is `json.dumps(asdict(LoraConfig), indent=2, sort_keys=True)`
with every field PEFT writes, inference_mode true, task_type, target_modules as saved after
resolution; adapter_model.safetensors has get_peft_model_state_dict's keys
(base_model.model.<path>.lora_A.weight, lora_embedding_A, lora_magnitude_vector, modules to save
as <path>.weight, the base embeddings when embed_tokens/lm_head are targeted) and {"format": "pt"}.
The LoRA and DoRA math below follows peft/tuners/lora/{layer,dora,variants}.py; the models are the
torch modules of make-tiny-models.py.

Writes fixtures/adapters/<name>/: adapter_config.json, adapter_model.safetensors, golden.json
(inputs, labels, loss) and expected.safetensors (logits and the gradient of every adapter tensor).
"""
import importlib.util
import json
import math
import os
import struct

import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODELS = os.path.join(ROOT, "fixtures", "models")
OUT = os.path.join(ROOT, "fixtures", "adapters")

spec = importlib.util.spec_from_file_location("tiny", os.path.join(ROOT, "packages", "models", "scripts", "make-tiny-models.py"))
tiny = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tiny)

PEFT_VERSION = "0.18.1"


# --- safetensors ---------------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"]).clone()
    return out


def write_safetensors(path, tensors, metadata=None):
    # Python safetensors orders by dtype alignment then name; everything here is F32, so by name.
    tiny.save_safetensors(path, {k: v.detach().contiguous().float() for k, v in tensors.items()}, metadata)


# --- LoRA as PEFT computes it --------------------------------------------------------------------

class Magnitude(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)


class LoraLinear(nn.Module):
    """peft.tuners.lora.layer.Linear (one adapter "default"), DoRA as DoraLinearVariant in eval mode."""

    def __init__(self, base, r, alpha, rslora, dora, gen):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.ModuleDict({"default": nn.Linear(base.in_features, r, bias=False)})
        self.lora_B = nn.ModuleDict({"default": nn.Linear(r, base.out_features, bias=False)})
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        with torch.no_grad():
            self.lora_A["default"].weight.copy_(torch.randn(r, base.in_features, generator=gen) / math.sqrt(base.in_features))
            self.lora_B["default"].weight.copy_(torch.randn(base.out_features, r, generator=gen) * 0.2)
        self.dora = dora
        if dora:
            norm = self.weight_norm(self.lora_B["default"].weight @ self.lora_A["default"].weight)
            self.lora_magnitude_vector = nn.ModuleDict({"default": Magnitude(norm * (1 + 0.1 * torch.randn(norm.shape, generator=gen)))})

    def weight_norm(self, lora_weight):
        return torch.linalg.norm(self.base_layer.weight + self.scaling * lora_weight, dim=1)

    def forward(self, x):
        result = self.base_layer(x)
        a, b = self.lora_A["default"], self.lora_B["default"]
        if not self.dora:
            return result + b(a(x)) * self.scaling
        lora_weight = b.weight @ a.weight
        norm = self.weight_norm(lora_weight.detach()).detach()
        factor = (self.lora_magnitude_vector["default"].weight / norm).view(1, -1)
        base_result = result - self.base_layer.bias if self.base_layer.bias is not None else result
        return result + (factor - 1) * base_result + factor * b(a(x)) * self.scaling


class LoraEmbedding(nn.Module):
    """peft.tuners.lora.layer.Embedding: lora_embedding_A [r, vocab], lora_embedding_B [dim, r]."""

    def __init__(self, base, r, alpha, rslora, dora, gen):
        super().__init__()
        self.base_layer = base
        v, d = base.weight.shape
        self.lora_embedding_A = nn.ParameterDict({"default": nn.Parameter(torch.randn(r, v, generator=gen) * 0.3)})
        self.lora_embedding_B = nn.ParameterDict({"default": nn.Parameter(torch.randn(d, r, generator=gen) * 0.3)})
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        self.dora = dora
        if dora:
            norm = self.weight_norm(self.lora_embedding_B["default"] @ self.lora_embedding_A["default"])
            self.lora_magnitude_vector = nn.ModuleDict({"default": Magnitude(norm * (1 + 0.1 * torch.randn(norm.shape, generator=gen)))})

    def weight_norm(self, lora_weight):
        # DoraEmbeddingLayer(fan_in_fan_out=True): the norm of Wᵀ + s·BA over its rows, one per feature.
        return torch.linalg.norm(self.base_layer.weight.T + self.scaling * lora_weight, dim=1)

    def forward(self, ids):
        result = self.base_layer(ids)
        a, b = self.lora_embedding_A["default"], self.lora_embedding_B["default"]
        out = F.embedding(ids, a.T) @ b.T
        if not self.dora:
            return result + out * self.scaling
        norm = self.weight_norm((b @ a).detach()).detach()
        factor = self.lora_magnitude_vector["default"].weight / norm
        return factor * result + factor * out * self.scaling


def get_module(model, path):
    m = model
    for p in path.split("."):
        m = getattr(m, p)
    return m


def set_module(model, path, new):
    parent, _, name = path.rpartition(".")
    setattr(get_module(model, parent) if parent else model, name, new)


def full_match(pattern, key):
    import re
    return re.fullmatch(pattern, key) is not None


def targeted(config, key):
    """check_target_module_exists for the fields used here."""
    import re
    mts = config.get("modules_to_save") or []
    if any(re.match(rf"(^|.*\.){m}($|\..*)", key) for m in mts):
        return False
    t = config["target_modules"]
    if isinstance(t, str):
        return full_match(t, key)
    return key in t or any(key.endswith("." + k) for k in t)


def pattern_value(pattern, key, default):
    import re
    for k, v in pattern.items():
        if re.match(rf"(.*\.)?({k})$", key):
            return v
    return default


def peft_config(**fields):
    base = {
        "alora_invocation_tokens": None, "alpha_pattern": {}, "arrow_config": None, "auto_mapping": None,
        "base_model_name_or_path": None, "bias": "none", "corda_config": None, "ensure_weight_tying": False,
        "eva_config": None, "exclude_modules": None, "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "layer_replication": None, "layers_pattern": None, "layers_to_transform": None,
        "loftq_config": {}, "lora_alpha": 8, "lora_bias": False, "lora_dropout": 0.0, "megatron_config": None,
        "megatron_core": "megatron.core", "modules_to_save": None, "peft_type": "LORA", "peft_version": PEFT_VERSION,
        "qalora_group_size": 16, "r": 8, "rank_pattern": {}, "revision": None, "target_modules": None,
        "target_parameters": None, "task_type": None, "trainable_token_indices": None, "use_dora": False,
        "use_qalora": False, "use_rslora": False,
    }
    for k, v in fields.items():
        assert k in base, k
        base[k] = v
    return base


def inject(model, config, gen):
    """LoRA layers on every targeted Linear/Embedding, in named_modules order; returns their paths."""
    paths = []
    for name, m in list(model.named_modules()):
        if name and targeted(config, name) and isinstance(m, (nn.Linear, nn.Embedding)):
            r = pattern_value(config["rank_pattern"], name, config["r"])
            alpha = pattern_value(config["alpha_pattern"], name, config["lora_alpha"])
            cls = LoraLinear if isinstance(m, nn.Linear) else LoraEmbedding
            set_module(model, name, cls(m, r, alpha, config["use_rslora"], config["use_dora"], gen))
            paths.append(name)
    return paths


def adapter_state_dict(model, config, input_embeddings, output_embeddings):
    """get_peft_model_state_dict for adapter "default" (bias none), keys prefixed base_model.model."""
    out = {}
    for name, p in model.named_parameters():
        key = "base_model.model." + name
        if "lora_" not in key:
            continue
        if key.endswith(".default.weight") and "lora_magnitude_vector" not in key:
            key = key[: -len(".default.weight")] + ".weight"
        elif key.endswith("lora_magnitude_vector.default.weight"):
            key = key[: -len(".default.weight")]
        elif key.endswith(".default"):
            key = key[: -len(".default")]
        out[key] = p
    for m in config.get("modules_to_save") or []:
        for name, mod in model.named_modules():
            if name.endswith(m) and not isinstance(mod, (LoraLinear, LoraEmbedding)) and name:
                for k, p in mod.named_parameters():
                    out[f"base_model.model.{name}.{k}"] = p
    t = config["target_modules"]
    if isinstance(t, str):
        import re
        emb = any(full_match(t, k) for k, _ in model.named_modules() if any(re.match(rf"(.*\.)?{e}$", k) for e in ("embed_tokens", "lm_head")))
    else:
        emb = any(e in t for e in ("embed_tokens", "lm_head"))
    if emb:
        for path in (input_embeddings, output_embeddings):
            layer = get_module(model, path)
            if isinstance(layer, (LoraLinear, LoraEmbedding)):
                out[f"base_model.model.{path}.base_layer.weight"] = layer.base_layer.weight
    return out


class NeoXForSequenceClassification(nn.Module):
    """transformers' GPTNeoXForSequenceClassification: gpt_neox + score (no bias), last real token pooled."""

    def __init__(self, causal, labels, gen):
        super().__init__()
        self.gpt_neox = causal.gpt_neox
        h = causal.embed_out.weight.shape[1]
        self.score = nn.Linear(h, labels, bias=False)
        with torch.no_grad():
            self.score.weight.copy_(torch.randn(labels, h, generator=gen) / math.sqrt(h))

    def forward(self, ids, pos, mask):
        hidden = self.gpt_neox(ids, pos, mask)
        last = mask.sum(-1) - 1
        return self.score(hidden[torch.arange(ids.shape[0]), last])


def make(name, model_name, config, seq_cls=False):
    c = json.load(open(os.path.join(MODELS, model_name, "config.json")))
    model_golden = json.load(open(os.path.join(MODELS, model_name, "golden.json")))
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    model = (tiny.NeoXForCausalLM if c["model_type"] == "gpt_neox" else tiny.LlamaForCausalLM)(c)
    model.load_state_dict(read_safetensors(os.path.join(MODELS, model_name, "model.safetensors")))
    if c["model_type"] == "gpt_neox":
        inp, outp = "gpt_neox.embed_in", "embed_out"
    else:
        inp, outp = "model.embed_tokens", "lm_head"
    if seq_cls:
        model = NeoXForSequenceClassification(model, 3, gen)
        outp = None
    paths = inject(model, config, gen)
    assert paths, name
    ids = model_golden["right"]["inputIds"]
    mask = model_golden["right"]["attentionMask"]
    pos = tiny.positions(mask)
    model.eval()
    logits = model(torch.tensor(ids), pos, torch.tensor(mask))
    ids_t, mask_t = torch.tensor(ids), torch.tensor(mask)
    golden = {"model": model_name, "inputIds": ids, "attentionMask": mask, "targeted": paths}
    if seq_cls:
        labels = [2, 0, 1][: len(ids)]
        loss = F.cross_entropy(logits, torch.tensor(labels))
        golden["labels"] = labels
    else:
        targets = torch.full_like(ids_t, -100)
        targets[:, :-1] = torch.where(mask_t[:, 1:] == 1, ids_t[:, 1:], torch.full_like(ids_t[:, 1:], -100))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        golden["targets"] = targets.tolist()
    loss.backward()
    golden["loss"] = loss.item()
    state = adapter_state_dict(model, config, inp, outp if outp else inp)
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "adapter_model.safetensors"), state, {"format": "pt"})
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    expected = {"logits": logits.detach()}
    for k, p in state.items():
        if ".base_layer." in k:
            continue
        expected["grad." + k] = p.grad
    write_safetensors(os.path.join(folder, "expected.safetensors"), expected)
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"{name}: {len(state)} tensors, {len(paths)} adapted modules, loss {loss.item():.6f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    # Study A: GPT-NeoX default target (query_key_value), r 32 / alpha 16 scaled down to r 8, dropout 0.1,
    # a 3-label score head saved fully. PeftModelForSequenceClassification extends modules_to_save.
    make("tiny-gpt-neox-seq-cls", "tiny-gpt-neox", peft_config(
        r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query_key_value"], task_type="SEQ_CLS",
        modules_to_save=["score", "classifier", "score"], base_model_name_or_path="fixtures/models/tiny-gpt-neox"), seq_cls=True)
    # Study B: every layer, embedding and LM head included.
    make("tiny-llama-all", "tiny-llama", peft_config(
        r=4, lora_alpha=8, lora_dropout=0.05, task_type="CAUSAL_LM", base_model_name_or_path="fixtures/models/tiny-llama",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj", "embed_tokens", "lm_head"]))
    # DoRA with rsLoRA, rank and alpha patterns, a regex target that takes the embedding too.
    make("tiny-llama-dora", "tiny-llama", peft_config(
        r=4, lora_alpha=8, use_dora=True, use_rslora=True, rank_pattern={"v_proj": 2}, alpha_pattern={"q_proj": 6},
        target_modules=r"model\.layers\.\d+\.self_attn\.(q_proj|v_proj)|model\.embed_tokens",
        auto_mapping={"base_model_class": "LlamaForCausalLM", "parent_library": "transformers.models.llama.modeling_llama"}))
