// The fused kernel's point-major form (included by fused_grad.cc): a vector holds one unit at
// L points; K blocks of L points at a time go forward through every layer, through the loss
// and back. Any network takes it (the wide form, wide.h, takes some).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "simd.h"

namespace {

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

}  // namespace
