/** WGSL math shared by kernels: overflow-safe tanh and sigmoid, erfc to float32 precision. */
export const MATH = /* wgsl */ `
fn tanh_safe(x: f32) -> f32 {
  let t = exp(-2.0 * abs(x));
  let r = (1.0 - t) / (1.0 + t);
  return select(r, -r, x < 0.0);
}
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
// Complementary error function, fractional error < 1.2e-7 everywhere (Numerical Recipes' erfcc).
fn erfc_f(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r, 2.0 - r, x < 0.0);
}
`;

/**
 * sin and cos to a few float32 ulps for any moderate angle (|a| < 2¹⁶): reduction by π/2 in three
 * parts (Cody–Waite) and minimax polynomials on [−π/4, π/4] (Cephes sinf/cosf). WGSL only promises
 * an absolute error of 2⁻¹¹ for its builtins, and SwiftShader's are about that coarse.
 */
export const SINCOS = /* wgsl */ `
fn sincos(a: f32) -> vec2<f32> {
  let k = round(a * 0.6366197723675814);
  let y = ((a - k * 1.5703125) - k * 4.837512969970703125e-4) - k * 7.54978995489188216e-8;
  let z = y * y;
  let s = y + y * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  let q = i32(k) & 3;
  if (q == 0) { return vec2<f32>(s, c); }
  if (q == 1) { return vec2<f32>(c, -s); }
  if (q == 2) { return vec2<f32>(-s, -c); }
  return vec2<f32>(-c, s);
}
`;
