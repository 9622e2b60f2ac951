#!/usr/bin/env python3
"""The PyTorch side of `pnpm bench --backend cpu-step`: a LoRA training step on the CPU in
PyTorch + transformers + peft, from the job JSON that our side gets too (benchmarks/src/cpu-step-job.ts).

Reads ONE job object on stdin (or from the file given as the only argument) and prints ONE JSON
line on stdout; progress goes to stderr. The model is built from the job's config (no checkpoint:
transformers' random init), float32, SDPA attention, frozen base, LoRA via PEFT:

  task "seq-cls":   AutoModelForSequenceClassification (GPTNeoXForSequenceClassification: last
                    non-pad token, `score` without bias), task_type SEQ_CLS, modules_to_save ["score"]
  task "causal-lm": AutoModelForCausalLM, labels with -100 where no loss is taken (transformers shifts)

Gradient checkpointing, when asked, is non-reentrant (no enable_input_require_grads: the frozen
embedding needs no gradient, as on our side). A step is forward, backward, AdamW, zero_grad and
loss.item(). Threads: torch.set_num_threads(job.threads); the parent also sets OMP_NUM_THREADS and
MKL_NUM_THREADS and pins the process with taskset when it can.

When torch, transformers or peft cannot be imported it prints {"skipped": "<reason>"} and exits 2.
"""

import json
import os
import re
import resource
import statistics
import sys
import time

PROCESS_START = time.perf_counter()


def log(msg):
    print(f"    pytorch {msg}", file=sys.stderr, flush=True)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def peak_rss_bytes():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return rss if sys.platform == "darwin" else rss * 1024


def blas_info(torch):
    match = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return match.group(1) if match else "unknown BLAS"


def main(argv):
    text = open(argv[0]).read() if argv else sys.stdin.read()
    job = json.loads(text)
    try:
        import torch
        import transformers
        import peft
        from peft import LoraConfig, get_peft_model
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification
    except Exception as err:  # ImportError, or a broken install
        emit({"skipped": f"cannot import torch/transformers/peft with {sys.executable}: {err}"})
        return 2
    import_seconds = time.perf_counter() - PROCESS_START

    threads = int(job["threads"])
    torch.set_num_threads(threads)
    torch.manual_seed(int(job["seed"]))

    task = job["task"]
    raw = dict(job["config"])
    raw["use_cache"] = False
    if task == "seq-cls":
        raw["num_labels"] = int(job["numLabels"])
    started = time.perf_counter()
    config = AutoConfig.for_model(**raw)
    model_class = AutoModelForSequenceClassification if task == "seq-cls" else AutoModelForCausalLM
    try:
        model = model_class.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    except TypeError:
        model = model_class.from_config(config, torch_dtype=torch.float32, attn_implementation="sdpa")
    if job["gradientCheckpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(
        r=int(job["r"]),
        lora_alpha=job["alpha"],
        lora_dropout=job["dropout"],
        target_modules=list(job["targets"]),
        bias="none",
        task_type="SEQ_CLS" if task == "seq-cls" else "CAUSAL_LM",
        **({"modules_to_save": ["score"]} if task == "seq-cls" else {}),
    )
    model = get_peft_model(model, lora)
    model.train()
    named = list(model.named_parameters())
    trainable_params = [p for _, p in named if p.requires_grad]
    parameters = sum(p.numel() for n, p in named if "lora_" not in n and ".modules_to_save." not in n)
    trainable = sum(p.numel() for p in trainable_params)
    optimizer = torch.optim.AdamW(trainable_params, lr=job["lr"], weight_decay=job["weightDecay"])
    ids = torch.tensor(job["ids"], dtype=torch.long)
    labels = torch.tensor(job["labels"], dtype=torch.long)
    attention_mask = torch.ones_like(ids)
    build_seconds = time.perf_counter() - started

    warmup, steps = int(job["warmup"]), int(job["steps"])
    losses, step_ms = [], []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        out = model(input_ids=ids, attention_mask=attention_mask, labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        del out
        ms = (time.perf_counter() - t0) * 1000
        step_ms.append(ms)
        kind = "warm-up" if step < warmup else "step"
        log(f"{job['id']} x{threads} {kind} {step + 1}/{warmup + steps}: {ms / 1000:.2f} s, loss {losses[-1]:.4f}")

    timed = step_ms[warmup:] or step_ms
    median_ms = statistics.median(timed)
    tokens = ids.shape[0] * ids.shape[1]
    emit(
        {
            "side": "pytorch",
            "id": job["id"],
            "stepMs": step_ms,
            "warmup": warmup,
            "steps": steps,
            "medianStepMs": median_ms,
            "tokensPerSecond": tokens / (median_ms / 1000),
            "losses": losses,
            "buildSeconds": build_seconds,
            "startSeconds": import_seconds,
            "peakRssBytes": peak_rss_bytes(),
            "parameters": parameters,
            "trainable": trainable,
            "threads": torch.get_num_threads(),
            "engine": f"torch {torch.__version__} {blas_info(torch)}, {torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}",
            "modelClass": type(model.get_base_model()).__name__,
            "attnImplementation": getattr(model.config, "_attn_implementation", None),
            "versions": {
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            },
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
