"""The bench's results in words: the table of :func:`sweepnet.bench.suite.run`, the lines on
:func:`sweepnet.bench.workers.rerun` and the line on the gradient each shape trained with."""

from __future__ import annotations

from sweepnet.core.words import plural


def gradient_line(g: dict) -> str:
    """One line on the default gradient timed against each forced (``suite``'s ``forced_gradients``
    result): which ``sweepnet run`` picked, each rate, and which won by how much."""
    fast, slow = (g["fused"], g["xla"]) if g["won"] == "fused" else (g["xla"], g["fused"])
    return (f"at N={g['n']}: sweepnet run picks {g['default']} ({g['default_rate']:.4g} "
            f"net-steps/s); forced, the kernel {g['fused']:.4g} and XLA's gradient "
            f"{g['xla']:.4g}: {'the kernel' if g['won'] == 'fused' else 'XLA'} won "
            f"({fast / slow:.2f}x)")


def format_rerun(result: dict) -> str:
    """A few lines on :func:`~sweepnet.bench.workers.rerun`'s result."""
    c, w = result["cold"], result["warm"]
    return "\n".join([
        f"{result['spec']}: {plural(c['networks'], 'network')}",
        f"  cold run (empty caches): {c['wall_s']:.0f} s wall, "
        f"{plural(c['compiles'], 'compile')}, {c['compile_s']:.1f} s compiling",
        f"  warm re-run (new results folder): {w['wall_s']:.0f} s wall, "
        f"{plural(w['compiles'], 'program')} "
        f"({w['loaded']} loaded from the program cache), {w['compile_s']:.1f} s compiling = "
        f"{result['warm_compile_share']:.1%} of the cold compile time"])


def format_table(result: dict) -> str:
    """A plain-text table of :func:`~sweepnet.bench.suite.run`'s result."""
    b = result["bound"]
    lines = [
        f"sweepnet bench ({'quick' if result['quick'] else 'full'}): disk_annulus, tanh, adam, "
        f"full batch {result['batch']}, {result['steps']} steps, eval every "
        f"{result['eval_every']} on {result['n_test']} probe points",
        f"{result['backend']}, {plural(result['devices'], 'device')}, "
        f"{plural(result['cpus'], 'cpu')}, jax "
        f"{result['jax']}; load average {result['load_before']:.1f} before, "
        f"{result['load_after']:.1f} after",
        f"machine bound: matmul {b['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, tanh "
        f"{b['tanh_per_s'] / 1e9:.2f} G/s (all devices, in cache)",
        f"training gradient (what sweepnet run picks here): {result.get('gradient', 'xla')}",
        "",
        f"{'w':>3} {'d':>2} {'N':>6} {'net-steps/s':>12} {'e2e':>10} {'compile':>8} "
        f"{'x loop':>7} {'x scan':>7} {'bound':>6} {'peak MB':>8}",
    ]
    for wl in result["workloads"]:
        for r in wl["sizes"]:
            lines.append(
                f"{wl['width']:>3} {wl['depth']:>2} {r['n']:>6} {r['net_steps_per_s']:>12.4g} "
                f"{r['net_steps_per_s_e2e']:>10.4g} {r['compile_s']:>7.1f}s "
                f"{r['vs_loop']:>7.1f} {r['vs_scan']:>7.1f} {r['bound_fraction']:>6.1%} "
                f"{r['maxrss_mb']:>8.0f}")
        spread = wl["spread"]
        torch = wl.get("torch")
        lines.append(
            f"{'':>6} baselines: loop {wl['loop']['net_steps_per_s']:.4g}, scan "
            f"{wl['scan']['net_steps_per_s']:.4g}, torch.func ensemble "
            + (f"{torch['net_steps_per_s']:.4g}" if torch else "(torch not installed)")
            + f" net-steps/s; end to end at N={wl['ref_n']} (one-offs included): "
            f"{wl['e2e_vs_loop']:.1f}x loop, {wl['e2e_vs_scan']:.1f}x scan"
            + (f", {wl['e2e_vs_torch']:.1f}x torch.func" if torch else "")
            + (f"; throughput spread N>=1024 {spread:.1%}" if spread is not None else ""))
        if g := wl.get("gradients"):
            lines.append(f"{'':>6} gradient {gradient_line(g)}")
    dv = result["device_scaling"]
    lines.append("")
    lines.append(f"devices (w{dv['width']} d{dv['depth']}, N={dv['n']}): 1 device "
                 f"{dv['one']:.4g}, {dv['many_devices']} devices {dv['many']:.4g} net-steps/s "
                 f"= {dv['speedup']:.2f}x")
    return "\n".join(lines)

