/**
 * A restricted unpickler for the `data.pkl` of torch.save archives. It interprets pickle opcodes
 * as data and never runs code: GLOBAL / STACK_GLOBAL resolve only an allowlist (OrderedDict, the
 * torch tensor/parameter rebuild functions, storage classes, dtypes), and REDUCE / NEWOBJ / BUILD
 * only apply the few of those that build dicts and tensors. Anything else is an error naming the
 * file and the global.
 */

import { shortValue } from '@peft/core';

/** Element types of torch storages, as their `torch.<dtype>` names. */
export type TorchDType = 'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Legacy storage classes (`torch.FloatStorage`, ...) that persistent ids name, by element type. */
export const TORCH_STORAGE_TYPES: Readonly<Record<string, TorchDType>> = {
  DoubleStorage: 'float64',
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

export const TORCH_DTYPE_BYTES: Readonly<Record<TorchDType, number>> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** `torch.float32` and friends, allowed as opaque values. */
const TORCH_DTYPE_NAMES = new Set([
  'float64',
  'double',
  'float32',
  'float',
  'float16',
  'half',
  'bfloat16',
  'int64',
  'long',
  'int32',
  'int',
  'int16',
  'short',
  'int8',
  'uint8',
  'bool',
  'complex64',
  'complex128',
]);

// --- Python values as JavaScript values --------------------------------------------------------

/** A Python tuple (lists are JavaScript arrays). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A dict or OrderedDict; `attributes` holds what BUILD set on it (state_dict's `_metadata`). */
export class PyDict {
  readonly map = new Map<PyValue, PyValue>();
  attributes: Map<PyValue, PyValue> | undefined;
}

/** An allowlisted global: a callable the unpickler knows how to apply, a type or a dtype. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** One storage of the archive: the zip entry `<prefix>/data/<key>`. */
export interface TorchStorageRef {
  key: string;
  /** Storage class name as pickled, e.g. "FloatStorage". */
  storageType: string;
  /** Null for a storage class this reader does not know (the tensors using it cannot be opened). */
  dtype: TorchDType | null;
  location: string;
  /** Number of elements the storage holds. */
  numel: number;
}

/** A tensor as `_rebuild_tensor_v2` describes it: a strided view into a storage. */
export class TorchTensorRef {
  parameter = false;
  constructor(
    readonly storage: TorchStorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
  ) {}
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | Set<PyValue>
  | PyGlobal
  | TorchTensorRef
  | TorchStorageRef;

// --- the allowlist -------------------------------------------------------------------------------

const CALLABLES = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
  'torch.Size',
  '_codecs.encode',
]);
const TYPES = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter', 'torch._tensor.Tensor']);

function allowGlobal(module: string, name: string): 'callable' | 'type' | 'storage' | 'dtype' | null {
  const q = `${module}.${name}`;
  if (CALLABLES.has(q)) return 'callable';
  if (TYPES.has(q)) return 'type';
  // Any torch.<X>Storage class is accepted here: it is only ever data inside a persistent id.
  // Unknown ones are reported with the tensor that uses them.
  if ((module === 'torch' || module === 'torch.storage') && /^[A-Za-z0-9]+Storage$/.test(name)) return 'storage';
  if (module === 'torch' && TORCH_DTYPE_NAMES.has(name)) return 'dtype';
  return null;
}

// --- opcodes ---------------------------------------------------------------------------------------

const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  POP: 0x30,
  POP_MARK: 0x31,
  DUP: 0x32,
  FLOAT: 0x46,
  INT: 0x49,
  BININT: 0x4a,
  BININT1: 0x4b,
  LONG: 0x4c,
  BININT2: 0x4d,
  NONE: 0x4e,
  PERSID: 0x50,
  BINPERSID: 0x51,
  REDUCE: 0x52,
  STRING: 0x53,
  BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55,
  UNICODE: 0x56,
  BINUNICODE: 0x58,
  EMPTY_LIST: 0x5d,
  APPEND: 0x61,
  BUILD: 0x62,
  GLOBAL: 0x63,
  DICT: 0x64,
  APPENDS: 0x65,
  GET: 0x67,
  BINGET: 0x68,
  INST: 0x69,
  LONG_BINGET: 0x6a,
  LIST: 0x6c,
  OBJ: 0x6f,
  PUT: 0x70,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEM: 0x73,
  TUPLE: 0x74,
  SETITEMS: 0x75,
  EMPTY_DICT: 0x7d,
  EMPTY_TUPLE: 0x29,
  BINFLOAT: 0x47,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  PROTO: 0x80,
  NEWOBJ: 0x81,
  EXT1: 0x82,
  EXT2: 0x83,
  EXT4: 0x84,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  LONG4: 0x8b,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  NEWOBJ_EX: 0x92,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
  BYTEARRAY8: 0x96,
  NEXT_BUFFER: 0x97,
  READONLY_BUFFER: 0x98,
} as const;

const OP_NAMES = new Map<number, string>(Object.entries(OP).map(([k, v]) => [v, k]));

const MARK = Symbol('mark');

/** Longest LONG1/LONG4 integer, in bytes: torch writes at most 8; far larger ones are refused. */
export const MAX_LONG_BYTES = 1 << 16;
/** Longest decimal integer of the text opcodes (INT, LONG, GET, PUT): Python's own default str-to-int limit. */
export const MAX_INT_DIGITS = 4300;
/** Deepest nesting of MARKs: a state dict needs a handful. */
export const MAX_MARK_DEPTH = 1000;
/**
 * Most values a pickle may push (each opcode that makes or fetches a value counts one): a state
 * dict needs about 30 per tensor, so this allows over 100,000 tensors while bounding memory.
 */
export const MAX_PICKLE_VALUES = 4_000_000;
/** Deepest nesting of tensor-subclass rebuilds (`_rebuild_from_type_v2` of itself). */
const MAX_REBUILD_DEPTH = 16;

/** An error the unpickler raised on purpose (as opposed to one of the engine's, which is translated). */
class PickleError extends Error {}
type StackItem = PyValue | typeof MARK;

export interface UnpickleResult {
  root: PyValue;
  /** Storages by key, in first-seen order. */
  storages: Map<string, TorchStorageRef>;
}

/**
 * Unpickles a torch.save `data.pkl` without executing anything. `fileName` prefixes every error.
 */
export function unpickleTorch(bytes: Uint8Array, fileName: string): UnpickleResult {
  const unpickler = new Unpickler(bytes, fileName);
  try {
    return unpickler.load();
  } catch (error) {
    if (error instanceof PickleError) throw new Error(error.message);
    // Nothing below should throw otherwise; if the engine does (memory, a limit), say where.
    const kind = error instanceof Error ? error.name : typeof error;
    throw new Error(
      `${fileName}: data.pkl at byte ${unpickler.at}: cannot be read (${kind} while interpreting the pickle): the file is corrupt or not a torch.save checkpoint`,
    );
  }
}

class Unpickler {
  private pos = 0;
  /** Offset of the opcode being run, for error messages. */
  private opStart = 0;
  private readonly dv: DataView;
  private stack: StackItem[] = [];
  private readonly metastack: StackItem[][] = [];
  private readonly memo = new Map<number, PyValue>();
  private readonly storages = new Map<string, TorchStorageRef>();
  private readonly utf8 = new TextDecoder('utf-8');
  private readonly latin1 = new TextDecoder('latin1');

  constructor(
    private readonly bytes: Uint8Array,
    private readonly fileName: string,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Values pushed so far (bounded by MAX_PICKLE_VALUES). */
  private values = 0;

  /** Offset of the opcode being run. */
  get at(): number {
    return this.opStart;
  }

  private fail(message: string, at = this.opStart): never {
    throw new PickleError(`${this.fileName}: data.pkl at byte ${at}: ${message}`);
  }

  private need(n: number): number {
    if (n < 0 || this.pos + n > this.bytes.byteLength) {
      this.fail(`needs ${n} more bytes but the pickle ends at byte ${this.bytes.byteLength}: the file is truncated or corrupt`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private u8(): number {
    return this.bytes[this.need(1)]!;
  }
  private u16(): number {
    return this.dv.getUint16(this.need(2), true);
  }
  private u32(): number {
    return this.dv.getUint32(this.need(4), true);
  }
  private u64(): number {
    const v = this.dv.getBigUint64(this.need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`length ${v} is too large`);
    return Number(v);
  }
  private take(n: number): Uint8Array {
    const at = this.need(n);
    return this.bytes.subarray(at, at + n);
  }
  /** UTF-8 text; short ASCII strings (tensor names, keys) skip the decoder, whose per-call cost dominates them. */
  private text(b: Uint8Array): string {
    if (b.byteLength <= 64) {
      let s = '';
      for (let i = 0; i < b.byteLength; i++) {
        const c = b[i]!;
        if (c >= 0x80) return this.utf8.decode(b);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.utf8.decode(b);
  }
  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('a text opcode argument has no terminating newline: the pickle is truncated');
    const text = this.latin1.decode(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return text;
  }

  private push(v: PyValue): void {
    if (++this.values > MAX_PICKLE_VALUES) {
      this.fail(`builds more than ${MAX_PICKLE_VALUES} values, far more than a state dict needs: the file is corrupt or hostile`);
    }
    this.stack.push(v);
  }
  private pop(): PyValue {
    if (this.stack.length === 0) this.fail('pops from an empty stack: the pickle is corrupt');
    const v = this.stack.pop()!;
    if (v === MARK) this.fail('pops a mark where a value was expected: the pickle is corrupt');
    return v;
  }
  private top(): PyValue {
    const v = this.stack[this.stack.length - 1];
    if (v === undefined || v === MARK) this.fail('expects a value on the stack: the pickle is corrupt');
    return v;
  }
  private popMark(): PyValue[] {
    const items = this.stack as PyValue[];
    const prev = this.metastack.pop();
    if (!prev) this.fail('uses a mark that was never set: the pickle is corrupt');
    this.stack = prev;
    return items;
  }
  private memoSet(i: number): void {
    const v = this.top();
    if (!this.memo.has(i) && ++this.values > MAX_PICKLE_VALUES) {
      this.fail(`builds more than ${MAX_PICKLE_VALUES} values, far more than a state dict needs: the file is corrupt or hostile`);
    }
    this.memo.set(i, v);
  }
  private memoGet(i: number): PyValue {
    if (!this.memo.has(i)) this.fail(`reads memo entry ${i}, which was never stored: the pickle is corrupt`);
    return this.memo.get(i)!;
  }

  load(): UnpickleResult {
    for (;;) {
      if (this.pos >= this.bytes.byteLength) this.fail('ends without a STOP opcode: the file is truncated or corrupt');
      const at = this.pos;
      this.opStart = at;
      const op = this.u8();
      switch (op) {
        case OP.PROTO: {
          const proto = this.u8();
          if (proto > 5) this.fail(`uses pickle protocol ${proto}; protocols up to 5 are known`, at);
          break;
        }
        case OP.FRAME:
          this.u64();
          break;
        case OP.STOP: {
          const root = this.pop();
          return { root, storages: this.storages };
        }
        case OP.MARK:
          if (this.metastack.length >= MAX_MARK_DEPTH) this.fail(`nests more than ${MAX_MARK_DEPTH} MARKs: the pickle is corrupt`, at);
          this.metastack.push(this.stack);
          this.stack = [];
          break;
        case OP.POP:
          if (this.stack.length === 0) this.fail('pops from an empty stack', at);
          if (this.stack[this.stack.length - 1] === MARK) this.popMark();
          else this.stack.pop();
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.DUP:
          this.push(this.top());
          break;

        // --- scalars ---
        case OP.NONE:
          this.push(null);
          break;
        case OP.NEWTRUE:
          this.push(true);
          break;
        case OP.NEWFALSE:
          this.push(false);
          break;
        case OP.BININT:
          this.push(this.dv.getInt32(this.need(4), true));
          break;
        case OP.BININT1:
          this.push(this.u8());
          break;
        case OP.BININT2:
          this.push(this.u16());
          break;
        case OP.LONG1:
          this.push(this.long(this.u8()));
          break;
        case OP.LONG4: {
          const n = this.dv.getInt32(this.need(4), true);
          if (n < 0) this.fail(`LONG4 has a negative length ${n}`, at);
          if (n > MAX_LONG_BYTES) this.fail(`LONG4 integer of ${n} bytes is longer than ${MAX_LONG_BYTES}: torch writes at most 8`, at);
          this.push(this.long(n));
          break;
        }
        case OP.INT: {
          const text = this.line();
          if (text === '00') this.push(false);
          else if (text === '01') this.push(true);
          else this.push(this.parseInt(text, at));
          break;
        }
        case OP.LONG:
          this.push(this.parseInt(this.line().trim().replace(/L$/, ''), at));
          break;
        case OP.BINFLOAT:
          this.push(this.dv.getFloat64(this.need(8), false));
          break;
        case OP.FLOAT: {
          const v = Number(this.line());
          if (Number.isNaN(v)) this.fail('FLOAT is not a number', at);
          this.push(v);
          break;
        }

        // --- strings and bytes ---
        case OP.BINUNICODE:
          this.push(this.text(this.take(this.u32())));
          break;
        case OP.SHORT_BINUNICODE:
          this.push(this.text(this.take(this.u8())));
          break;
        case OP.BINUNICODE8:
          this.push(this.text(this.take(this.u64())));
          break;
        case OP.UNICODE:
          this.push(unescapeRawUnicode(this.line(), (m) => this.fail(m, at)));
          break;
        case OP.BINSTRING: {
          const n = this.dv.getInt32(this.need(4), true);
          if (n < 0) this.fail(`BINSTRING has a negative length ${n}`, at);
          this.push(this.latin1.decode(this.take(n)));
          break;
        }
        case OP.SHORT_BINSTRING:
          this.push(this.latin1.decode(this.take(this.u8())));
          break;
        case OP.STRING:
          this.push(unquote(this.line(), (m) => this.fail(m, at)));
          break;
        case OP.BINBYTES:
          this.push(this.take(this.u32()).slice());
          break;
        case OP.SHORT_BINBYTES:
          this.push(this.take(this.u8()).slice());
          break;
        case OP.BINBYTES8:
        case OP.BYTEARRAY8:
          this.push(this.take(this.u64()).slice());
          break;

        // --- containers ---
        case OP.EMPTY_DICT:
          this.push(new PyDict());
          break;
        case OP.DICT: {
          const items = this.popMark();
          const dict = new PyDict();
          setItems(dict, items, (m) => this.fail(m, at));
          this.push(dict);
          break;
        }
        case OP.EMPTY_LIST:
          this.push([]);
          break;
        case OP.LIST:
          this.push(this.popMark());
          break;
        case OP.EMPTY_TUPLE:
          this.push(new PyTuple([]));
          break;
        case OP.TUPLE:
          this.push(new PyTuple(this.popMark()));
          break;
        case OP.TUPLE1: {
          const a = this.pop();
          this.push(new PyTuple([a]));
          break;
        }
        case OP.TUPLE2: {
          const b = this.pop();
          const a = this.pop();
          this.push(new PyTuple([a, b]));
          break;
        }
        case OP.TUPLE3: {
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.push(new PyTuple([a, b, c]));
          break;
        }
        case OP.EMPTY_SET:
          this.push(new Set());
          break;
        case OP.FROZENSET:
          this.push(new Set(this.popMark()));
          break;
        case OP.ADDITEMS: {
          const items = this.popMark();
          const set = this.top();
          if (!(set instanceof Set)) this.fail(`ADDITEMS onto ${describe(set)}, not a set`, at);
          for (const item of items) set.add(item);
          break;
        }
        case OP.APPEND: {
          const v = this.pop();
          const list = this.top();
          if (!Array.isArray(list)) this.fail(`APPEND onto ${describe(list)}, not a list`, at);
          list.push(v);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          const list = this.top();
          if (!Array.isArray(list)) this.fail(`APPENDS onto ${describe(list)}, not a list`, at);
          for (const item of items) list.push(item);
          break;
        }
        case OP.SETITEM: {
          const v = this.pop();
          const k = this.pop();
          const dict = this.top();
          if (!(dict instanceof PyDict)) this.fail(`SETITEM onto ${describe(dict)}, not a dict`, at);
          dict.map.set(dictKey(k), v);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          const dict = this.top();
          if (!(dict instanceof PyDict)) this.fail(`SETITEMS onto ${describe(dict)}, not a dict`, at);
          setItems(dict, items, (m) => this.fail(m, at));
          break;
        }

        // --- memo ---
        case OP.BINPUT:
          this.memoSet(this.u8());
          break;
        case OP.LONG_BINPUT:
          this.memoSet(this.u32());
          break;
        case OP.PUT:
          this.memoSet(this.parseIndex(this.line(), at));
          break;
        case OP.MEMOIZE:
          this.memoSet(this.memo.size);
          break;
        case OP.BINGET:
          this.push(this.memoGet(this.u8()));
          break;
        case OP.LONG_BINGET:
          this.push(this.memoGet(this.u32()));
          break;
        case OP.GET:
          this.push(this.memoGet(this.parseIndex(this.line(), at)));
          break;

        // --- globals and calls: the allowlist ---
        case OP.GLOBAL: {
          const module = this.line();
          const name = this.line();
          this.push(this.findGlobal(module, name));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings', at);
          this.push(this.findGlobal(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.pop();
          const fn = this.pop();
          this.push(this.call(fn, args, at));
          break;
        }
        case OP.NEWOBJ: {
          const args = this.pop();
          const cls = this.pop();
          if (!(cls instanceof PyGlobal) || cls.qualifiedName !== 'collections.OrderedDict') {
            this.fail(`NEWOBJ of ${describe(cls)} is not allowed: only tensors and dicts are read`, at);
          }
          this.push(this.call(cls, args, at));
          break;
        }
        case OP.BUILD: {
          const state = this.pop();
          const target = this.top();
          this.build(target, state, at);
          break;
        }
        case OP.BINPERSID:
          this.push(this.persistentLoad(this.pop(), at));
          break;
        case OP.PERSID:
          this.fail('uses a text persistent id (PERSID): torch.save writes BINPERSID; the file is not a torch.save checkpoint', at);
          break;
        case OP.INST:
        case OP.OBJ:
        case OP.NEWOBJ_EX:
        case OP.EXT1:
        case OP.EXT2:
        case OP.EXT4: {
          const detail = op === OP.INST ? ` (${clip(`${this.line()}.${this.line()}`)})` : '';
          this.fail(`opcode ${OP_NAMES.get(op)}${detail} builds arbitrary objects and is not allowed: only tensors and dicts are read`, at);
          break;
        }
        case OP.NEXT_BUFFER:
        case OP.READONLY_BUFFER:
          this.fail(`opcode ${OP_NAMES.get(op)} (out-of-band buffers) is not supported`, at);
          break;
        default:
          this.fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}: the file is corrupt or not a torch.save checkpoint`, at);
      }
    }
  }

  /** A little-endian two's-complement integer of n bytes, in time linear in n (through one hex string). */
  private long(n: number): number | bigint {
    const b = this.take(n);
    if (n === 0) return 0;
    if (n <= 6) {
      let small = 0;
      for (let i = n - 1; i >= 0; i--) small = small * 256 + b[i]!;
      return b[n - 1]! & 0x80 ? small - 2 ** (8 * n) : small;
    }
    const digits = new Array<string>(n);
    for (let i = 0; i < n; i++) digits[i] = HEX[b[n - 1 - i]!]!;
    let v = BigInt(`0x${digits.join('')}`);
    if (b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return toNumber(v);
  }

  private parseInt(text: string, at: number): number | bigint {
    const t = text.trim();
    if (t.length > MAX_INT_DIGITS + 1) this.fail(`integer of ${t.length} characters is longer than ${MAX_INT_DIGITS} digits`, at);
    if (!/^[-+]?\d+$/.test(t)) this.fail(`integer ${JSON.stringify(text.slice(0, 24))} is malformed`, at);
    return toNumber(BigInt(t));
  }

  private parseIndex(text: string, at: number): number {
    const v = this.parseInt(text, at);
    if (typeof v !== 'number' || v < 0) this.fail(`memo index ${clip(text)} is invalid`, at);
    return v;
  }

  private findGlobal(module: string, name: string): PyGlobal {
    const kind = allowGlobal(module, name);
    if (!kind) {
      throw new PickleError(
        `${this.fileName}: pickle global ${JSON.stringify(clip(`${module}.${name}`))} is not allowed: only tensors and dicts are read (the file may be malicious, or holds objects other than a state dict)`,
      );
    }
    return new PyGlobal(module, name);
  }

  private call(fn: PyValue, args: PyValue, at: number, depth = 0): PyValue {
    if (depth > MAX_REBUILD_DEPTH) this.fail(`nests tensor rebuilds more than ${MAX_REBUILD_DEPTH} deep: the pickle is corrupt`, at);
    if (!(fn instanceof PyGlobal)) this.fail(`REDUCE calls ${describe(fn)}, which is not callable`, at);
    if (!(args instanceof PyTuple)) this.fail(`REDUCE of ${fn.qualifiedName} has arguments ${describe(args)}, not a tuple`, at);
    const a = args.items;
    const where = fn.qualifiedName;
    switch (where) {
      case 'collections.OrderedDict': {
        const dict = new PyDict();
        if (a.length > 0) {
          const pairs = a[0];
          if (!Array.isArray(pairs) && !(pairs instanceof PyTuple)) this.fail(`OrderedDict(${describe(pairs)}) is not supported`, at);
          for (const pair of Array.isArray(pairs) ? pairs : pairs.items) {
            const kv = pair instanceof PyTuple ? pair.items : Array.isArray(pair) ? pair : null;
            if (kv?.length !== 2) this.fail(`OrderedDict item ${describe(pair)} is not a (key, value) pair`, at);
            dict.map.set(dictKey(kv[0]!), kv[1]!);
          }
        }
        return dict;
      }
      case 'torch._utils._rebuild_tensor_v2':
        return this.rebuildTensor(a, at);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state': {
        const data = a[0];
        if (!(data instanceof TorchTensorRef)) this.fail(`${where} of ${describe(data)}, not a tensor`, at);
        const t = new TorchTensorRef(data.storage, data.storageOffset, data.shape, data.stride, a[1] === true);
        t.parameter = true;
        return t;
      }
      case 'torch._tensor._rebuild_from_type_v2': {
        // (func, new_type, args, state): a tensor subclass; the data is func(*args).
        const [func, type, inner] = a;
        if (!(type instanceof PyGlobal) || !TYPES.has(type.qualifiedName))
          this.fail(`${where} with type ${describe(type)} is not supported`, at);
        const t = this.call(func ?? null, inner ?? null, at, depth + 1);
        if (t instanceof TorchTensorRef && type.name === 'Parameter') t.parameter = true;
        return t;
      }
      case 'torch.Size': {
        const dims = a[0];
        return new PyTuple(
          Array.isArray(dims) ? dims : dims instanceof PyTuple ? dims.items : this.fail(`torch.Size(${describe(dims)})`, at),
        );
      }
      case '_codecs.encode': {
        // How protocol-2 pickles of Python 3 write bytes: _codecs.encode(text, 'latin1').
        const [text, encoding] = a;
        if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
          this.fail(`_codecs.encode(${describe(text)}, ${describe(encoding)}) is not supported`, at);
        }
        return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
      }
      default:
        return this.fail(
          `pickle calls ${JSON.stringify(where)}, which is allowed only as a value, not called: only tensors and dicts are read`,
          at,
        );
    }
  }

  private rebuildTensor(a: PyValue[], at: number): TorchTensorRef {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (a.length < 6 || a.length > 7) this.fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${a.length}`, at);
    const [storage, offset, size, stride, requiresGrad] = a;
    if (!isStorageRef(storage)) this.fail(`_rebuild_tensor_v2 of ${describe(storage)}, not a storage`, at);
    const shape = this.intTuple(size, 'size', at);
    const strides = this.intTuple(stride, 'stride', at);
    if (shape.length !== strides.length)
      this.fail(`_rebuild_tensor_v2 size (${shape.length} dims) and stride (${strides.length} dims) differ in length`, at);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      this.fail(`_rebuild_tensor_v2 storage offset ${describe(offset)} is not a non-negative integer`, at);
    }
    return new TorchTensorRef(storage, offset, shape, strides, requiresGrad === true);
  }

  private intTuple(v: PyValue, what: string, at: number): number[] {
    const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
    if (!items) this.fail(`tensor ${what} ${describe(v)} is not a tuple`, at);
    return items.map((x) => {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0)
        this.fail(`tensor ${what} has ${describe(x)}, not a non-negative integer`, at);
      return x;
    });
  }

  private build(target: PyValue, state: PyValue, at: number): void {
    if (target instanceof PyDict) {
      // OrderedDict.__reduce__ state: its __dict__ (a state_dict's `_metadata`).
      if (state === null) return;
      if (state instanceof PyDict) {
        target.attributes ??= new Map();
        for (const [k, v] of state.map) target.attributes.set(k, v);
        return;
      }
      this.fail(`BUILD of a dict with state ${describe(state)} is not supported`, at);
    }
    if (target instanceof TorchTensorRef) return; // tensor subclass state (hooks, attributes): not needed for the data
    this.fail(`BUILD of ${describe(target)} is not allowed: only tensors and dicts are read`, at);
  }

  private persistentLoad(pid: PyValue, at: number): TorchStorageRef {
    // ('storage', storage_type, key, location, numel)
    const t = pid instanceof PyTuple ? pid.items : null;
    if (t?.[0] !== 'storage' || t.length !== 5) {
      this.fail(`persistent id ${describe(pid)} is not a ('storage', type, key, location, numel) tuple`, at);
    }
    const [, type, key, location, numel] = t;
    if (!(type instanceof PyGlobal) || allowGlobal(type.module, type.name) !== 'storage') {
      this.fail(`persistent id names ${describe(type)}, not a torch storage class`, at);
    }
    if (typeof key !== 'string' || key === '' || key.includes('/') || key.includes('..'))
      this.fail(`storage key ${describe(key)} is invalid`, at);
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) this.fail(`storage ${key} has size ${describe(numel)}`, at);
    const dtype = TORCH_STORAGE_TYPES[type.name] ?? null;
    const existing = this.storages.get(key);
    if (existing) {
      if (existing.storageType !== type.name || existing.numel !== numel) {
        this.fail(
          `storage ${key} is referenced as ${existing.storageType} of ${existing.numel} elements and as ${type.name} of ${numel}: views of one storage with different dtypes are not supported`,
          at,
        );
      }
      return existing;
    }
    const ref: TorchStorageRef = {
      key,
      storageType: type.name,
      dtype,
      location: typeof location === 'string' ? location : String(location),
      numel,
    };
    this.storages.set(key, ref);
    return ref;
  }
}

function isStorageRef(v: PyValue): v is TorchStorageRef {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'numel' in v && 'storageType' in v;
}

function setItems(dict: PyDict, items: PyValue[], fail: (m: string) => never): void {
  if (items.length % 2) fail(`SETITEMS has an odd number (${items.length}) of keys and values`);
  for (let i = 0; i < items.length; i += 2) dict.map.set(dictKey(items[i]!), items[i + 1]!);
}

/** Strings and numbers key a Map by value; other keys (tuples) by identity. */
function dictKey(k: PyValue): PyValue {
  return typeof k === 'bigint' && k >= BigInt(Number.MIN_SAFE_INTEGER) && k <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(k) : k;
}

function toNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function unquote(s: string, fail: (m: string) => never): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) fail(`STRING argument ${JSON.stringify(clip(s))} is not quoted`);
  return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    return ({ n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"' } as Record<string, string>)[e] ?? `\\${e}`;
  });
}

function unescapeRawUnicode(s: string, fail: (m: string) => never): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (seq: string, u4?: string, u8?: string) => {
    const code = Number.parseInt(u4 ?? u8!, 16);
    if (code > 0x10ffff) fail(`UNICODE escape ${seq} is not a Unicode code point (at most \\U0010ffff)`);
    return String.fromCodePoint(code);
  });
}

/** At most 80 characters of a text argument, for error messages. */
const clip = (s: string) => shortValue(s, { as: 'text', max: 80, ellipsis: '...' });

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** A short description of a value for error messages (nested tuples are shown two levels deep). */
export function describe(v: PyValue | undefined, depth = 0): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'string') return shortValue(v, { as: 'string', max: 40, ellipsis: '...' });
  if (typeof v === 'bigint') {
    // Decimal conversion of a huge integer is slow: show its size instead.
    const bits = (v < 0n ? -v : v).toString(16).length * 4;
    return bits > 64 ? `an integer of about ${bits} bits` : String(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return `bytes[${v.byteLength}]`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof PyTuple) {
    if (depth >= 2) return `a tuple of ${v.items.length}`;
    return `(${v.items
      .slice(0, 5)
      .map((x) => describe(x, depth + 1))
      .join(', ')}${v.items.length > 5 ? ', ...' : ''})`;
  }
  if (v instanceof PyDict) return `a dict of ${v.map.size}`;
  if (v instanceof Set) return `a set of ${v.size}`;
  if (v instanceof PyGlobal) return clip(v.qualifiedName);
  if (v instanceof TorchTensorRef) return `a tensor of shape [${v.shape}]`;
  return `storage ${v.key}`;
}
