"""Time the fused CPU kernel's two forms of a network's gradient against each other, one core.

Usage: python analysis/kernel_forms.py [--shapes 16x4,8x4,4x4] [--march native,x86-64-v3,x86-64]
                                       [--out DIR]

``kernel/fused_grad.cc`` has a point-major form (a vector holds one unit at L points) and
a wide form (a vector holds all L units of one point, for networks whose hidden width is the
target's L floats: 16 with AVX-512, 8 with AVX2, 4 with SSE or NEON). This builds a small C++
driver around that very source for each ``-march``, and for each shape whose width is the
target's L times both forms on the bench's batch (512 points, tanh), best of 9 repeats of a
few hundred gradients, after checking that they agree. Writes ``kernel_forms.md`` to ``--out``.
The last column is the form the kernel takes (``is_wide``); these figures are its evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import jax

from sweepnet.kernel import build as kernel_build

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")

DRIVER = r"""
#include SOURCE
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

// net_grad with the hidden width fixed at compile time (what net_grad_any picks).
template <int W>
void point_major(int64_t d, int64_t n_in, int64_t P, const float* x, const float* y,
                 const Layer* ly, float* const* gw, float* const* gb, float* f, Scratch& s) {
  net_grad<kTanh, W, K>(d, n_in, P, x, y, ly, gw, gb, f, s);
}

int main(int argc, char** argv) {
  const int W = std::stoi(argv[1]), D = std::stoi(argv[2]), n_in = 2, P = 512;
  std::mt19937 rng(0);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(n_in * P), y(P);
  for (auto& v : x) v = nd(rng);
  for (int i = 0; i < P; ++i) y[i] = x[i] * x[i] + x[P + i] * x[P + i] < 1.0f;
  std::vector<std::vector<float>> w, b, gw, gb;
  std::vector<Layer> layers;
  std::vector<float*> gwp, gbp;
  for (int l = 0; l <= D; ++l) {
    const int out = l < D ? W : 1, in = l ? W : n_in;
    w.emplace_back(out * in), b.emplace_back(out), gw.emplace_back(out * in), gb.emplace_back(out);
    for (auto& v : w.back()) v = nd(rng) / std::sqrt(float(in));
    for (auto& v : b.back()) v = 0.1f * nd(rng);
  }
  for (int l = 0; l <= D; ++l) {
    layers.push_back(Layer{int64_t(gb[l].size()), l ? W : n_in, l ? W : n_in, w[l].data(),
                           b[l].data()});
    gwp.push_back(gw[l].data()), gbp.push_back(gb[l].data());
  }
  auto flat = [&] {
    std::vector<float> r;
    for (int l = 0; l <= D; ++l) r.insert(r.end(), gw[l].begin(), gw[l].end());
    return r;
  };
  Scratch s;
  Wide wide;
  float fin;
  auto pm = W == 16 ? point_major<16> : W == 8 ? point_major<8> : W == 4 ? point_major<4>
                                                                            : point_major<0>;
  pm(D, n_in, P, x.data(), y.data(), layers.data(), gwp.data(), gbp.data(), &fin, s);
  const auto a = flat();
  const bool applies = W == L;  // the wide form computes any such network; is_wide picks it
  double diff = 0;
  if (applies) {
    net_grad_wide<kTanh>(D, n_in, P, x.data(), y.data(), layers.data(), gwp.data(), gbp.data(),
                         &fin, wide);
    const auto c = flat();
    for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, double(std::fabs(a[i] - c[i])));
  }
  const int iters = std::max(50, 200000 / (W * W * D + 1));
  double t_pm = 1e30, t_wide = 1e30;
  for (int rep = 0; rep < 9; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i)
      pm(D, n_in, P, x.data(), y.data(), layers.data(), gwp.data(), gbp.data(), &fin, s);
    auto t1 = std::chrono::steady_clock::now();
    if (applies)
      for (int i = 0; i < iters; ++i)
        net_grad_wide<kTanh>(D, n_in, P, x.data(), y.data(), layers.data(), gwp.data(),
                             gbp.data(), &fin, wide);
    auto t2 = std::chrono::steady_clock::now();
    t_pm = std::min(t_pm, std::chrono::duration<double, std::micro>(t1 - t0).count() / iters);
    t_wide = std::min(t_wide, std::chrono::duration<double, std::micro>(t2 - t1).count() / iters);
  }
  std::printf("{\"lanes\": %d, \"point_major_us\": %.3f, \"wide_us\": %s, \"max_diff\": %.3g, "
              "\"taken\": %s}\n", L, t_pm, applies ? std::to_string(t_wide).c_str() : "null",
              diff, is_wide<kTanh>(D, layers.data()) ? "true" : "false");
}
"""


def build(march: str, folder: str) -> str:
    """The driver built for ``-march=march``; returns its path."""
    src = os.path.join(folder, "driver.cc")
    with open(src, "w") as f:
        f.write(DRIVER.replace("SOURCE", json.dumps(kernel_build.SOURCE)))
    exe = os.path.join(folder, f"driver-{march}")
    cxx = kernel_build.compiler()
    if cxx is None:
        raise SystemExit("kernel_forms: no C++ compiler (set CXX)")
    flags = [f for f in kernel_build.flags(march) if f not in ("-fPIC", "-shared")]
    subprocess.run([*cxx, *flags, "-I", jax.ffi.include_dir(), src, "-o", exe], check=True)
    return exe


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="16x4,8x4,4x4", help="comma-separated WIDTHxDEPTH")
    p.add_argument("--march", default="native,x86-64-v3,x86-64",
                   help="comma-separated -march values")
    p.add_argument("--out", default=OUT)
    a = p.parse_args(argv)
    try:
        shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]
        assert all(len(s) == 2 and min(s) > 0 for s in shapes)
    except (ValueError, AssertionError):
        print(f"kernel_forms: --shapes: expected WIDTHxDEPTH,..., got {a.shapes!r}",
              file=sys.stderr)
        return 2
    lines = ["# The fused kernel's gradient forms, one core (`python analysis/kernel_forms.py`)",
             "", f"load average {os.getloadavg()[0]:.1f}; 512 points, tanh; us a network and "
             "step, best of 9", "", "| -march | lanes | shape | point-major | wide | speed-up |"
             " max diff | the kernel takes |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="sweepnet-forms-") as tmp:
        for march in a.march.split(","):
            exe = build(march, tmp)
            for w, d in shapes:
                r = json.loads(subprocess.run([exe, str(w), str(d)], check=True,
                                              capture_output=True, text=True).stdout)
                wide = r["wide_us"]
                taken = "wide" if r["taken"] else "point-major"
                row = (f"| {march} | {r['lanes']} | ({w}, {d}) | {r['point_major_us']:.2f} | "
                       + (f"{wide:.2f} | {r['point_major_us'] / wide:.2f}x | {r['max_diff']:.1e} |"
                          if wide is not None else "n/a (width is not the lanes) | | |")
                       + f" {taken} |")
                print(row, flush=True)
                lines.append(row)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "kernel_forms.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
