// sweepnet's fused CPU gradient (built by sweepnet/kernel/build.py, called by kernel/ops.py).
//
// For a batch of MLPs with one output logit, the gradient of the mean binary cross-entropy
// with respect to every kernel and bias, in one pass over the points: L points at a time (one
// vector register of the target: 16 floats with AVX-512, 8 with AVX2, 4 with SSE or NEON) go
// forward through every layer, through the loss, and back, in registers, and the weight
// gradients are summed lane by lane. A network with two or more hidden layers of width L (16
// or 8) takes the wide form instead (wide.h): a vector holds one point's whole hidden layer.
// XLA's CPU backend runs the same step as a dozen small kernels a layer (tiny batched dots,
// reductions), each with its own overhead.
//
// Each network of a batch has its own real width, depth and activation (operand `info`, int32
// (..., 3): width, depth, activation id): the kernel computes only the real network inside the
// program's padded parameter arrays, so padding costs next to nothing, and writes exact zeros
// into the gradient of every padded entry and every padded layer (a padded layer is the
// identity in the model, see sweepnet/sweep/models.py).
//
// Three targets (sweepnet/kernel/ops.py registers them):
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

// The kernel's arithmetic, in this order: vectors and activations, the point-major form, the
// wide form (quoted includes: found beside this file). Below: which form a network takes, the
// operands, and the three handlers.
#include "simd.h"
#include "point_major.h"
#include "wide.h"

namespace {

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
