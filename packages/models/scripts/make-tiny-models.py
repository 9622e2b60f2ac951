#!/usr/bin/env python3
"""Tiny random GPT-NeoX and Llama checkpoints in the real Hugging Face folder layout, and their
PyTorch goldens (logits of padded batches, gradients at the input of every linear layer).

Rerun from the repository root:   /usr/bin/python3 packages/models/scripts/make-tiny-models.py
(Debian: apt-get install python3-torch python3-sentencepiece)

Writes fixtures/models/<name>/ with config.json, model.safetensors (or sharded with
model.safetensors.index.json), pytorch_model.bin where asked, the tokenizer files, and
golden.json. When `transformers` is importable (the GPU machine has it), goldens come from
transformers' own GPTNeoXForCausalLM / LlamaForCausalLM loaded from the folder; otherwise from
the reimplementation below, which follows transformers' modeling_gpt_neox.py / modeling_llama.py
line by line. golden.json records which produced it.
"""
import json
import math
import os
import shutil
import struct

import torch
from torch import nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "fixtures", "models")
TOKENIZERS = os.path.join(ROOT, "packages", "models", "src", "tokenizer", "fixtures")


# --- the architectures, as transformers computes them -------------------------------------------

def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rotary_cos_sin(position_ids, dim, base, scale):
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    inv_freq = inv_freq / scale  # linear rope_scaling
    freqs = position_ids[:, :, None].float() * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[:, None], emb.sin()[:, None]  # [B, 1, T, dim]


def attend(q, k, v, mask, scale):
    """q [B,H,T,D], k/v [B,H,T,D] (kv already repeated), mask [B,T] 1/0."""
    t = q.shape[2]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    allowed = causal[None, None] & mask.bool()[:, None, None, :]
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return torch.matmul(probs, v)


def gelu(x, kind):
    if kind == "gelu":
        return nn.functional.gelu(x)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class NeoXAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        h = c["hidden_size"]
        self.query_key_value = nn.Linear(h, 3 * h, bias=c.get("attention_bias", True))
        self.dense = nn.Linear(h, h, bias=c.get("attention_bias", True))

    def forward(self, x, pos, mask):
        c = self.c
        b, t, _ = x.shape
        heads = c["num_attention_heads"]
        d = c["hidden_size"] // heads
        rot = int(d * c["rotary_pct"])
        qkv = self.query_key_value(x).view(b, t, heads, 3 * d).permute(0, 2, 1, 3)
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
        cos, sin = rotary_cos_sin(pos, rot, c["rotary_emb_base"], (c.get("rope_scaling") or {}).get("factor", 1.0))
        q = torch.cat((q[..., :rot] * cos + rotate_half(q[..., :rot]) * sin, q[..., rot:]), dim=-1)
        k = torch.cat((k[..., :rot] * cos + rotate_half(k[..., :rot]) * sin, k[..., rot:]), dim=-1)
        out = attend(q, k, v, mask, 1.0 / math.sqrt(d))
        return self.dense(out.permute(0, 2, 1, 3).reshape(b, t, heads * d))


class NeoXMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.dense_h_to_4h = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.dense_4h_to_h = nn.Linear(c["intermediate_size"], c["hidden_size"])

    def forward(self, x):
        return self.dense_4h_to_h(gelu(self.dense_h_to_4h(x), self.c["hidden_act"]))


class NeoXLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        eps = c["layer_norm_eps"]
        self.input_layernorm = nn.LayerNorm(c["hidden_size"], eps=eps)
        self.post_attention_layernorm = nn.LayerNorm(c["hidden_size"], eps=eps)
        self.attention = NeoXAttention(c)
        self.mlp = NeoXMLP(c)

    def forward(self, x, pos, mask):
        attn = self.attention(self.input_layernorm(x), pos, mask)
        if self.c["use_parallel_residual"]:
            return self.mlp(self.post_attention_layernorm(x)) + attn + x
        h = attn + x
        return self.mlp(self.post_attention_layernorm(h)) + h


class NeoXModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_in = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([NeoXLayer(c) for _ in range(c["num_hidden_layers"])])
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, ids, pos, mask):
        h = self.embed_in(ids)
        for layer in self.layers:
            h = layer(h, pos, mask)
        return self.final_layer_norm(h)


class NeoXForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gpt_neox = NeoXModel(c)
        self.embed_out = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c.get("tie_word_embeddings"):
            self.embed_out.weight = self.gpt_neox.embed_in.weight

    def forward(self, ids, pos, mask):
        return self.embed_out(self.gpt_neox(ids, pos, mask))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        h, heads, kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        d = h // heads
        bias = c.get("attention_bias", False)
        self.q_proj = nn.Linear(h, heads * d, bias=bias)
        self.k_proj = nn.Linear(h, kv * d, bias=bias)
        self.v_proj = nn.Linear(h, kv * d, bias=bias)
        self.o_proj = nn.Linear(heads * d, h, bias=bias)

    def forward(self, x, pos, mask):
        c = self.c
        b, t, _ = x.shape
        heads, kv = c["num_attention_heads"], c["num_key_value_heads"]
        d = c["hidden_size"] // heads
        q = self.q_proj(x).view(b, t, heads, d).transpose(1, 2)
        k = self.k_proj(x).view(b, t, kv, d).transpose(1, 2)
        v = self.v_proj(x).view(b, t, kv, d).transpose(1, 2)
        cos, sin = rotary_cos_sin(pos, d, c["rope_theta"], (c.get("rope_scaling") or {}).get("factor", 1.0))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(heads // kv, dim=1)
        v = v.repeat_interleave(heads // kv, dim=1)
        out = attend(q, k, v, mask, 1.0 / math.sqrt(d))
        return self.o_proj(out.transpose(1, 2).reshape(b, t, heads * d))


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, m, bias = c["hidden_size"], c["intermediate_size"], c.get("mlp_bias", False)
        self.gate_proj = nn.Linear(h, m, bias=bias)
        self.up_proj = nn.Linear(h, m, bias=bias)
        self.down_proj = nn.Linear(m, h, bias=bias)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, pos, mask):
        h = x + self.self_attn(self.input_layernorm(x), pos, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([LlamaLayer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, ids, pos, mask):
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h, pos, mask)
        return self.norm(h)


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.model = LlamaModel(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c.get("tie_word_embeddings"):
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids, pos, mask):
        return self.lm_head(self.model(ids, pos, mask))


# --- files ---------------------------------------------------------------------------------------

DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata=None):
    """A safetensors file: u64 header length, JSON header padded to 8 bytes, tensors in name order."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def save_sharded(folder, tensors, shards):
    names = sorted(tensors)
    per = math.ceil(len(names) / shards)
    weight_map, total = {}, 0
    for i in range(shards):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[i * per:(i + 1) * per]}
        save_safetensors(os.path.join(folder, file), part, {"format": "pt"})
        for n, t in part.items():
            weight_map[n] = file
            total += t.numel() * t.element_size()
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
        f.write("\n")


def state_dict_unique(model):
    """named_parameters() order and names (tied weights once), as transformers saves them."""
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embed" in name and p.dim() == 2 and ("embed_in" in name or "embed_tokens" in name):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]) * 1.5)


# --- the tiny models -----------------------------------------------------------------------------

def vocab_of(tokenizer):
    folder = os.path.join(TOKENIZERS, tokenizer) if tokenizer else None
    if folder and os.path.exists(os.path.join(folder, "tokenizer.json")):
        tj = json.load(open(os.path.join(folder, "tokenizer.json")))
        ids = list(tj["model"]["vocab"].values()) + [a["id"] for a in tj.get("added_tokens", [])]
        return max(ids) + 1, folder
    for name in ("spiece.model", "tokenizer.model"):
        if folder and os.path.exists(os.path.join(folder, name)):
            import sentencepiece as spm
            return spm.SentencePieceProcessor(model_file=os.path.join(folder, name)).get_piece_size(), folder
    return 384, None


MODELS = [
    # The bundled GPT-NeoX (Study A's architecture, rinna-like Japanese SentencePiece tokenizer).
    dict(name="tiny-gpt-neox", tokenizer="sp-unigram", formats=("safetensors", "bin"), grads=True, config=dict(
        architectures=["GPTNeoXForCausalLM"], model_type="gpt_neox", hidden_size=64, num_attention_heads=4,
        num_hidden_layers=2, intermediate_size=256, rotary_pct=0.25, rotary_emb_base=10000, layer_norm_eps=1e-5,
        use_parallel_residual=True, hidden_act="gelu", tie_word_embeddings=False, attention_bias=True,
        max_position_embeddings=512, bos_token_id=2, eos_token_id=3, torch_dtype="float32",
        attention_dropout=0.0, hidden_dropout=0.0, initializer_range=0.02, use_cache=True)),
    # Sequential residual, gelu_new, full rotary, tied embeddings, another base, sharded safetensors.
    dict(name="tiny-gpt-neox-seq", tokenizer="neox-bpe", formats=("sharded",), grads=False, config=dict(
        architectures=["GPTNeoXForCausalLM"], model_type="gpt_neox", hidden_size=48, num_attention_heads=3,
        num_hidden_layers=2, intermediate_size=96, rotary_pct=1.0, rotary_emb_base=500, layer_norm_eps=1e-6,
        use_parallel_residual=False, hidden_act="gelu_new", tie_word_embeddings=True, attention_bias=True,
        max_position_embeddings=256, bos_token_id=0, eos_token_id=0, torch_dtype="float32",
        attention_dropout=0.0, hidden_dropout=0.0, initializer_range=0.02, use_cache=True)),
    # The bundled Llama (Study B's architecture): grouped-query attention, SwiGLU, RMSNorm.
    dict(name="tiny-llama", tokenizer="llama-bpe", formats=("safetensors", "bin"), grads=True, config=dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64, num_attention_heads=4,
        num_key_value_heads=2, num_hidden_layers=2, intermediate_size=160, rope_theta=10000.0, rms_norm_eps=1e-6,
        hidden_act="silu", tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
        max_position_embeddings=512, bos_token_id=1, eos_token_id=2, torch_dtype="float32",
        initializer_range=0.02, use_cache=True, rope_scaling=None)),
    # Biases, linear rope scaling, tied embeddings, no GQA.
    dict(name="tiny-llama-bias", tokenizer="llama-bpe", formats=("bin",), grads=False, config=dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=32, num_attention_heads=2,
        num_key_value_heads=2, num_hidden_layers=2, intermediate_size=64, rope_theta=5000.0, rms_norm_eps=1e-5,
        hidden_act="silu", tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
        max_position_embeddings=256, bos_token_id=1, eos_token_id=2, torch_dtype="float32",
        initializer_range=0.02, use_cache=True, rope_scaling={"type": "linear", "factor": 2.0})),
]


def batches(vocab, gen):
    lengths = [7, 4, 6]
    t = max(lengths)
    rows = [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in lengths]
    right = [r + [0] * (t - len(r)) for r in rows]
    left = [[0] * (t - len(r)) + r for r in rows]
    mask_r = [[1] * len(r) + [0] * (t - len(r)) for r in rows]
    mask_l = [[0] * (t - len(r)) + [1] * len(r) for r in rows]
    return rows, (right, mask_r), (left, mask_l)


def positions(mask):
    m = torch.tensor(mask)
    pos = m.cumsum(-1) - 1
    return pos.masked_fill(m == 0, 1)


def run(model, ids, mask, transformers_model=None):
    pos = positions(mask)
    if transformers_model is not None:
        return transformers_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=pos).logits
    return model(torch.tensor(ids), pos, torch.tensor(mask))


def real(logits, mask):
    return [[logits[b, t].tolist() for t in range(len(mask[b])) if mask[b][t]] for b in range(len(mask))]


def make(spec):
    c = dict(spec["config"])
    vocab, tok_folder = vocab_of(spec["tokenizer"])
    c["vocab_size"] = vocab
    folder = os.path.join(OUT, spec["name"])
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    gen = torch.Generator().manual_seed(abs(hash(spec["name"])) % (2**31) if False else sum(map(ord, spec["name"])))
    model = (NeoXForCausalLM if c["model_type"] == "gpt_neox" else LlamaForCausalLM)(c)
    randomise(model, gen)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    tensors = state_dict_unique(model)
    if "safetensors" in spec["formats"]:
        save_safetensors(os.path.join(folder, "model.safetensors"), tensors, {"format": "pt"})
    if "sharded" in spec["formats"]:
        save_sharded(folder, tensors, 2)
    if "bin" in spec["formats"]:
        target = folder if "safetensors" not in spec["formats"] else os.path.join(folder, "bin")
        os.makedirs(target, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(target, "pytorch_model.bin"))
        if target != folder:
            shutil.copy(os.path.join(folder, "config.json"), target)
    if tok_folder:
        for f in os.listdir(tok_folder):
            if not f.endswith(".json") or f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                if os.path.isfile(os.path.join(tok_folder, f)) and not f.startswith("golden"):
                    shutil.copy(os.path.join(tok_folder, f), folder)

    producer = "torch %s, reimplementation of transformers' modeling code (packages/models/scripts/make-tiny-models.py)" % torch.__version__
    hf = None
    try:
        import transformers
        cls = transformers.GPTNeoXForCausalLM if c["model_type"] == "gpt_neox" else transformers.LlamaForCausalLM
        hf = cls.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager").eval()
        producer = f"transformers {transformers.__version__} {cls.__name__}, torch {torch.__version__}"
    except ImportError:
        pass

    rows, (right, mask_r), (left, mask_l) = batches(vocab, gen)
    golden = {"producer": producer, "rows": rows, "right": {"inputIds": right, "attentionMask": mask_r},
              "left": {"inputIds": left, "attentionMask": mask_l}}
    with torch.no_grad():
        golden["right"]["logits"] = real(run(model, right, mask_r, hf), mask_r)
        golden["left"]["logits"] = real(run(model, left, mask_l, hf), mask_l)
        golden["alone"] = [real(run(model, [r], [[1] * len(r)], hf), [[1] * len(r)])[0] for r in rows]
    if spec["grads"]:
        # loss: mean next-token cross-entropy over real targets of the right-padded batch
        inputs = {}
        target_model = hf if hf is not None else model
        hooks = []
        for name, m in target_model.named_modules():
            if isinstance(m, nn.Linear):
                def hook(mod, args, name=name):
                    x = args[0]
                    x.retain_grad()
                    inputs.setdefault(name, x)
                hooks.append(m.register_forward_pre_hook(hook))
        logits = run(model, right, mask_r, hf)
        ids = torch.tensor(right)
        m = torch.tensor(mask_r)
        targets = torch.full_like(ids, -100)
        targets[:, :-1] = torch.where(m[:, 1:] == 1, ids[:, 1:], torch.full_like(ids[:, 1:], -100))
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        for h in hooks:
            h.remove()
        golden["loss"] = loss.item()
        golden["targets"] = targets.tolist()
        golden["linearInputGrads"] = {n: x.grad.tolist() for n, x in inputs.items()}
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print(f"{spec['name']}: vocab {vocab}, {sum(t.numel() for t in tensors.values())} parameters, {producer}")


if __name__ == "__main__":
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for spec in MODELS:
        make(spec)
