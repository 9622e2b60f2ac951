import { describe, expect, it } from 'vitest';
import type { PyValue } from './torch-bin-pickle.js';
import { PyDict, PyGlobal, PyTuple, type TorchTensorRef, unpickleTorch } from './torch-bin-pickle.js';

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Python values as plain JSON-ish data: tuples as {tuple: [...]}, dicts as objects, sets sorted. */
function plain(v: PyValue): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof PyTuple) return { tuple: v.items.map(plain) };
  if (v instanceof PyDict) return Object.fromEntries([...v.map].map(([k, x]) => [String(k), plain(x)]));
  if (v instanceof Set) return { set: [...v].map(plain) };
  if (v instanceof Uint8Array) return { bytes: Array.from(v) };
  if (v instanceof PyGlobal) return { global: v.qualifiedName };
  return v;
}

// Made with CPython 3.11's pickle.dumps of
//   data = {'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31, 2**53, -(2**70), 2**70],
//           'floats': [1.5, -0.0, 1e300, float('inf')],
//           'misc': [None, True, False, 'ünï ☃', '', (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
//           'nested': {'k': [[1], {'x': 2}]}, 'od': OrderedDict([('b', 1), ('a', 2)]),
//           'shared': [shared, shared]}   (shared = [1, 2])
// at protocol 2; at protocols 4 and 5 with 'bytes': b'\x00\xffxy', 'set': {3}, 'frozen': frozenset({4}) added.
const P2 =
  'gAJ9cQAoWAQAAABpbnRzcQFdcQIoSwBLAUr/////S/9NAAFN//9KAAABAEoAAACAigUAAACAAIoHAAAAAAAAIIoJAAAAAAAAAADAigkAAAAAAAAAAEBlWAYAAABmbG9hdHNxA11xBChHP/gAAAAAAABHgAAAAAAAAABHfjfkPIgAdZxHf/AAAAAAAABlWAQAAABtaXNjcQVdcQYoToiJWAkAAADDvG7DryDimINxB1gAAAAAcQgpSwGFcQlLAUsChnEKSwFLAksDh3ELKEsBSwJLA0sEdHEMZVgGAAAAbmVzdGVkcQ19cQ5YAQAAAGtxD11xEChdcRFLAWF9cRJYAQAAAHhxE0sCc2VzWAIAAABvZHEUY2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnEVKVJxFihYAQAAAGJxF0sBWAEAAABhcRhLAnVYBgAAAHNoYXJlZHEZXXEaKF1xGyhLAUsCZWgbZXUu';
const P4 =
  'gASVUwEAAAAAAAB9lCiMBGludHOUXZQoSwBLAUr/////S/9NAAFN//9KAAABAEoAAACAigUAAACAAIoHAAAAAAAAIIoJAAAAAAAAAADAigkAAAAAAAAAAEBljAZmbG9hdHOUXZQoRz/4AAAAAAAAR4AAAAAAAAAAR3435DyIAHWcR3/wAAAAAAAAZYwEbWlzY5RdlChOiImMCcO8bsOvIOKYg5SMAJQpSwGFlEsBSwKGlEsBSwJLA4eUKEsBSwJLA0sEdJRljAZuZXN0ZWSUfZSMAWuUXZQoXZRLAWF9lIwBeJRLAnNlc4wCb2SUjAtjb2xsZWN0aW9uc5SMC09yZGVyZWREaWN0lJOUKVKUKIwBYpRLAYwBYZRLAnWMBnNoYXJlZJRdlChdlChLAUsCZWgdZYwFYnl0ZXOUQwQA/3h5lIwDc2V0lI+UKEsDkIwGZnJvemVulChLBJGUdS4=';
const P5 =
  'gAWVUwEAAAAAAAB9lCiMBGludHOUXZQoSwBLAUr/////S/9NAAFN//9KAAABAEoAAACAigUAAACAAIoHAAAAAAAAIIoJAAAAAAAAAADAigkAAAAAAAAAAEBljAZmbG9hdHOUXZQoRz/4AAAAAAAAR4AAAAAAAAAAR3435DyIAHWcR3/wAAAAAAAAZYwEbWlzY5RdlChOiImMCcO8bsOvIOKYg5SMAJQpSwGFlEsBSwKGlEsBSwJLA4eUKEsBSwJLA0sEdJRljAZuZXN0ZWSUfZSMAWuUXZQoXZRLAWF9lIwBeJRLAnNlc4wCb2SUjAtjb2xsZWN0aW9uc5SMC09yZGVyZWREaWN0lJOUKVKUKIwBYpRLAYwBYZRLAnWMBnNoYXJlZJRdlChdlChLAUsCZWgdZYwFYnl0ZXOUQwQA/3h5lIwDc2V0lI+UKEsDkIwGZnJvemVulChLBJGUdS4=';
// pickle.dumps({'a': [1, 2.5, 'x', None, True, (1, 2)], 'b': 2**70}, protocol=0)
const P0 = 'KGRwMApWYQpwMQoobHAyCkkxCmFGMi41CmFWeApwMwphTmFJMDEKYShJMQpJMgp0cDQKYXNWYgpwNQpMMTE4MDU5MTYyMDcxNzQxMTMwMzQyNEwKcy4=';
// pickle.dumps({'b': b'\x00\xffxy'}, protocol=2): bytes become _codecs.encode('\x00ÿxy', 'latin1')
const PB = 'gAJ9cQBYAQAAAGJxAWNfY29kZWNzCmVuY29kZQpxAlgFAAAAAMO/eHlxA1gGAAAAbGF0aW4xcQSGcQVScQZzLg==';

const expected = {
  ints: [0, 1, -1, 255, 256, 65535, 65536, -(2 ** 31), 2 ** 31, 2n ** 53n, -(2n ** 70n), 2n ** 70n],
  floats: [1.5, -0, 1e300, Number.POSITIVE_INFINITY],
  misc: [null, true, false, 'ünï ☃', '', { tuple: [] }, { tuple: [1] }, { tuple: [1, 2] }, { tuple: [1, 2, 3] }, { tuple: [1, 2, 3, 4] }],
  nested: { k: [[1], { x: 2 }] },
  od: { b: 1, a: 2 },
  shared: [
    [1, 2],
    [1, 2],
  ],
};

describe('restricted unpickler: plain data', () => {
  it('reads protocol 2 as Python writes it', () => {
    const { root } = unpickleTorch(b64(P2), 'p2.pkl');
    expect(plain(root)).toEqual(expected);
    // 2**53 is not a safe integer: it stays a bigint. Memo references give the same object.
    const shared = (root as PyDict).map.get('shared') as PyValue[][];
    expect(shared[0]).toBe(shared[1]);
  });

  it('reads protocols 4 and 5 (FRAME, MEMOIZE, STACK_GLOBAL, bytes, sets)', () => {
    for (const p of [P4, P5]) {
      const { root } = unpickleTorch(b64(p), 'p.pkl');
      expect(plain(root)).toEqual({ ...expected, bytes: { bytes: [0, 255, 120, 121] }, set: { set: [3] }, frozen: { set: [4] } });
    }
  });

  it('reads protocol 0 text opcodes and _codecs.encode bytes', () => {
    expect(plain(unpickleTorch(b64(P0), 'p0.pkl').root)).toEqual({ a: [1, 2.5, 'x', null, true, { tuple: [1, 2] }], b: 2n ** 70n });
    expect(plain(unpickleTorch(b64(PB), 'pb.pkl').root)).toEqual({ b: { bytes: [0, 255, 120, 121] } });
  });
});

describe('restricted unpickler: what it refuses', () => {
  const refuses = (pickle: string, message: string | RegExp) => expect(() => unpickleTorch(latin1(pickle), 'f.bin')).toThrow(message);

  it('refuses globals outside the allowlist at GLOBAL and STACK_GLOBAL, before anything is called', () => {
    refuses(
      '\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.',
      'f.bin: pickle global "os.system" is not allowed: only tensors and dicts are read',
    );
    refuses('\x80\x02cposix\nsystem\n.', 'f.bin: pickle global "posix.system" is not allowed');
    refuses('\x80\x02c__builtin__\nset\n]K\x03a\x85R.', 'f.bin: pickle global "__builtin__.set" is not allowed');
    refuses('\x80\x04\x8c\x08builtins\x8c\x04eval\x93.', 'f.bin: pickle global "builtins.eval" is not allowed');
    refuses('\x80\x02ctorch\nload\n.', 'f.bin: pickle global "torch.load" is not allowed');
    refuses('\x80\x02ctorch._utils\n_rebuild_qtensor\n.', 'f.bin: pickle global "torch._utils._rebuild_qtensor" is not allowed');
  });

  it('refuses to call allowlisted values that are not functions it knows', () => {
    refuses('\x80\x02ctorch\nFloatStorage\nK\x02\x85R.', 'pickle calls "torch.FloatStorage", which is allowed only as a value, not called');
    refuses('\x80\x02ctorch\nfloat32\n)R.', 'pickle calls "torch.float32"');
  });

  it('refuses opcodes that build arbitrary objects', () => {
    refuses('\x80\x02(ios\nsystem\n.', 'opcode INST (os.system) builds arbitrary objects and is not allowed');
    refuses('\x80\x02(ccollections\nOrderedDict\no.', 'opcode OBJ builds arbitrary objects');
    refuses('\x80\x02\x82\x01.', 'opcode EXT1 builds arbitrary objects');
    refuses('\x80\x02ctorch._utils\n_rebuild_tensor_v2\n)\x81.', 'NEWOBJ of torch._utils._rebuild_tensor_v2 is not allowed');
    refuses('\x80\x02]}b.', 'BUILD of a list of 0 is not allowed');
  });

  it('reports corrupt and truncated pickles with the byte offset', () => {
    refuses(
      '\x80\x02}q\x00(X\x05\x00\x00\x00ab',
      'f.bin: data.pkl at byte 6: needs 5 more bytes but the pickle ends at byte 13: the file is truncated or corrupt',
    );
    refuses('\x80\x02}', 'ends without a STOP opcode');
    refuses('\x80\x02h\x07.', 'reads memo entry 7, which was never stored');
    refuses('\x80\x02\xff.', 'f.bin: data.pkl at byte 2: unknown pickle opcode 0xff');
    refuses('\x80\x02s.', 'pops from an empty stack');
    refuses('\x80\x02Q.', 'pops from an empty stack');
    refuses('\x80\x02X\x01\x00\x00\x00xQ.', 'persistent id "x" is not a (\'storage\', type, key, location, numel) tuple');
  });
});

describe('restricted unpickler: tensors', () => {
  const u32 = (n: number) => String.fromCharCode(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  const str = (s: string) => `X${u32(s.length)}${s}`;
  const int = (n: number) => `J${u32(n)}`;
  const tuple = (xs: number[]) => `(${xs.map(int).join('')}t`;
  const storage = (type: string, key: string, numel: number) =>
    `(${str('storage')}ctorch\n${type}\n${str(key)}${str('cpu')}${int(numel)}tQ`;
  const tensor = (st: string, offset: number, shape: number[], stride: number[]) =>
    `ctorch._utils\n_rebuild_tensor_v2\n(${st}${int(offset)}${tuple(shape)}${tuple(stride)}\x89ccollections\nOrderedDict\n)RtR`;

  it('rebuilds views over shared storages and parameters', () => {
    const pkl =
      `\x80\x02ccollections\nOrderedDict\n)Rq\x00(` +
      `${str('w')}${tensor(`${storage('HalfStorage', '0', 6)}q\x01`, 0, [2, 3], [3, 1])}` +
      `${str('w_t')}${tensor('h\x01', 0, [3, 2], [1, 3])}` +
      `${str('p')}ctorch._utils\n_rebuild_parameter\n(${tensor(storage('LongStorage', '1', 4), 1, [3], [1])}\x88ccollections\nOrderedDict\n)RtR` +
      `u}(${str('_metadata')}}ub.`;
    const { root, storages } = unpickleTorch(latin1(pkl), 'f.bin');
    const map = (root as PyDict).map;
    const w = map.get('w') as TorchTensorRef;
    const wt = map.get('w_t') as TorchTensorRef;
    const p = map.get('p') as TorchTensorRef;
    expect(w.storage).toBe(wt.storage);
    expect(w.storage).toEqual({ key: '0', storageType: 'HalfStorage', dtype: 'float16', location: 'cpu', numel: 6 });
    expect([wt.shape, wt.stride]).toEqual([
      [3, 2],
      [1, 3],
    ]);
    expect([p.parameter, p.requiresGrad, p.storageOffset, p.storage.dtype]).toEqual([true, true, 1, 'int64']);
    expect([...storages.keys()]).toEqual(['0', '1']);
    expect([...(root as PyDict).attributes!.keys()]).toEqual(['_metadata']);
  });

  it('checks persistent ids and rebuild arguments', () => {
    const refuses = (pickle: string, message: string) => expect(() => unpickleTorch(latin1(pickle), 'f.bin')).toThrow(message);
    refuses(
      `\x80\x02(${str('storage')}ccollections\nOrderedDict\n${str('0')}${str('cpu')}${int(1)}tQ.`,
      'persistent id names collections.OrderedDict, not a torch storage class',
    );
    refuses(`\x80\x02${storage('FloatStorage', '../x', 1)}.`, 'storage key "../x" is invalid');
    refuses(
      `\x80\x02${storage('FloatStorage', '0', 4)}${storage('HalfStorage', '0', 8)}.`,
      'storage 0 is referenced as FloatStorage of 4 elements and as HalfStorage of 8',
    );
    refuses(
      `\x80\x02${tensor(storage('FloatStorage', '0', 4), 0, [2, 2], [2])}.`,
      '_rebuild_tensor_v2 size (2 dims) and stride (1 dims) differ in length',
    );
    refuses(
      `\x80\x02${tensor(storage('FloatStorage', '0', 4), -1, [4], [1])}.`,
      '_rebuild_tensor_v2 storage offset -1 is not a non-negative integer',
    );
  });
});
