#!/usr/bin/env python3
"""The LoRA training step of `pnpm bench --backend cuda`, in PyTorch + transformers + peft.

A causal LM built from a config.json (no checkpoint: random init, directly on the device), bf16,
SDPA attention, frozen base, LoRA on the given modules, gradient checkpointing on (non-reentrant,
with enable_input_require_grads as PEFT users do), torch.optim.AdamW on the adapter; a step is
forward with labels = input ids (transformers shifts them), backward, AdamW, zero_grad and
loss.item(). Prints ONE JSON line on stdout (everything else goes to stderr):

  {"tokensPerSecond", "medianStepMs", "stepMs", "peakBytes", "parameters", "trainable", "losses",
   "versions": {"torch", "transformers", "peft", "cuda"}, "device", ...}

When torch, transformers or peft cannot be imported it prints {"skipped": "<reason>"} and exits 2.

  python3 benchmarks/python/peft_step.py --config fixtures/configs/llama-2-7b/config.json \\
      --batch 8 --seq 512 --r 16 --alpha 32 \\
      --targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --warmup 3 --steps 10

Smoke test on a CPU: --device cpu --dtype float32 with a tiny config.
"""

import argparse
import json
import statistics
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="path to a Hugging Face config.json")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--layers", type=int, default=None, help="override num_hidden_layers")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    return p.parse_args(argv)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg):
    print(f"peft_step: {msg}", file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch
        import transformers
        import peft
        from peft import LoraConfig, get_peft_model
        from transformers import AutoConfig, AutoModelForCausalLM
    except Exception as err:  # ImportError, or a broken install
        emit({"skipped": f"cannot import torch/transformers/peft with {sys.executable}: {err}"})
        return 2

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        emit({"skipped": f"torch {torch.__version__} sees no CUDA device"})
        return 2
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)

    overrides = {"use_cache": False}
    if args.layers is not None:
        overrides["num_hidden_layers"] = args.layers
    config = AutoConfig.from_pretrained(args.config, **overrides)

    started = time.perf_counter()
    # Random init straight on the device: a 7B model initialised on the host would take minutes.
    with device:
        try:
            model = AutoModelForCausalLM.from_config(config, torch_dtype=dtype, attn_implementation="sdpa")
        except TypeError:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    # from_config's dtype argument has been renamed across transformers versions; config.json says float16.
    if next(model.parameters()).dtype != dtype:
        model.to(dtype)
    model.to(device)
    parameters = sum(p.numel() for p in model.parameters())
    if not args.no_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=args.r,
        lora_alpha=args.alpha,
        lora_dropout=args.dropout,
        target_modules=[t for t in args.targets.split(",") if t],
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.train()
    trainable_params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in trainable_params)
    adapter_dtype = str(trainable_params[0].dtype).replace("torch.", "") if trainable_params else None
    optimizer = torch.optim.AdamW(trainable_params, lr=args.lr, weight_decay=args.weight_decay)

    gen = torch.Generator(device="cpu").manual_seed(args.seed + 7)
    ids = torch.randint(4, config.vocab_size, (args.batch, args.seq), generator=gen).to(device)
    attention_mask = torch.ones_like(ids)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    build_seconds = time.perf_counter() - started
    model_bytes = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    losses, step_ms = [], []
    for _ in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        out = model(input_ids=ids, attention_mask=attention_mask, labels=ids)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        del out
        sync()
        step_ms.append((time.perf_counter() - t0) * 1000)

    timed = step_ms[args.warmup:] or step_ms
    median_ms = statistics.median(timed)
    cuda_info = {}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        cuda_info = {
            "device": torch.cuda.get_device_name(device),
            "capability": f"sm_{props.major}{props.minor}",
            "totalBytes": props.total_memory,
            "peakBytes": torch.cuda.max_memory_allocated(device),
            "peakReservedBytes": torch.cuda.max_memory_reserved(device),
            "modelBytes": model_bytes,
        }
    emit(
        {
            "tokensPerSecond": args.batch * args.seq / (median_ms / 1000),
            "medianStepMs": median_ms,
            "stepMs": step_ms,
            "peakBytes": None,
            "device": str(device),
            **cuda_info,
            "parameters": parameters,
            "trainable": trainable,
            "adapterDtype": adapter_dtype,
            "modelClass": type(model.get_base_model()).__name__,
            "attnImplementation": getattr(model.config, "_attn_implementation", None),
            "layers": config.num_hidden_layers,
            "batch": args.batch,
            "seq": args.seq,
            "warmup": args.warmup,
            "steps": args.steps,
            "dtype": str(next(model.get_base_model().parameters()).dtype).replace("torch.", ""),
            "gradientCheckpointing": not args.no_gradient_checkpointing,
            "losses": losses,
            "buildSeconds": build_seconds,
            "versions": {
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
            },
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
