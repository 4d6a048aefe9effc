// sweepnet's fused CPU gradient (built and registered by sweepnet/fused.py).
//
// For a batch of MLPs with one output logit, the gradient of the mean binary cross-entropy
// with respect to every kernel and bias, in one pass over the points: L points at a time (one
// vector register of the target: 16 floats with AVX-512, 8 with AVX2, 4 with SSE or NEON) go
// forward through every layer, through the loss, and back, in registers, and the weight
// gradients are summed lane by lane. A network with two or more hidden layers of width L (16
// or 8) takes the wide form instead (below): a vector holds one point's whole hidden layer.
// XLA's CPU backend runs the same step as a dozen small kernels a layer (tiny batched dots,
// reductions), each with its own overhead.
//
// Each network of a batch has its own real width, depth and activation (operand `info`, int32
// (..., 3): width, depth, activation id): the kernel computes only the real network inside the
// program's padded parameter arrays, so padding costs next to nothing, and writes exact zeros
// into the gradient of every padded entry and every padded layer (a padded layer is the
// identity in the model, see sweepnet/models.py).
//
// Three targets (sweepnet/fused.py registers them):
// - SweepnetGrad: operands x (..., in, P), y (..., P) float labels, info, then kernel
//   (..., out, in) and bias (..., out) of each padded layer (attribute `depth` hidden layers,
//   then the read-out); results the gradient of each, then finite (...): 1 where every logit
//   was finite.
// - SweepnetLogits: operands x, info and the layers; result the logits z (..., P).
// - SweepnetMarginGrad: operands x, y, info and the layers; results the signed margins
//   (2y - 1) z (..., P) and their gradients by the input (..., in, P) (separation metrics).
// Leading dims are batch dims (from vmap, "expand_dims"); an operand's may be 1 where it is
// shared.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

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

// the ids of sweepnet.kernel.fused.ACTIVATIONS
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

// One real layer of one network: its (out, in) block of a padded kernel whose rows are `ld`
// floats apart.
struct Layer {
  int64_t out, in, ld;
  const float* w;
  const float* b;
};

// Buffers reused by the networks of a call, and the row layout of one network's activations:
// rows of h / a are the input (n_in), each hidden layer (w), the logit (1); every row holds K
// vectors, row r being [r * K, r * K + K).
struct Scratch {
  std::vector<vf> h, a, g, g2, accw, accb;
  std::vector<int64_t> aoff, boff;  // each layer's first entry in accw / accb
  int64_t n_in = 0, w = 0;

  int64_t row(int64_t l) const { return l == 0 ? 0 : n_in + (l - 1) * w; }  // layer l's input

  // Sizes h, a (and g, g2 with `grads`) for a network; w is its hidden width. Not cleared: a
  // network writes every entry it reads (the input rows, then each layer's rows forward, and g
  // or g2 at the loss and in each layer backward). Clearing them cost 4% of a (3, 2) run.
  void prepare(int64_t depth, int64_t n_in_, int64_t w_, int k, bool grads) {
    n_in = n_in_;
    w = w_;
    h.resize((n_in + depth * w + 1) * k);
    a.resize(h.size());
    if (grads) {
      g.resize(std::max(w, n_in) * k);
      g2.resize(g.size());
    }
  }

  // Zeroed lane accumulators for the weight and bias gradients of `n_layers` layers.
  void accumulators(int64_t n_layers, const Layer* layers) {
    aoff.assign(n_layers + 1, 0);
    boff.assign(n_layers + 1, 0);
    for (int64_t l = 0; l < n_layers; ++l) {
      aoff[l + 1] = aoff[l] + layers[l].out * layers[l].in;
      boff[l + 1] = boff[l] + layers[l].out;
    }
    accw.assign(aoff[n_layers], splat(0.0f));
    accb.assign(boff[n_layers], splat(0.0f));
  }
};

// A layer forward on K blocks: aout[i] = W hin + b, hout[i] = act(aout[i]) (or aout[i] where
// !activate). Rows hold K vectors: row r of a buffer is [r * K, r * K + K). OUT / IN > 0 fix
// the layer's shape at compile time (loops unroll); 0 reads `out` / `in`.
template <int64_t A, int OUT, int IN, int K>
inline void forward(const Layer& ly, const vf* __restrict hin, vf* __restrict aout,
                    vf* __restrict hout, bool activate) {
  const int64_t out = OUT ? OUT : ly.out, in = IN ? IN : ly.in;
  for (int64_t i = 0; i < out; ++i) {
    vf acc[K];
    for (int k = 0; k < K; ++k) acc[k] = splat(ly.b[i]);
    for (int64_t j = 0; j < in; ++j) {
      const float wij = ly.w[i * ly.ld + j];
      for (int k = 0; k < K; ++k) acc[k] += wij * hin[j * K + k];
    }
    for (int k = 0; k < K; ++k) {
      aout[i * K + k] = acc[k];
      hout[i * K + k] = activate ? act<A>(acc[k]) : acc[k];
    }
  }
}

// A layer's input gradient on K blocks: gin = (W^T g) * act'(ain) (times 1 for the network's
// input, ACT = false).
template <int64_t A, int OUT, int IN, int K, bool ACT>
inline void backward_input(const Layer& ly, const vf* __restrict g, const vf* __restrict hin,
                           const vf* __restrict ain, vf* __restrict gin) {
  const int64_t out = OUT ? OUT : ly.out, in = IN ? IN : ly.in;
  for (int64_t j = 0; j < in; ++j) {
    vf acc[K];
    for (int k = 0; k < K; ++k) acc[k] = splat(0.0f);
    for (int64_t i = 0; i < out; ++i) {
      const float wij = ly.w[i * ly.ld + j];
      for (int k = 0; k < K; ++k) acc[k] += wij * g[i * K + k];
    }
    for (int k = 0; k < K; ++k)
      gin[j * K + k] = ACT ? acc[k] * dact<A>(ain[j * K + k], hin[j * K + k]) : acc[k];
  }
}

// A layer backward on K blocks, given the gradient g (out rows) of its pre-activations: adds
// g hin^T and g to the lane accumulators accw (out * in) and accb (out); if gin, writes the
// gradient of the previous layer's pre-activations, (W^T g) * act'(ain).
template <int64_t A, int OUT, int IN, int K>
inline void backward(const Layer& ly, const vf* __restrict g, const vf* __restrict hin,
                     const vf* __restrict ain, vf* __restrict accw, vf* __restrict accb,
                     vf* __restrict gin) {
  const int64_t out = OUT ? OUT : ly.out, in = IN ? IN : ly.in;
  for (int64_t i = 0; i < out; ++i) {
    vf sb = g[i * K];
    for (int k = 1; k < K; ++k) sb += g[i * K + k];
    accb[i] += sb;
    for (int64_t j = 0; j < in; ++j) {
      vf sw = g[i * K] * hin[j * K];
      for (int k = 1; k < K; ++k) sw += g[i * K + k] * hin[j * K + k];
      accw[i * in + j] += sw;
    }
  }
  if (gin != nullptr) backward_input<A, OUT, IN, K, true>(ly, g, hin, ain, gin);
}

// Every layer forward on K blocks, in s.h / s.a (the caller fills the input rows of s.h).
template <int64_t A, int WT, int K>
inline void forward_all(int64_t depth, const Layer* layers, Scratch& s) {
  vf* h = s.h.data();
  vf* a = s.a.data();
  const int64_t n_in = s.n_in;
  if (depth == 0) {
    forward<A, 1, 0, K>(layers[0], h, a + n_in * K, h + n_in * K, false);
    return;
  }
  forward<A, WT, 0, K>(layers[0], h, a + n_in * K, h + n_in * K, true);
  for (int64_t l = 1; l < depth; ++l)
    forward<A, WT, WT, K>(layers[l], h + s.row(l) * K, a + s.row(l + 1) * K,
                          h + s.row(l + 1) * K, true);
  forward<A, 1, WT, K>(layers[depth], h + s.row(depth) * K, a + s.row(depth + 1) * K,
                       h + s.row(depth + 1) * K, false);
}

// The hidden width: WT, else read from the layers (depth 0: no hidden layer, the input's).
template <int WT>
inline int64_t hidden_width(int64_t depth, int64_t n_in, const Layer* layers) {
  return WT ? WT : (depth ? layers[0].out : n_in);
}

// One network: K blocks of L points at a time go forward through every layer, through the
// loss and back (K independent blocks keep the core's pipelines busy). WT > 0 is the hidden
// width fixed at compile time; 0 reads it from `layers` (and is the only form for depth 0).
template <int64_t A, int WT, int K>
void net_grad(int64_t depth, int64_t n_in, int64_t n_pts, const float* x, const float* y,
              const Layer* layers, float* const* gw, float* const* gb, float* finite,
              Scratch& s) {
  const int64_t n_layers = depth + 1;
  s.prepare(depth, n_in, hidden_width<WT>(depth, n_in, layers), K, true);
  s.accumulators(n_layers, layers);
  const int64_t* aoff = s.aoff.data();
  const int64_t* boff = s.boff.data();
  vf* h = s.h.data();
  vf* a = s.a.data();
  vf* g = s.g.data();
  vf* g2 = s.g2.data();
  vf bad = splat(0.0f);
  const float inv_n = 1.0f / static_cast<float>(n_pts);

  for (int64_t p0 = 0; p0 < n_pts; p0 += L * K) {
    vf yv[K], valid[K];
    for (int k = 0; k < K; ++k) {
      const int64_t q = p0 + k * L;
      const int64_t m = lanes(n_pts, q);
      if (m == L) {
        for (int64_t r = 0; r < n_in; ++r) std::memcpy(&h[r * K + k], x + r * n_pts + q, sizeof(vf));
        std::memcpy(&yv[k], y + q, sizeof(vf));
        valid[k] = splat(1.0f);
      } else {
        for (int64_t r = 0; r < n_in; ++r) h[r * K + k] = load(x + r * n_pts + q, m);
        yv[k] = load(y + q, m);
        valid[k] = present(m);
      }
    }
    forward_all<A, WT, K>(depth, layers, s);
    // the loss: d mean(softplus(z) - y z) / dz = (sigmoid(z) - y) / n
    const vf* z = h + s.row(n_layers) * K;
    for (int k = 0; k < K; ++k) {
      bad += z[k] * 0.0f;  // NaN exactly where z is not finite
      g[k] = (sigmoid_v(z[k]) - yv[k]) * inv_n * valid[k];
    }
    // backward
    vf* accw = s.accw.data();
    vf* accb = s.accb.data();
    if (depth == 0) {
      backward<A, 1, 0, K>(layers[0], g, h, a, accw, accb, nullptr);
    } else {
      const int64_t top = s.row(depth) * K;
      backward<A, 1, WT, K>(layers[depth], g, h + top, a + top, accw + aoff[depth],
                            accb + boff[depth], g2);
      std::swap(g, g2);
      for (int64_t l = depth - 1; l >= 1; --l) {
        const int64_t r = s.row(l) * K;
        backward<A, WT, WT, K>(layers[l], g, h + r, a + r, accw + aoff[l], accb + boff[l], g2);
        std::swap(g, g2);
      }
      backward<A, WT, 0, K>(layers[0], g, h, a, accw, accb, nullptr);
    }
  }
  for (int64_t l = 0; l < n_layers; ++l) {
    const int64_t in = layers[l].in, ld = layers[l].ld;
    for (int64_t i = 0; i < layers[l].out; ++i)
      for (int64_t j = 0; j < in; ++j) gw[l][i * ld + j] = hsum(s.accw[aoff[l] + i * in + j]);
    for (int64_t k = 0; k < layers[l].out; ++k) gb[l][k] = hsum(s.accb[boff[l] + k]);
  }
  *finite = hsum(bad) == 0.0f ? 1.0f : 0.0f;
}

// One network's logits: K blocks of L points at a time forward through every layer; z (P).
template <int64_t A, int WT, int K>
void net_logits(int64_t depth, int64_t n_in, int64_t n_pts, const float* x, const Layer* layers,
                float* z, Scratch& s) {
  s.prepare(depth, n_in, hidden_width<WT>(depth, n_in, layers), K, false);
  vf* h = s.h.data();
  for (int64_t p0 = 0; p0 < n_pts; p0 += L * K) {
    for (int k = 0; k < K; ++k) {
      const int64_t q = p0 + k * L;
      for (int64_t r = 0; r < n_in; ++r) h[r * K + k] = load(x + r * n_pts + q, lanes(n_pts, q));
    }
    forward_all<A, WT, K>(depth, layers, s);
    const vf* out = h + s.row(depth + 1) * K;
    for (int k = 0; k < K; ++k) store(z + p0 + k * L, out[k], lanes(n_pts, p0 + k * L));
  }
}

// One network's signed margins m = (2y - 1) z (P) and their input gradients g (n_in, P).
template <int64_t A, int WT, int K>
void net_margin_grad(int64_t depth, int64_t n_in, int64_t n_pts, const float* x, const float* y,
                     const Layer* layers, float* m, float* gx, Scratch& s) {
  s.prepare(depth, n_in, hidden_width<WT>(depth, n_in, layers), K, true);
  vf* h = s.h.data();
  vf* a = s.a.data();
  for (int64_t p0 = 0; p0 < n_pts; p0 += L * K) {
    vf* g = s.g.data();
    vf* g2 = s.g2.data();
    vf sign[K];
    for (int k = 0; k < K; ++k) {
      const int64_t q = p0 + k * L;
      const int64_t cnt = lanes(n_pts, q);
      for (int64_t r = 0; r < n_in; ++r) h[r * K + k] = load(x + r * n_pts + q, cnt);
      sign[k] = load(y + q, cnt) == 1.0f ? splat(1.0f) : splat(-1.0f);
    }
    forward_all<A, WT, K>(depth, layers, s);
    const vf* z = h + s.row(depth + 1) * K;
    for (int k = 0; k < K; ++k) g[k] = sign[k];
    if (depth == 0) {
      backward_input<A, 1, 0, K, false>(layers[0], g, h, a, g2);
    } else {
      const int64_t top = s.row(depth) * K;
      backward_input<A, 1, WT, K, true>(layers[depth], g, h + top, a + top, g2);
      std::swap(g, g2);
      for (int64_t l = depth - 1; l >= 1; --l) {
        const int64_t r = s.row(l) * K;
        backward_input<A, WT, WT, K, true>(layers[l], g, h + r, a + r, g2);
        std::swap(g, g2);
      }
      backward_input<A, WT, 0, K, false>(layers[0], g, h, a, g2);
    }
    for (int k = 0; k < K; ++k) {
      const int64_t q = p0 + k * L;
      const int64_t cnt = lanes(n_pts, q);
      store(m + q, sign[k] * z[k], cnt);
      for (int64_t r = 0; r < n_in; ++r) store(gx + r * n_pts + q, g2[r * K + k], cnt);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The wide form: networks whose hidden layers are exactly L wide (16 with AVX-512, 8 with AVX2;
// is_wide says which). One vector holds one point's whole hidden layer (units in lanes), so a
// layer's weights stay in registers while the points stream past, each multiply-add reads a
// single broadcast float, and the weight gradients accumulate in registers with no lane sums
// left to do at the end. The point-major form above reads a vector from memory for every
// multiply-add and keeps an L-lane accumulator per weight. At (16, 4) with AVX-512 the wide
// form's gradient took 34 us a network and step against 40 us. Not for softplus, whose
// derivative needs the pre-activation, which this form does not keep.

constexpr int B = 64;               // points per block: a block's activations stay in L1
constexpr int R = L >= 16 ? 8 : 4;  // points interleaved in a layer's multiply-adds (registers)

// One level of a transposing add tree: lanes [c 2S, c 2S + S) of the result are the pairwise
// sums of the halves of a's lane block c (of 2S lanes), lanes [c 2S + S, c 2S + 2S) b's.
template <int S, size_t... I>
inline vf fold(vf a, vf b, std::index_sequence<I...>) {
  return __builtin_shufflevector(a, b, ((I % (2 * S)) < S ? int(I) : int(L + I - S))...) +
         __builtin_shufflevector(a, b, ((I % (2 * S)) < S ? int(I + S) : int(L + I))...);
}

// v: L vectors (overwritten). Returns r with r[q] = the sum of v[q]'s lanes.
template <int S = L / 2>
inline vf transpose_sum(vf* v) {
  for (int i = 0; i < S; ++i) v[i] = fold<S>(v[i], v[i + S], std::make_index_sequence<L>{});
  if constexpr (S > 1) return transpose_sum<S / 2>(v);
  return v[0];
}

// act'(a) from the output h alone (every activation but softplus): the values dact gives.
template <int64_t A>
inline vf dact_h(vf h) {
  if constexpr (A == kTanh) return 1.0f - h * h;
  if constexpr (A == kRelu) return h > 0.0f ? splat(1.0f) : splat(0.0f);
  if constexpr (A == kLeakyRelu) return h >= 0.0f ? splat(1.0f) : splat(0.01f);
  if constexpr (A == kSigmoid) return h * (1.0f - h);
  return splat(1.0f);
}

// Whether a network takes the wide form: measured (analysis/kernel_forms.py), it gains with
// every hidden-to-hidden layer (16 lanes: 1.05x at depth 2, 1.15-1.2x at 3-8; 8 lanes: 1.0x at
// 2, 1.03-1.07x at 3-8) and loses without one (0.9-0.95x at depth 1) and with 4 lanes (0.94x).
template <int64_t A>
inline bool is_wide(int64_t depth, const Layer* layers) {
  return A != kSoftplus && L >= 8 && depth >= 2 && layers[0].out == L;
}

// One network's weights as the wide form reads them, and its buffers (reused by the networks
// of a call). Columns of the kernels below the read-out: wc[col(l) + j] is column j of layer l
// (output units in lanes; layer 0 has n_in columns, the others L). Rows of the hidden kernels:
// wr[(l - 1) * L + i] is row i of layer l >= 1 (input units in lanes).
struct Wide {
  int64_t depth = 0, n_in = 0;
  std::vector<vf> wc, wr, bias;
  vf ro;        // the read-out's row
  float ro_b;   // and bias
  std::vector<vf> H, G, G2;  // (depth, B) activations of a block; (B) gradients of one layer
  std::vector<vf> C, Cb;     // weight-gradient sums, laid out like wc; bias-gradient sums
  std::vector<float> xb, z;  // a block's points (n_in, B) and logits (B)

  int64_t col(int64_t l) const { return l == 0 ? 0 : n_in + (l - 1) * L; }

  void of(int64_t depth_, int64_t n_in_, const Layer* layers) {
    depth = depth_;
    n_in = n_in_;
    wc.resize(n_in + (depth - 1) * L);
    wr.resize((depth - 1) * L);
    bias.resize(depth);
    for (int64_t l = 0; l < depth; ++l) {
      const Layer& ly = layers[l];
      for (int64_t j = 0; j < ly.in; ++j)
        for (int u = 0; u < L; ++u) wc[col(l) + j][u] = ly.w[u * ly.ld + j];
      if (l > 0)
        for (int i = 0; i < L; ++i) wr[(l - 1) * L + i] = load(ly.w + i * ly.ld, L);
      bias[l] = load(ly.b, L);
    }
    ro = load(layers[depth].w, L);
    ro_b = layers[depth].b[0];
    H.resize(depth * B);
    G.resize(B);
    G2.resize(B);
    xb.resize(n_in * B);
    z.resize(B);
  }

  // Block p0's points into xb, zeros past n_pts; returns how many are real.
  int64_t points(const float* x, int64_t n_pts, int64_t p0) {
    const int64_t m = std::min<int64_t>(B, n_pts - p0);
    for (int64_t r = 0; r < n_in; ++r) {
      std::memcpy(xb.data() + r * B, x + r * n_pts + p0, m * sizeof(float));
      std::fill(xb.data() + r * B + m, xb.data() + (r + 1) * B, 0.0f);
    }
    return m;
  }

  // The block in xb forward: H (each hidden layer's activations), z (the logits).
  template <int64_t A>
  void forward() {
    for (int64_t p = 0; p < B; ++p) {
      vf acc = bias[0];
      for (int64_t r = 0; r < n_in; ++r) acc += wc[r] * xb[r * B + p];
      H[p] = act<A>(acc);
    }
    for (int64_t l = 1; l < depth; ++l) {
      const vf* hin = H.data() + (l - 1) * B;
      vf* hout = H.data() + l * B;
      vf w[L];
      for (int j = 0; j < L; ++j) w[j] = wc[col(l) + j];
      for (int64_t p = 0; p < B; p += R) {
        vf a[R];
        for (int q = 0; q < R; ++q) a[q] = bias[l];
#pragma GCC unroll 16
        for (int j = 0; j < L; ++j)
          for (int q = 0; q < R; ++q) a[q] += w[j] * hin[p + q][j];
        for (int q = 0; q < R; ++q) hout[p + q] = a[q];
      }
      for (int64_t p = 0; p < B; ++p) hout[p] = act<A>(hout[p]);
    }
    const vf* top = H.data() + (depth - 1) * B;
    for (int64_t p = 0; p < B; p += L) {
      vf v[L];
      for (int q = 0; q < L; ++q) v[q] = ro * top[p + q];
      store(z.data() + p, transpose_sum(v) + ro_b, L);
    }
  }

  // G (the gradient of the top hidden layer's pre-activations, given the logits' gradients in
  // z) back to layer 0's: each layer's G is (W^T G) * act'. With `grads`, adds each hidden
  // layer's weight and bias gradients to C and Cb, and layer 0's too.
  template <int64_t A, bool grads>
  void backward() {
    const vf* top = H.data() + (depth - 1) * B;
    for (int64_t p = 0; p < B; ++p) G[p] = ro * z[p] * dact_h<A>(top[p]);
    vf* g = G.data();
    vf* g2 = G2.data();
    for (int64_t l = depth - 1; l >= 1; --l) {
      const vf* hin = H.data() + (l - 1) * B;
      if constexpr (grads) {
        vf c[L];  // dW[:, j]: output units in lanes
        for (int j = 0; j < L; ++j) c[j] = C[col(l) + j];
        vf cb = Cb[l];
        for (int64_t p = 0; p < B; ++p) {
          cb += g[p];
#pragma GCC unroll 16
          for (int j = 0; j < L; ++j) c[j] += g[p] * hin[p][j];
        }
        for (int j = 0; j < L; ++j) C[col(l) + j] = c[j];
        Cb[l] = cb;
      }
      vf w[L];
      for (int i = 0; i < L; ++i) w[i] = wr[(l - 1) * L + i];
      for (int64_t p = 0; p < B; p += R) {
        vf a[R];
        for (int q = 0; q < R; ++q) a[q] = splat(0.0f);
#pragma GCC unroll 16
        for (int i = 0; i < L; ++i)
          for (int q = 0; q < R; ++q) a[q] += w[i] * g[p + q][i];
        for (int q = 0; q < R; ++q) g2[p + q] = a[q] * dact_h<A>(hin[p + q]);
      }
      std::swap(g, g2);
    }
    if (g != G.data()) std::swap(G, G2);  // layer 0's gradient is in G
    if constexpr (grads) {
      for (int64_t r = 0; r <= n_in; ++r) {  // layer 0's weights, then its bias (r = n_in)
        const float* xr = xb.data() + r * B;
        vf c[4] = {};  // four sums: one would wait on each add before the next
        for (int64_t p = 0; p < B; p += 4)
          for (int q = 0; q < 4; ++q) c[q] += r < n_in ? G[p + q] * xr[p + q] : G[p + q];
        (r < n_in ? C[r] : Cb[0]) += (c[0] + c[1]) + (c[2] + c[3]);
      }
    }
  }
};

// net_grad in the wide form (is_wide).
template <int64_t A>
void net_grad_wide(int64_t depth, int64_t n_in, int64_t n_pts, const float* x, const float* y,
                   const Layer* layers, float* const* gw, float* const* gb, float* finite,
                   Wide& s) {
  s.of(depth, n_in, layers);
  s.C.assign(s.wc.size(), splat(0.0f));
  s.Cb.assign(depth, splat(0.0f));
  vf ro = splat(0.0f), ro_b = splat(0.0f), bad = splat(0.0f);
  const float inv_n = 1.0f / static_cast<float>(n_pts);
  float* z = s.z.data();
  for (int64_t p0 = 0; p0 < n_pts; p0 += B) {
    const int64_t m = s.points(x, n_pts, p0);
    s.forward<A>();
    // the loss: d mean(softplus(z) - y z) / dz = (sigmoid(z) - y) / n, into z (0 past m)
    for (int64_t p = 0; p < B; p += L) {
      const vf zv = load(z + p, L);
      bad += zv * 0.0f;  // NaN exactly where z is not finite
      const int64_t k = lanes(m, p);
      const vf g = (sigmoid_v(zv) - load(y + p0 + p, k)) * inv_n * present(k);
      ro_b += g;
      store(z + p, g, L);
    }
    const vf* top = s.H.data() + (depth - 1) * B;
    for (int64_t p = 0; p < B; p += 4) {  // the read-out's weight gradient, in four sums
      vf r[4];
      for (int q = 0; q < 4; ++q) r[q] = z[p + q] * top[p + q];
      ro += (r[0] + r[1]) + (r[2] + r[3]);
    }
    s.backward<A, true>();
  }
  for (int64_t l = 0; l < depth; ++l) {
    const Layer& ly = layers[l];
    for (int i = 0; i < L; ++i)
      for (int64_t j = 0; j < ly.in; ++j) gw[l][i * ly.ld + j] = s.C[s.col(l) + j][i];
    std::memcpy(gb[l], &s.Cb[l], sizeof(vf));
  }
  std::memcpy(gw[depth], &ro, sizeof(vf));
  gb[depth][0] = hsum(ro_b);
  *finite = hsum(bad) == 0.0f ? 1.0f : 0.0f;
}

// net_logits in the wide form.
template <int64_t A>
void net_logits_wide(int64_t depth, int64_t n_in, int64_t n_pts, const float* x,
                     const Layer* layers, float* z, Wide& s) {
  s.of(depth, n_in, layers);
  for (int64_t p0 = 0; p0 < n_pts; p0 += B) {
    const int64_t m = s.points(x, n_pts, p0);
    s.forward<A>();
    std::memcpy(z + p0, s.z.data(), m * sizeof(float));
  }
}

// net_margin_grad in the wide form.
template <int64_t A>
void net_margin_grad_wide(int64_t depth, int64_t n_in, int64_t n_pts, const float* x,
                          const float* y, const Layer* layers, float* m, float* gx, Wide& s) {
  s.of(depth, n_in, layers);
  for (int64_t p0 = 0; p0 < n_pts; p0 += B) {
    const int64_t cnt = s.points(x, n_pts, p0);
    s.forward<A>();
    for (int64_t p = 0; p < cnt; ++p) {
      const float sign = y[p0 + p] == 1.0f ? 1.0f : -1.0f;
      m[p0 + p] = sign * s.z[p];
      s.z[p] = sign;  // d m / d z
    }
    std::fill(s.z.begin() + cnt, s.z.end(), 0.0f);
    s.backward<A, false>();
    // the input gradient: row r of x's is column r of layer 0 against G, point by point
    for (int64_t r = 0; r < n_in; ++r) {
      for (int64_t p = 0; p < B; p += L) {
        vf v[L];
        for (int q = 0; q < L; ++q) v[q] = s.wc[r] * s.G[p + q];
        store(gx + r * n_pts + p0 + p, transpose_sum(v), lanes(cnt, p));
      }
    }
  }
}

#ifndef SWEEPNET_K
#define SWEEPNET_K 8
#endif
constexpr int K = SWEEPNET_K;

// Hidden widths compiled with their width fixed (a bucket's padded width); others are generic.
#define SWEEPNET_WIDTHS(CALL)                                                      \
  switch (depth ? layers[0].out : 0) {                                             \
    case 1: return CALL(1); case 2: return CALL(2); case 3: return CALL(3);        \
    case 4: return CALL(4); case 5: return CALL(5); case 6: return CALL(6);        \
    case 8: return CALL(8); case 16: return CALL(16); default: return CALL(0);     \
  }

template <int64_t A>
void net_grad_any(int64_t depth, int64_t n_in, int64_t n_pts, const float* x, const float* y,
                  const Layer* layers, float* const* gw, float* const* gb, float* finite,
                  Scratch& s, Wide& wide) {
  if (is_wide<A>(depth, layers))
    return net_grad_wide<A>(depth, n_in, n_pts, x, y, layers, gw, gb, finite, wide);
#define SWEEPNET_CALL(W) net_grad<A, W, K>(depth, n_in, n_pts, x, y, layers, gw, gb, finite, s)
  SWEEPNET_WIDTHS(SWEEPNET_CALL)
#undef SWEEPNET_CALL
}

// The separation metrics run once a network, after training: the generic width serves them
// (fixed widths for this entry point were a third of the build time for no measurable gain).
template <int64_t A>
void net_margin_grad_any(int64_t depth, int64_t n_in, int64_t n_pts, const float* x,
                         const float* y, const Layer* layers, float* m, float* gx, Scratch& s,
                         Wide& wide) {
  if (is_wide<A>(depth, layers))
    return net_margin_grad_wide<A>(depth, n_in, n_pts, x, y, layers, m, gx, wide);
  net_margin_grad<A, 0, K>(depth, n_in, n_pts, x, y, layers, m, gx, s);
}

template <int64_t A>
void net_logits_any(int64_t depth, int64_t n_in, int64_t n_pts, const float* x,
                    const Layer* layers, float* z, Scratch& s, Wide& wide) {
  if (is_wide<A>(depth, layers)) return net_logits_wide<A>(depth, n_in, n_pts, x, layers, z, wide);
#define SWEEPNET_CALL(W) net_logits<A, W, K>(depth, n_in, n_pts, x, layers, z, s)
  SWEEPNET_WIDTHS(SWEEPNET_CALL)
#undef SWEEPNET_CALL
}

// Flat offsets, in elements, of the networks' blocks of an operand whose leading dims broadcast
// against the batch shape `batch` (each leading dim is the batch's or 1).
bool batch_offsets(ffi::AnyBuffer::Dimensions dims, int64_t core, const std::vector<int64_t>& batch,
                   std::vector<int64_t>& out) {
  int64_t nb = batch.size();
  if (static_cast<int64_t>(dims.size()) != nb + core) return false;
  int64_t block = 1;
  for (int64_t k = nb; k < nb + core; ++k) block *= dims[k];
  std::vector<int64_t> stride(nb);
  int64_t s = block;
  for (int64_t k = nb - 1; k >= 0; --k) {
    if (dims[k] != batch[k] && dims[k] != 1) return false;
    stride[k] = dims[k] == 1 ? 0 : s;
    s *= dims[k];
  }
  int64_t total = 1;
  for (auto b : batch) total *= b;
  out.assign(total, 0);
  for (int64_t n = 0; n < total; ++n) {
    int64_t rem = n, o = 0;
    for (int64_t k = nb - 1; k >= 0; --k) {
      o += (rem % batch[k]) * stride[k];
      rem /= batch[k];
    }
    out[n] = o;
  }
  return true;
}

// The batch of operands: x, info and the padded layers' kernels and biases.
struct Operands {
  int64_t depth = 0, n_in = 0, n_pts = 0, width = 0, total = 1, nb = 0;  // padded depth, width
  std::vector<int64_t> batch, xo, io;
  const float* x = nullptr;
  const int32_t* info = nullptr;
  std::vector<std::vector<int64_t>> wo, bo;
  std::vector<const float*> wbase, bbase;
  std::vector<Layer> layers;  // network n's real layers (set by at)

  // Network n's real layers (hidden 0..d-1, then the read-out) and its activation; false if its
  // info is out of range.
  bool at(int64_t n, int64_t& act) {
    const int32_t* inf = info + io[n];
    const int64_t w = inf[0], d = inf[1];
    act = inf[2];
    if (w < 1 || w > width || d < 1 || d > depth) return false;
    layers.resize(d + 1);
    for (int64_t l = 0; l <= d; ++l) {
      const int64_t src = l < d ? l : depth;  // the read-out is the last padded layer
      Layer& ly = layers[l];
      ly.out = l < d ? w : 1;
      ly.in = l == 0 ? n_in : w;
      ly.ld = src == 0 ? n_in : width;
      ly.w = wbase[src] + wo[src][n];
      ly.b = bbase[src] + bo[src][n];
    }
    return true;
  }
};

// Reads x (operand 0), info (operand `first` - 1) and the padded layers (from operand `first`),
// for the batch dims `batch`.
ffi::Error parse(ffi::RemainingArgs& args, int64_t first, int64_t depth,
                 const std::vector<int64_t>& batch, Operands& o) {
  const int64_t n_layers = depth + 1;
  o.depth = depth;
  o.batch = batch;
  o.nb = batch.size();
  for (auto b : batch) o.total *= b;
  if (depth < 1 || static_cast<int64_t>(args.size()) != first + 2 * n_layers)
    return ffi::Error::InvalidArgument("sweepnet fused: wrong number of operands");
  auto x_r = args.get<ffi::AnyBuffer>(0);
  if (!x_r.has_value()) return x_r.error();
  auto xd = x_r->dimensions();
  if (static_cast<int64_t>(xd.size()) != o.nb + 2 || !batch_offsets(xd, 2, batch, o.xo))
    return ffi::Error::InvalidArgument("sweepnet fused: x dims");
  o.n_in = xd[o.nb];
  o.n_pts = xd[o.nb + 1];
  o.x = x_r->typed_data<float>();
  auto i_r = args.get<ffi::AnyBuffer>(first - 1);
  if (!i_r.has_value() || i_r->element_type() != ffi::DataType::S32 ||
      !batch_offsets(i_r->dimensions(), 1, batch, o.io) || i_r->dimensions()[o.nb] != 3)
    return ffi::Error::InvalidArgument("sweepnet fused: info must be int32 (..., 3)");
  o.info = i_r->typed_data<int32_t>();
  o.wo.resize(n_layers);
  o.bo.resize(n_layers);
  o.wbase.resize(n_layers);
  o.bbase.resize(n_layers);
  int64_t prev = o.n_in;
  for (int64_t l = 0; l < n_layers; ++l) {
    auto w_r = args.get<ffi::AnyBuffer>(first + 2 * l);
    auto b_r = args.get<ffi::AnyBuffer>(first + 2 * l + 1);
    if (!w_r.has_value() || !b_r.has_value())
      return ffi::Error::InvalidArgument("sweepnet fused: bad layer operand");
    auto wd = w_r->dimensions();
    if (static_cast<int64_t>(wd.size()) != o.nb + 2)
      return ffi::Error::InvalidArgument("sweepnet fused: kernel rank");
    if (wd[o.nb + 1] != prev || (l == depth ? wd[o.nb] != 1 : l > 0 && wd[o.nb] != prev))
      return ffi::Error::InvalidArgument("sweepnet fused: layer shapes do not chain");
    prev = wd[o.nb];
    if (l == 0) o.width = wd[o.nb];
    if (!batch_offsets(wd, 2, batch, o.wo[l]) || !batch_offsets(b_r->dimensions(), 1, batch, o.bo[l]))
      return ffi::Error::InvalidArgument("sweepnet fused: parameter batch dims");
    o.wbase[l] = w_r->typed_data<float>();
    o.bbase[l] = b_r->typed_data<float>();
  }
  return ffi::Error::Success();
}

const ffi::Error kBadInfo =
    ffi::Error::InvalidArgument("sweepnet fused: a network's width, depth or activation");

#define SWEEPNET_ACTIVATIONS(CASE)                                              \
  switch (act) {                                                                \
    CASE(kTanh) CASE(kRelu) CASE(kLeakyRelu) CASE(kSigmoid) CASE(kLinear) CASE(kSoftplus) \
    default: return kBadInfo;                                                   \
  }

// Operands x, y, info, then (kernel, bias) per padded layer; results the gradient of each, then
// finite.
ffi::Error GradImpl(ffi::RemainingArgs args, ffi::RemainingRets rets, int64_t depth) {
  const int64_t n_layers = depth + 1;
  if (static_cast<int64_t>(rets.size()) != 2 * n_layers + 1)
    return ffi::Error::InvalidArgument("sweepnet fused: wrong number of results");
  auto finite_r = rets.get<ffi::AnyBuffer>(2 * n_layers);
  if (!finite_r.has_value()) return finite_r.error();
  ffi::AnyBuffer finite = **finite_r;
  std::vector<int64_t> batch(finite.dimensions().begin(), finite.dimensions().end());
  Operands o;
  if (auto e = parse(args, 3, depth, batch, o); !e.success()) return e;
  auto y_r = args.get<ffi::AnyBuffer>(1);
  std::vector<int64_t> yo;
  if (!y_r.has_value() || !batch_offsets(y_r->dimensions(), 1, batch, yo) ||
      y_r->dimensions()[o.nb] != o.n_pts)
    return ffi::Error::InvalidArgument("sweepnet fused: y dims");
  const float* y = y_r->typed_data<float>();
  std::vector<float*> gwbase(n_layers), gbbase(n_layers), gw(n_layers), gb(n_layers);
  std::vector<int64_t> wsize(n_layers), bsize(n_layers);
  for (int64_t l = 0; l < n_layers; ++l) {
    auto gw_r = rets.get<ffi::AnyBuffer>(2 * l);
    auto gb_r = rets.get<ffi::AnyBuffer>(2 * l + 1);
    if (!gw_r.has_value() || !gb_r.has_value())
      return ffi::Error::InvalidArgument("sweepnet fused: bad result");
    gwbase[l] = (*gw_r)->typed_data<float>();
    gbbase[l] = (*gb_r)->typed_data<float>();
    wsize[l] = (*gw_r)->element_count() / o.total;
    bsize[l] = (*gb_r)->element_count() / o.total;
  }
  float* fin = finite.typed_data<float>();
  Scratch scratch;
  Wide wide;
  for (int64_t n = 0; n < o.total; ++n) {
    int64_t act;
    if (!o.at(n, act)) return kBadInfo;
    const int64_t d = static_cast<int64_t>(o.layers.size()) - 1;
    // padded entries and padded layers get exact zeros; the real block is written below
    for (int64_t l = 0; l < n_layers; ++l) {
      std::fill_n(gwbase[l] + n * wsize[l], wsize[l], 0.0f);
      std::fill_n(gbbase[l] + n * bsize[l], bsize[l], 0.0f);
    }
    for (int64_t l = 0; l <= d; ++l) {
      const int64_t src = l < d ? l : depth;
      gw[l] = gwbase[src] + n * wsize[src];
      gb[l] = gbbase[src] + n * bsize[src];
    }
    const float* xn = o.x + o.xo[n];
    const float* yn = y + yo[n];
    const Layer* ly = o.layers.data();
#define SWEEPNET_CASE(ID) \
    case ID: net_grad_any<ID>(d, o.n_in, o.n_pts, xn, yn, ly, gw.data(), gb.data(), fin + n, \
                              scratch, wide); break;
    SWEEPNET_ACTIVATIONS(SWEEPNET_CASE)
#undef SWEEPNET_CASE
  }
  return ffi::Error::Success();
}

// Operands x, info, then (kernel, bias) per padded layer; result the logits z (..., P).
ffi::Error LogitsImpl(ffi::RemainingArgs args, ffi::RemainingRets rets, int64_t depth) {
  if (rets.size() != 1) return ffi::Error::InvalidArgument("sweepnet fused: one result");
  auto z_r = rets.get<ffi::AnyBuffer>(0);
  if (!z_r.has_value()) return z_r.error();
  ffi::AnyBuffer z = **z_r;
  auto zd = z.dimensions();
  std::vector<int64_t> batch(zd.begin(), zd.end() - 1);
  Operands o;
  if (auto e = parse(args, 2, depth, batch, o); !e.success()) return e;
  if (zd[o.nb] != o.n_pts) return ffi::Error::InvalidArgument("sweepnet fused: z dims");
  float* zp = z.typed_data<float>();
  Scratch scratch;
  Wide wide;
  for (int64_t n = 0; n < o.total; ++n) {
    int64_t act;
    if (!o.at(n, act)) return kBadInfo;
    const int64_t d = static_cast<int64_t>(o.layers.size()) - 1;
    const float* xn = o.x + o.xo[n];
    const Layer* ly = o.layers.data();
#define SWEEPNET_CASE(ID) \
    case ID: net_logits_any<ID>(d, o.n_in, o.n_pts, xn, ly, zp + n * o.n_pts, scratch, wide); \
      break;
    SWEEPNET_ACTIVATIONS(SWEEPNET_CASE)
#undef SWEEPNET_CASE
  }
  return ffi::Error::Success();
}

// Operands x, y (labels as floats), info, then (kernel, bias) per padded layer; results the
// signed margins m (..., P) and their input gradients g (..., in, P) (the separation metrics).
ffi::Error MarginGradImpl(ffi::RemainingArgs args, ffi::RemainingRets rets, int64_t depth) {
  if (rets.size() != 2) return ffi::Error::InvalidArgument("sweepnet fused: two results");
  auto m_r = rets.get<ffi::AnyBuffer>(0);
  auto g_r = rets.get<ffi::AnyBuffer>(1);
  if (!m_r.has_value()) return m_r.error();
  if (!g_r.has_value()) return g_r.error();
  auto md = (*m_r)->dimensions();
  std::vector<int64_t> batch(md.begin(), md.end() - 1);
  Operands o;
  if (auto e = parse(args, 3, depth, batch, o); !e.success()) return e;
  auto y_r = args.get<ffi::AnyBuffer>(1);
  std::vector<int64_t> yo;
  if (!y_r.has_value() || !batch_offsets(y_r->dimensions(), 1, batch, yo) ||
      y_r->dimensions()[o.nb] != o.n_pts || md[o.nb] != o.n_pts)
    return ffi::Error::InvalidArgument("sweepnet fused: y or m dims");
  const float* y = y_r->typed_data<float>();
  float* mp = (*m_r)->typed_data<float>();
  float* gp = (*g_r)->typed_data<float>();
  Scratch scratch;
  Wide wide;
  for (int64_t n = 0; n < o.total; ++n) {
    int64_t act;
    if (!o.at(n, act)) return kBadInfo;
    const int64_t d = static_cast<int64_t>(o.layers.size()) - 1;
    const float* xn = o.x + o.xo[n];
    const float* yn = y + yo[n];
    float* mn = mp + n * o.n_pts;
    float* gn = gp + n * o.n_in * o.n_pts;
    const Layer* ly = o.layers.data();
#define SWEEPNET_CASE(ID) \
    case ID: net_margin_grad_any<ID>(d, o.n_in, o.n_pts, xn, yn, ly, mn, gn, scratch, wide); \
      break;
    SWEEPNET_ACTIVATIONS(SWEEPNET_CASE)
#undef SWEEPNET_CASE
  }
  return ffi::Error::Success();
}

}  // namespace

#define SWEEPNET_BIND \
  ffi::Ffi::Bind().RemainingArgs().RemainingRets().Attr<int64_t>("depth")
XLA_FFI_DEFINE_HANDLER_SYMBOL(SweepnetGrad, GradImpl, SWEEPNET_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SweepnetLogits, LogitsImpl, SWEEPNET_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SweepnetMarginGrad, MarginGradImpl, SWEEPNET_BIND);
