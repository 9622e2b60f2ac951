/**
 * WGSL program assembly. Every buffer binds as `array<u32>`: float32 and int32 are bitcast,
 * float16/bfloat16 are two per word and unpacked in the kernel. For each binding `x` a kernel
 * gets accessors: `ld_x(i) -> f32` (or `i32` for int32), `st_x(i, v)` rounding to the storage
 * dtype with round-to-nearest-even (bit for bit what core's `encode` does), and `raw_x(i)` /
 * `stw_x(i, bits)` for raw element bits. 16-bit outputs bind as `array<atomic<u32>>` so that two
 * threads may write the two halves of one word.
 */
import type { DType } from '@peft/core';

export type Access = 'read' | 'write' | 'readwrite';
export type ScalarType = 'u32' | 'i32' | 'f32';

export interface BindingDecl {
  name: string;
  dtype: DType;
  access: Access;
}

export interface ParamDecl {
  name: string;
  type: ScalarType;
}

/** float16 / bfloat16 ↔ float32 conversions (integer arithmetic: exact, subnormals kept, RNE). */
export const CONVERSIONS = /* wgsl */ `
fn f16_to_f32(h: u32) -> f32 {
  let s = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0u) {
    let v = f32(m) * 5.9604644775390625e-8;
    return select(v, -v, s != 0u);
  }
  if (e == 31u) { return bitcast<f32>(s | 0x7f800000u | (m << 13u)); }
  return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
}
fn f32_to_f16(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sign = (x >> 16u) & 0x8000u;
  let ex = (x >> 23u) & 0xffu;
  var mant = x & 0x7fffffu;
  if (ex == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u | (mant >> 13u), mant != 0u); }
  var e = i32(ex) - 112;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    mant = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    let rest = mant & ((1u << shift) - 1u);
    var m = mant >> shift;
    if (rest > half || (rest == half && (m & 1u) == 1u)) { m = m + 1u; }
    return sign | m;
  }
  let rest = mant & 0x1fffu;
  mant = mant >> 13u;
  if (rest > 0x1000u || (rest == 0x1000u && (mant & 1u) == 1u)) {
    mant = mant + 1u;
    if (mant == 0x400u) {
      mant = 0u;
      e = e + 1;
      if (e >= 31) { return sign | 0x7c00u; }
    }
  }
  return sign | (u32(e) << 10u) | mant;
}
fn bf16_to_f32(h: u32) -> f32 { return bitcast<f32>(h << 16u); }
fn f32_to_bf16(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) { return ((x >> 16u) | 0x40u) & 0xffffu; }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
var<private> NEG_INF_BITS: u32 = 0xff800000u;
fn neg_inf() -> f32 { return bitcast<f32>(NEG_INF_BITS); }
var<private> NAN_BITS: u32 = 0x7fc00000u;
fn nan_f() -> f32 { return bitcast<f32>(NAN_BITS); }
`;

const is16 = (d: DType) => d === 'float16' || d === 'bfloat16';

/** Declaration and accessors of one binding. */
function bindingCode(b: BindingDecl, index: number): string {
  const { dtype, access } = b;
  const name = b.name;
  const v = `buf_${name}`;
  const out: string[] = [];
  const atomic = access !== 'read' && is16(dtype);
  const space = access === 'read' ? 'read' : 'read_write';
  out.push(`@group(0) @binding(${index}) var<storage, ${space}> ${v}: array<${atomic ? 'atomic<u32>' : 'u32'}>;`);
  const word = (idx: string) => (atomic ? `atomicLoad(&${v}[${idx}])` : `${v}[${idx}]`);
  if (is16(dtype)) {
    const dec = dtype === 'float16' ? 'f16_to_f32' : 'bf16_to_f32';
    const enc = dtype === 'float16' ? 'f32_to_f16' : 'f32_to_bf16';
    out.push(`fn raw_${name}(i: u32) -> u32 { return (${word('i >> 1u')} >> ((i & 1u) * 16u)) & 0xffffu; }`);
    out.push(`fn ld_${name}(i: u32) -> f32 { return ${dec}(raw_${name}(i)); }`);
    if (atomic) {
      out.push(
        `fn stw_${name}(i: u32, bits: u32) { let sh = (i & 1u) * 16u; atomicAnd(&${v}[i >> 1u], ~(0xffffu << sh)); atomicOr(&${v}[i >> 1u], (bits & 0xffffu) << sh); }`,
      );
      out.push(`fn st_${name}(i: u32, v: f32) { stw_${name}(i, ${enc}(v)); }`);
    }
  } else {
    out.push(`fn raw_${name}(i: u32) -> u32 { return ${v}[i]; }`);
    if (dtype === 'int32') out.push(`fn ld_${name}(i: u32) -> i32 { return bitcast<i32>(${v}[i]); }`);
    else out.push(`fn ld_${name}(i: u32) -> f32 { return bitcast<f32>(${v}[i]); }`);
    if (access !== 'read') {
      out.push(`fn stw_${name}(i: u32, bits: u32) { ${v}[i] = bits; }`);
      if (dtype === 'int32') out.push(`fn st_${name}(i: u32, v: i32) { ${v}[i] = bitcast<u32>(v); }`);
      else out.push(`fn st_${name}(i: u32, v: f32) { ${v}[i] = bitcast<u32>(v); }`);
    }
  }
  return out.join('\n');
}

/** Bytes of the uniform block for `params` scalars and an optional vec4-packed array of `arrayLen` scalars. */
export function uniformBytes(params: readonly ParamDecl[], arrayLen: number): number {
  const scalars = arrayLen > 0 ? Math.ceil(params.length / 4) * 4 + Math.ceil(arrayLen / 4) * 4 : params.length;
  return Math.max(16, Math.ceil((scalars * 4) / 16) * 16);
}

/**
 * The full WGSL source: conversions, the uniform block `P` (binding 0), the storage bindings
 * (1…), the kernel's code and an entry point that calls
 * `kernel(group, lid, wid)`: `group` is the linear workgroup index of a 1-D launch split over a
 * 2-D grid (x + y·nx), `lid` the local invocation index.
 */
export function assemble(
  params: readonly ParamDecl[],
  array: { name: string; type: ScalarType; length: number } | null,
  bindings: readonly BindingDecl[],
  code: string,
  workgroupSize: number,
): string {
  const fields = params.map((p) => `  ${p.name}: ${p.type},`);
  if (array) {
    for (let i = params.length; i % 4 !== 0; i++) fields.push(`  _pad${i}: u32,`);
    fields.push(`  ${array.name}: array<vec4<${array.type}>, ${Math.ceil(array.length / 4)}>,`);
  }
  if (fields.length === 0) fields.push('  _unused: u32,');
  return [
    CONVERSIONS,
    `struct Params {\n${fields.join('\n')}\n}`,
    '@group(0) @binding(0) var<uniform> P: Params;',
    ...bindings.map((b, i) => bindingCode(b, i + 1)),
    code,
    `@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  kernel(wid.x + wid.y * nwg.x, lid, wid);
}`,
  ].join('\n');
}
