#!/usr/bin/env python3
"""Goldens for @peft/core, computed with PyTorch (Debian: apt-get install python3-torch).

Writes:
  src/nn/fixtures/named-parameters.json  names and shapes from torch.nn named_parameters()
  src/fixtures/dtype-rounding.json       float32 -> bfloat16 / float16 bits as torch rounds them

Rerun from packages/core: /usr/bin/python3 scripts/make-goldens.py
"""
import json
import os
import struct

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class Attention(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.query_key_value = nn.Linear(hidden, 3 * hidden)
        self.dense = nn.Linear(hidden, hidden)


class Layer(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(hidden)
        self.post_attention_layernorm = nn.LayerNorm(hidden)
        self.attention = Attention(hidden)
        self.mlp_norm = RMSNorm(hidden)
        self.dropout = nn.Dropout(0.1)


class Net(nn.Module):
    def __init__(self, vocab, hidden, layers, tie):
        super().__init__()
        self.embed_in = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList([Layer(hidden) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(hidden)
        self.embed_out = nn.Linear(hidden, vocab, bias=False)
        if tie:
            self.embed_out.weight = self.embed_in.weight


def names(tie):
    net = Net(11, 8, 2, tie)
    return [[n, list(p.shape)] for n, p in net.named_parameters()]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def rounding():
    rng = np.random.default_rng(0)
    special = [0.0, -0.0, 1.0, 1 / 3, 1 + 2**-8, 1 + 3 * 2**-8, 65504.0, 65519.0, 65520.0, 1e-8, 2**-24, 2**-25, 3 * 2**-26,
               6.1e-5, 5.9e-5, 3.4e38, -3.4e38, float("inf"), float("-inf"), 1e-40, 2**-149]
    vals = np.concatenate([
        np.array(special, dtype=np.float32),
        rng.standard_normal(2000).astype(np.float32) * np.float32(10.0) ** rng.integers(-8, 6, 2000).astype(np.float32),
        rng.integers(0, 2**32, 2000, dtype=np.uint64).astype(np.uint32).view(np.float32),
    ])
    vals = vals[~np.isnan(vals)]
    t = torch.from_numpy(vals)
    bits = vals.view(np.uint32).tolist()
    bf = t.to(torch.bfloat16).view(torch.int16).numpy().astype(np.uint16).tolist()
    f16 = t.to(torch.float16).view(torch.int16).numpy().astype(np.uint16).tolist()
    return {"producer": f"torch {torch.__version__}", "float32Bits": bits, "bfloat16Bits": bf, "float16Bits": f16}


if __name__ == "__main__":
    write(os.path.join(SRC, "nn", "fixtures", "named-parameters.json"),
          {"producer": f"torch {torch.__version__}", "untied": names(False), "tied": names(True)})
    write(os.path.join(SRC, "fixtures", "dtype-rounding.json"), rounding())
    print("goldens written")
