#!/usr/bin/env python3
"""torch.matmul of float32 n x n matrices on the CPU, timed one product per request, for the GEMM
section of `pnpm bench` (benchmarks/src/gemm.ts), which interleaves these products with its own.

  python3 benchmarks/python/torch_matmul.py --threads 2

Reads JSON lines on stdin, answers one JSON line each on stdout:

  {"op": "prepare", "n": 1024}   -> {"ok": true}   (random operands, one product run)
  {"op": "run"}                  -> {"ms": 12.3}   (one product, timed here with perf_counter)

The first line it prints describes itself: {"torch", "threads", "blas"}. When torch cannot be
imported it prints {"skipped": "<reason>"} and exits 2.
"""

import argparse
import json
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, required=True)
    args = p.parse_args(argv)
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure is a reason to skip
        print(json.dumps({"skipped": f"cannot import torch: {e}"}), flush=True)
        return 2
    torch.set_num_threads(args.threads)
    config = torch.__config__.show()
    blas = "MKL" if torch.backends.mkl.is_available() else "OpenBLAS" if "openblas" in config.lower() else "unknown BLAS"
    print(
        json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas}),
        flush=True,
    )
    a = b = c = None
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for line in sys.stdin:
            req = json.loads(line)
            if req["op"] == "prepare":
                n = int(req["n"])
                a = torch.rand(n, n, generator=gen) * 2 - 1
                b = torch.rand(n, n, generator=gen) * 2 - 1
                c = torch.empty(n, n)
                torch.matmul(a, b, out=c)
                print(json.dumps({"ok": True}), flush=True)
            elif req["op"] == "run":
                t = time.perf_counter()
                torch.matmul(a, b, out=c)
                print(json.dumps({"ms": (time.perf_counter() - t) * 1000}), flush=True)
            else:
                print(json.dumps({"error": f"unknown op {req['op']}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
