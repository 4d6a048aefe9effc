// The fused kernel's vector arithmetic (included by fused_grad.cc): the target's vector of L
// floats, the approximations of tanh, exp and log1p it computes with, the activations and
// their derivatives by id, and loads and stores of partial vectors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace {

// Points per block: one vector register of the target (the compiler's -march decides).
#ifndef SWEEPNET_LANES
#if defined(__AVX512F__)
#define SWEEPNET_LANES 16
#elif defined(__AVX__)
#define SWEEPNET_LANES 8
#else
#define SWEEPNET_LANES 4
#endif
#endif
constexpr int L = SWEEPNET_LANES;
typedef float vf __attribute__((vector_size(L * 4)));
typedef int32_t vi __attribute__((vector_size(L * 4)));

inline vf splat(float a) { return vf{} + a; }
inline vf vmin(vf a, vf b) { return a < b ? a : b; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }

// Eigen's rational approximation of tanh (float, odd 13/even 6 polynomials); it runs at the
// rate of XLA's own tanh, which sweepnet bench measures as the machine's bound
inline vf tanh_v(vf a) {
  vf x = vmax(vmin(a, splat(7.90531110763549805f)), splat(-7.90531110763549805f));
  vf x2 = x * x;
  vf p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = x * p;
  vf q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;  // no small-|a| branch: p / q is within an ulp of a there, and the branch cost 7%
}

// exp(a) for a <= 0 (Cephes polynomial, 2^n by exponent bits); used as exp(-|z|)
inline vf exp_neg(vf a) {
  vf x = vmax(a, splat(-87.3f));
  vf fx = x * 1.44269504088896341f + 0.5f;
  vi n = __builtin_convertvector(fx, vi);
  vf fn = __builtin_convertvector(n, vf);
  fn = fx < fn ? fn - 1.0f : fn;  // floor
  n = __builtin_convertvector(fn, vi);
  x = x - fn * 0.693359375f;
  x = x - fn * -2.12194440e-4f;
  vf z = x * x;
  vf y = x * 1.9875691500E-4f + 1.3981999507E-3f;
  y = y * x + 8.3334519073E-3f;
  y = y * x + 4.1665795894E-2f;
  y = y * x + 1.6666665459E-1f;
  y = y * x + 5.0000001201E-1f;
  y = y * z + x + 1.0f;
  vi bits = (n + 127) << 23;
  return y * (vf)bits;
}

// log(1 + u) for u in [0, 1] (Cephes logf on 1 + u, corrected so that tiny u gives u)
inline vf log1p_unit(vf u) {
  vf w = u + 1.0f;
  vi bits = (vi)w;
  vi e = ((bits >> 23) & 0xff) - 126;
  vf m = (vf)((bits & 0x007fffff) | 0x3f000000);  // w = m 2^e, m in [0.5, 1)
  vi small = m < 0.707106781186547524f;
  e = small ? e - 1 : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  vf z = m * m;
  vf y = m * 7.0376836292E-2f - 1.1514610310E-1f;
  y = y * m + 1.1676998740E-1f;
  y = y * m - 1.2420140846E-1f;
  y = y * m + 1.4249322787E-1f;
  y = y * m - 1.6668057665E-1f;
  y = y * m + 2.0000714765E-1f;
  y = y * m - 2.4999993993E-1f;
  y = y * m + 3.3333331174E-1f;
  y = y * m * z;
  vf fe = __builtin_convertvector(e, vf);
  y = y + fe * -2.12194440e-4f - 0.5f * z;
  vf r = m + y + fe * 0.693359375f;
  vf d = w - 1.0f;  // log1p(u) = log(w) u / (w - 1): exact where w rounds to 1
  return d == 0.0f ? u : r * (u / d);
}

inline vf sigmoid_v(vf a) {
  vf e = exp_neg(-vmax(a, -a));
  return (a >= 0.0f ? splat(1.0f) : e) / (e + 1.0f);
}

// the ids of sweepnet.kernel.ops.ACTIVATIONS
enum Act : int64_t {
  kTanh = 0, kRelu = 1, kLeakyRelu = 2, kSigmoid = 3, kLinear = 4, kSoftplus = 5
};

template <int64_t A>
inline vf act(vf a) {
  if constexpr (A == kTanh) return tanh_v(a);
  if constexpr (A == kRelu) return vmax(a, splat(0.0f));
  if constexpr (A == kLeakyRelu) return a >= 0.0f ? a : a * 0.01f;
  if constexpr (A == kSigmoid) return sigmoid_v(a);
  if constexpr (A == kSoftplus) return vmax(a, splat(0.0f)) + log1p_unit(exp_neg(-vmax(a, -a)));
  return a;
}

// derivative from the pre-activation a and the output h
template <int64_t A>
inline vf dact(vf a, vf h) {
  if constexpr (A == kTanh) return 1.0f - h * h;
  if constexpr (A == kRelu) return a > 0.0f ? splat(1.0f) : splat(0.0f);
  if constexpr (A == kLeakyRelu) return a >= 0.0f ? splat(1.0f) : splat(0.01f);
  if constexpr (A == kSigmoid) return h * (1.0f - h);
  if constexpr (A == kSoftplus) return sigmoid_v(a);
  return splat(1.0f);
}

// Up to L floats from p into a vector (zeros past `count`), and back.
inline vf load(const float* p, int64_t count) {
  vf v = splat(0.0f);
  if (count == L) {
    std::memcpy(&v, p, sizeof(vf));  // a constant-size copy is one vector load
  } else {
    for (int64_t i = 0; i < count; ++i) v[i] = p[i];
  }
  return v;
}

inline void store(float* p, vf v, int64_t count) {
  if (count == L) {
    std::memcpy(p, &v, sizeof(vf));
  } else {
    for (int64_t i = 0; i < count; ++i) p[i] = v[i];
  }
}

// Points of block q (its first point) that exist: L, fewer at the end, 0 past it.
inline int64_t lanes(int64_t n_pts, int64_t q) {
  return std::max<int64_t>(0, std::min<int64_t>(L, n_pts - q));
}

// 1 in the first `count` lanes, 0 past them: which points of a block exist.
inline vf present(int64_t count) {
  vf v = splat(0.0f);
  for (int64_t i = 0; i < count; ++i) v[i] = 1.0f;
  return v;
}

inline float hsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < L; ++i) s += v[i];
  return s;
}

}  // namespace
