"""Writes packages/models/src/weights/fixtures/torch-bin/: torch.save checkpoints and their goldens.

Run with Debian's Python, which has torch 1.13 (not the pyenv python3 on PATH):

    /usr/bin/python3 packages/models/scripts/make-torch-bin-fixtures.py

The tests read the committed fixtures, so torch is only needed to regenerate them. Files:

- state-dict.bin: a module state_dict (OrderedDict with _metadata) plus every storage dtype, tied
  tensors (shared storages, and one tensor object stored twice), transposed and offset views,
  a 0-d tensor, an nn.Parameter, an empty tensor and an int64 outside int32. Saved by torch.save.
- state-dict-proto4.bin: a few of those saved with pickle_protocol=4 (FRAME, MEMOIZE, STACK_GLOBAL).
- deflate.bin, zip64.bin, big-endian.bin: a small checkpoint re-zipped with deflate, with forced
  ZIP64 records, and with big-endian storages plus a `byteorder` entry saying "big" (newer torch
  versions record the saving host's byte order there; torch 1.13 writes none).
- sharded/: pytorch_model-0000{1,2}-of-00002.bin and pytorch_model.bin.index.json.
- malicious-os-system.bin, malicious-eval.bin: zip archives whose data.pkl calls os.system /
  builtins.eval through REDUCE. Crafted byte by byte; they are never unpickled here.
- complex.bin (a ComplexFloatStorage, which the reader does not support), legacy.bin (the pre-1.6
  format), truncated.bin (the first part of a checkpoint, without its central directory).
- golden.json: for every tensor, its layout and values: bit patterns for floats (in the stored
  dtype and as torch converts them to float32/float16/bfloat16), integers as numbers or strings.
"""

import io
import json
import math
import pickle
import pickletools
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "src" / "weights" / "fixtures" / "torch-bin"
OUT.mkdir(parents=True, exist_ok=True)
# A command the malicious pickles would run; the tests check it never happened.
PWNED = "/tmp/peft-torch-bin-pwned"

torch.manual_seed(0)
golden = {"files": {}}


def bits_of(t, dtype):
    """Raw element bits of t converted to dtype (torch's own conversion), as ints or strings."""
    t = t.detach().contiguous().to(dtype)
    if dtype in (torch.float16, torch.bfloat16):
        return [int(x) & 0xFFFF for x in t.view(torch.int16).flatten().tolist()]
    if dtype == torch.float32:
        return [int(x) & 0xFFFFFFFF for x in t.view(torch.int32).flatten().tolist()]
    raise ValueError(dtype)


def jsonable(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if abs(v) < 2**53 else str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


DTYPE_NAMES = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int16: "int16",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}


def describe(sd):
    """Golden entries for the tensors of a dict, read back from the saved file by torch itself."""
    keys = {}
    for name, t in sd.items():
        entry = {
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "stride": list(t.stride()),
            "storage_offset": t.storage_offset(),
            "contiguous": t.is_contiguous(),
            "parameter": isinstance(t, nn.Parameter),
            "values": [jsonable(v) for v in t.detach().flatten().tolist()],
        }
        if t.is_floating_point():
            entry["as_float32"] = bits_of(t, torch.float32)
            entry["as_float16"] = bits_of(t, torch.float16)
            entry["as_bfloat16"] = bits_of(t, torch.bfloat16)
            if t.dtype == torch.float64:
                # torch rounds float64 -> 16 bits once; the reader goes through float32 (no ties here).
                assert bits_of(t, torch.float16) == bits_of(t.float(), torch.float16)
                assert bits_of(t, torch.bfloat16) == bits_of(t.float(), torch.bfloat16)
        keys[name] = entry
    return keys


def data_ptrs(sd):
    out = {}
    for name, t in sd.items():
        out[name] = t.storage().data_ptr()
    return out


def save_and_record(sd, file_name, **kwargs):
    path = OUT / file_name
    torch.save(sd, path, **kwargs)
    # Goldens come from torch reading the file back (weights_only, except for protocol 4, which
    # torch 1.13's weights-only unpickler cannot read; that file is the one just written here).
    loaded = torch.load(path, map_location="cpu", weights_only=kwargs.get("pickle_protocol", 2) == 2)
    assert list(loaded.keys()) == list(sd.keys())
    tensors = describe(loaded)
    # Which tensors share a storage, as torch sees it after loading.
    ptrs = data_ptrs(loaded)
    for name, entry in tensors.items():
        entry["shares_storage_with"] = [n for n in loaded if n != name and ptrs[n] == ptrs[name]]
    golden["files"][file_name] = {"tensors": tensors}
    return path


# --- state-dict.bin -------------------------------------------------------------------------------


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.norm = nn.LayerNorm(3)
        self.lm_head = nn.Linear(3, 5, bias=False)
        self.lm_head.weight = self.embed.weight  # tied: both state_dict entries share one storage


model = Tiny()
sd = model.state_dict()
assert isinstance(sd, OrderedDict) and hasattr(sd, "_metadata")

special = [0.0, -0.0, 1.0, -2.5, 1e-3, 65504.0, 70000.0, 1e-8, 6e-8, float("inf"), float("-inf"), float("nan")]
sd["f32_special"] = torch.tensor(special, dtype=torch.float32)
# Values halfway between two float16 / bfloat16 neighbours: conversions must round to even.
sd["f32_ties"] = torch.tensor([1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-8, 1 + 3 * 2**-8, 3.0e-5, -7.1e-6], dtype=torch.float32)
sd["f16"] = torch.tensor(special, dtype=torch.float32).to(torch.float16).reshape(3, 4)
sd["bf16"] = torch.randn(2, 3).to(torch.bfloat16)
sd["bf16_special"] = torch.tensor([0.0, -0.0, 1e38, 3e38, 1e-40, float("inf"), float("nan")], dtype=torch.bfloat16)
sd["f64"] = torch.tensor([1 / 3, -2.5, 1e-40, 1e300, -1e-300, 123456.789], dtype=torch.float64)
sd["i64"] = torch.tensor([[1, -2], [3, 2**31 - 1], [-(2**31), 0]], dtype=torch.int64)
sd["i64_big"] = torch.tensor([3, 2**40], dtype=torch.int64)
sd["i32"] = torch.tensor([7, -8, 2**31 - 1], dtype=torch.int32)
sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
sd["i8"] = torch.tensor([-128, 127, 0], dtype=torch.int8)
sd["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
sd["bool"] = torch.tensor([True, False, True], dtype=torch.bool)
base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
sd["base"] = base
sd["base_t"] = base.t()  # transposed view of the same storage
sd["base_slice"] = base[1:, 1:3]  # offset 5, strides (4, 1): not contiguous
sd["base_row"] = base[2]  # offset 8, contiguous
sd["f16_t"] = sd["f16"].t()  # 2-byte elements, transposed
sd["i64_t"] = sd["i64"].t()  # 8-byte elements, transposed
sd["scalar"] = torch.tensor(2.5)  # 0-d
sd["param"] = nn.Parameter(torch.randn(2, 2))
sd["empty"] = torch.zeros(0, 3)
sd["same_object"] = sd["norm.weight"]  # the very same tensor object: pickled once, then a memo reference
save_sd = OrderedDict(sd)
save_sd._metadata = sd._metadata
save_sd["step"] = 7  # not a tensor: listed in otherKeys

path = OUT / "state-dict.bin"
torch.save(save_sd, path)
loaded = torch.load(path, map_location="cpu", weights_only=True)
assert loaded["step"] == 7
del loaded["step"]
entry = describe(loaded)
ptrs = data_ptrs(loaded)
for name in entry:
    entry[name]["shares_storage_with"] = [n for n in loaded if n != name and ptrs[n] == ptrs[name]]
golden["files"]["state-dict.bin"] = {"tensors": entry, "other_keys": ["step"]}
assert entry["embed.weight"]["shares_storage_with"] == ["lm_head.weight"]
assert not entry["base_t"]["contiguous"] and entry["base_slice"]["storage_offset"] == 5

# --- state-dict-proto4.bin: pickle protocol 4 ---------------------------------------------------------

small = OrderedDict()
small["w"] = torch.randn(2, 3)
small["w_t"] = small["w"].t()
small["h"] = torch.randn(3).half()
small["n"] = torch.tensor([5, -6], dtype=torch.int64)
save_and_record(small, "state-dict-proto4.bin", pickle_protocol=4)
with zipfile.ZipFile(OUT / "state-dict-proto4.bin") as z:
    ops = {op.name for op, _, _ in pickletools.genops(z.read("state-dict-proto4/data.pkl"))}
    assert {"FRAME", "MEMOIZE", "STACK_GLOBAL", "SHORT_BINUNICODE"} <= ops, ops


# --- re-zipped variants: deflate, zip64, big-endian ----------------------------------------------------


def writestr(z, name, data, compression=zipfile.ZIP_STORED):
    """Adds an entry with a fixed timestamp, so the fixtures are reproducible."""
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = compression
    z.writestr(info, data)


def rezip(src_name, dst_name, compression=zipfile.ZIP_STORED, transform=None, extra=None):
    src = OUT / src_name
    prefix = Path(dst_name).stem
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(OUT / dst_name, "w", compression) as zout:
        old = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            data = zin.read(info.filename)
            name = prefix + info.filename[len(old) :]
            if transform:
                data = transform(name, data)
            writestr(zout, name, data, compression)
        for name, data in (extra or {}).items():
            writestr(zout, f"{prefix}/{name}", data, compression)


small_sd = OrderedDict()
small_sd["a"] = torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2.5
small_sd["a_t"] = small_sd["a"].t()
small_sd["h"] = torch.tensor([1.5, -0.25, 65504.0], dtype=torch.float16)
small_sd["b"] = torch.tensor([1.5, -3.0], dtype=torch.bfloat16)
small_sd["n"] = torch.tensor([[1, -2, 3]], dtype=torch.int64)
small_sd["s"] = torch.tensor([-300, 301], dtype=torch.int16)
save_and_record(small_sd, "small.bin")
golden["files"]["deflate.bin"] = golden["files"]["small.bin"]
golden["files"]["zip64.bin"] = golden["files"]["small.bin"]
golden["files"]["big-endian.bin"] = golden["files"]["small.bin"]

rezip("small.bin", "deflate.bin", zipfile.ZIP_DEFLATED)
assert torch.load(OUT / "deflate.bin", weights_only=True)["a"].equal(small_sd["a"])

# ZIP64: lowering zipfile's limit makes it write ZIP64 extra fields and end records for everything.
saved_limit = zipfile.ZIP64_LIMIT
zipfile.ZIP64_LIMIT = 0
try:
    rezip("small.bin", "zip64.bin")
finally:
    zipfile.ZIP64_LIMIT = saved_limit
raw = (OUT / "zip64.bin").read_bytes()
assert struct.pack("<I", 0x06064B50) in raw and struct.pack("<I", 0x07064B50) in raw
assert torch.load(OUT / "zip64.bin", weights_only=True)["a"].equal(small_sd["a"])

def big_endian(name, data):
    if "/data/" not in name:
        return data
    key = name.rsplit("/", 1)[1]
    size = STORAGE_ELEMENT_SIZE[key]
    return b"".join(data[i : i + size][::-1] for i in range(0, len(data), size))


# storage key -> element size: read the persistent ids of small.bin's pickle without unpickling it.
STORAGE_ELEMENT_SIZE = {}
ELEMENT_SIZE = {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8, "ShortStorage": 2}
with zipfile.ZipFile(OUT / "small.bin") as z:
    ops = list(pickletools.genops(z.read("small/data.pkl")))
    for i, (op, arg, _) in enumerate(ops):
        if op.name == "GLOBAL" and arg.startswith("torch ") and arg.endswith("Storage"):
            key = ops[i + 2][1]  # GLOBAL torch XStorage, BINPUT, BINUNICODE key
            STORAGE_ELEMENT_SIZE[key] = ELEMENT_SIZE[arg.split(" ")[1]]
assert len(STORAGE_ELEMENT_SIZE) == 5, STORAGE_ELEMENT_SIZE
rezip("small.bin", "big-endian.bin", transform=big_endian, extra={"byteorder": b"big"})
(OUT / "small.bin").unlink()
del golden["files"]["small.bin"]

# --- sharded ---------------------------------------------------------------------------------------

shard_dir = OUT / "sharded"
shard_dir.mkdir(exist_ok=True)
shards = [
    OrderedDict([("model.embed.weight", torch.randn(4, 2)), ("model.layers.0.weight", torch.randn(2, 2).half())]),
    OrderedDict([("model.norm.weight", torch.ones(2)), ("lm_head.weight", torch.randn(2, 4).t())]),
]
weight_map = {}
total = 0
for i, shard in enumerate(shards):
    file_name = f"pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin"
    save_and_record(shard, f"sharded/{file_name}")
    for name, t in shard.items():
        weight_map[name] = file_name
        total += t.numel() * t.element_size()
(shard_dir / "pytorch_model.bin.index.json").write_text(
    json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"
)

# --- malicious pickles: never unpickled, only written --------------------------------------------------


def malicious_pickle(kind):
    """A state dict {"ok": tensor, "x": <call>} whose second value calls os.system or eval."""
    out = io.BytesIO()
    w = out.write
    w(b"\x80\x02}q\x00(")  # PROTO 2, EMPTY_DICT, BINPUT 0, MARK
    # "ok": a real tensor over storage "0", so the bad global is not the first thing seen.
    w(b"X\x02\x00\x00\x00ok")
    w(b"ctorch._utils\n_rebuild_tensor_v2\n(")
    w(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ")
    w(b"K\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR")
    w(b"X\x01\x00\x00\x00x")
    command = f"touch {PWNED}-{kind}".encode()
    if kind == "os-system":
        w(b"cos\nsystem\n")  # GLOBAL 'os system'
        w(b"X" + struct.pack("<I", len(command)) + command + b"\x85R")  # (command,) REDUCE
    else:
        # STACK_GLOBAL 'builtins' 'eval' (protocol 4 style) and eval("__import__('os').system(...)")
        w(b"X\x08\x00\x00\x00builtinsX\x04\x00\x00\x00eval\x93")
        code = f"__import__('os').system('{command.decode()}')".encode()
        w(b"X" + struct.pack("<I", len(code)) + code + b"\x85R")
    w(b"u.")  # SETITEMS, STOP
    data = out.getvalue()
    # Check the opcodes parse (pickletools only disassembles; nothing is imported or called).
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    assert "REDUCE" in ops and ops[-1] == "STOP"
    return data


for kind in ("os-system", "eval"):
    prefix = f"malicious-{kind}"
    with zipfile.ZipFile(OUT / f"{prefix}.bin", "w", zipfile.ZIP_STORED) as z:
        writestr(z, f"{prefix}/data.pkl", malicious_pickle(kind))
        writestr(z, f"{prefix}/data/0", struct.pack("<f", 1.0))
        writestr(z, f"{prefix}/version", b"3\n")

# --- unsupported or broken files --------------------------------------------------------------------

torch.save({"c": torch.zeros(2, dtype=torch.complex64)}, OUT / "complex.bin")
torch.save(OrderedDict([("w", torch.ones(2))]), OUT / "legacy.bin", _use_new_zipfile_serialization=False)
whole = (OUT / "state-dict.bin").read_bytes()
(OUT / "truncated.bin").write_bytes(whole[: len(whole) // 3])

(OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
total_size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
print(f"wrote {OUT} ({total_size} bytes)")
assert total_size < 100_000
