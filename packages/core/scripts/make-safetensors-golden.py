"""Writes packages/core/src/safetensors/fixtures/golden.{safetensors,json} with the reference writer.

Needs numpy and the `safetensors` Python package (pip install safetensors); torch is not needed.
The tests read the committed fixtures, so Python is only needed to regenerate them:

    python3 packages/core/scripts/make-safetensors-golden.py

golden.safetensors is written by safetensors' own Rust serializer; golden.json records, for each
tensor, its dtype, shape, the element values it holds (as literals from the format specs, not
computed by our code) and, for 16-bit floats, the bit patterns.
"""

import json
import math
from pathlib import Path

import numpy as np
from safetensors._safetensors_rust import TensorSpec, serialize

OUT = Path(__file__).resolve().parent.parent / "src" / "safetensors" / "fixtures"

keep_alive = []


def spec(dtype, shape, array):
    array = np.ascontiguousarray(array)
    keep_alive.append(array)
    return TensorSpec(dtype=dtype, shape=tuple(shape), data_ptr=array.ctypes.data, data_len=array.nbytes)


def jsonable(values):
    out = []
    for v in values:
        v = float(v) if not isinstance(v, (bool, int)) else v
        if isinstance(v, float) and math.isnan(v):
            out.append("NaN")
        elif isinstance(v, float) and math.isinf(v):
            out.append("Infinity" if v > 0 else "-Infinity")
        else:
            out.append(v)
    return out


tensors = {}
expected = {}


def add(name, st_dtype, np_dtype_name, shape, array, values, bits=None):
    tensors[name] = spec(np_dtype_name, shape, array)
    entry = {"dtype": st_dtype, "shape": list(shape), "values": jsonable(values)}
    if bits is not None:
        entry["bits"] = [int(b) for b in bits]
    expected[name] = entry


f32 = np.array([0.5, -1.25, 3.0e-5, 1e30, -0.0, 65504.0], np.float32)
add("f32", "F32", "float32", [2, 3], f32, [float(x) for x in f32])

f64 = np.array([1 / 3, -2.5, 1e-40], np.float64)
add("f64", "F64", "float64", [3], f64, [float(np.float32(x)) for x in f64])

f16 = np.array([1.0, -2.0, 0.1, 65504.0], np.float16)
add("f16", "F16", "float16", [2, 2], f16, [float(x) for x in f16], f16.view(np.uint16))

# bfloat16 bit patterns written literally: 1.0, -2.0, 0.5, 3.140625, the smallest normal, -inf.
bf16_bits = np.array([0x3F80, 0xC000, 0x3F00, 0x4049, 0x0080, 0xFF80], np.uint16)
bf16_values = [1.0, -2.0, 0.5, 3.140625, 2.0**-126, -math.inf]
add("bf16", "BF16", "bfloat16", [6], bf16_bits, bf16_values, bf16_bits)

i64 = np.array([-5, 7, 2147483647, -2147483648], np.int64)
add("i64", "I64", "int64", [2, 2], i64, [int(x) for x in i64])
add("i64_big", "I64", "int64", [2], np.array([3, 2**40], np.int64), [3, 2**40])
add("i32", "I32", "int32", [3], np.array([-7, 0, 123456789], np.int32), [-7, 0, 123456789])
add("0", "I32", "int32", [1], np.array([11], np.int32), [11])
add("i16", "I16", "int16", [2], np.array([-32768, 32767], np.int16), [-32768, 32767])
add("i8", "I8", "int8", [3], np.array([-128, 5, 127], np.int8), [-128, 5, 127])
add("u8", "U8", "uint8", [3], np.array([0, 200, 255], np.uint8), [0, 200, 255])
add("u16", "U16", "uint16", [2], np.array([1, 65535], np.uint16), [1, 65535])
add("u32", "U32", "uint32", [2], np.array([9, 2147483647], np.uint32), [9, 2147483647])
add("u64", "U64", "uint64", [2], np.array([0, 4000000000 - 1900000000], np.uint64), [0, 2100000000])
add("bool", "BOOL", "bool", [4], np.array([True, False, False, True]), [1, 0, 0, 1])

# 8-bit floats: codes with their values from the OCP FP8 / MX specs and the FNUZ paper.
add("f8_e4m3", "F8_E4M3", "float8_e4m3fn", [5], np.array([0x38, 0xB8, 0x7E, 0x01, 0x7F], np.uint8),
    [1.0, -1.0, 448.0, 2.0**-9, math.nan])
add("f8_e5m2", "F8_E5M2", "float8_e5m2", [4], np.array([0x3C, 0x7B, 0x7C, 0x01], np.uint8),
    [1.0, 57344.0, math.inf, 2.0**-16])
add("f8_e8m0", "F8_E8M0", "float8_e8m0fnu", [3], np.array([127, 0, 255], np.uint8), [1.0, 2.0**-127, math.nan])
add("f8_e4m3fnuz", "F8_E4M3FNUZ", "float8_e4m3fnuz", [3], np.array([0x40, 0x80, 0x7F], np.uint8),
    [1.0, math.nan, 240.0])
add("f8_e5m2fnuz", "F8_E5M2FNUZ", "float8_e5m2fnuz", [3], np.array([0x40, 0x80, 0x7F], np.uint8),
    [1.0, math.nan, 57344.0])

add("empty", "F32", "float32", [0, 3], np.zeros((0, 3), np.float32), [])
add("scalar", "F32", "float32", [], np.array(42.0, np.float32), [42.0])

metadata = {"format": "np"}
data = bytes(serialize(tensors, metadata))
(OUT / "golden.safetensors").write_bytes(data)
(OUT / "golden.json").write_text(json.dumps({"metadata": metadata, "tensors": expected}, indent=2) + "\n")
print(f"wrote {len(data)} bytes, {len(tensors)} tensors to {OUT}")
