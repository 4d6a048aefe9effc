// The fused kernel's wide form (included by fused_grad.cc): a vector holds one point's whole
// hidden layer, for networks whose hidden layers are exactly L wide (see below).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "point_major.h"
#include "simd.h"

namespace {

// ---------------------------------------------------------------------------------------------
// The wide form: networks whose hidden layers are exactly L wide (16 with AVX-512, 8 with AVX2;
// is_wide says which). One vector holds one point's whole hidden layer (units in lanes), so a
// layer's weights stay in registers while the points stream past, each multiply-add reads a
// single broadcast float, and the weight gradients accumulate in registers with no lane sums
// left to do at the end. The point-major form (point_major.h) reads a vector from memory for
// every multiply-add and keeps an L-lane accumulator per weight. At (16, 4) with AVX-512 the wide
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

}  // namespace
