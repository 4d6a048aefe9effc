"""The fused CPU gradient: a C++ kernel built on the user's machine and called through XLA's FFI.

    choice    whether a bucket trains with the kernel: the questions the engine asks
    verdict   where the kernel measured faster than XLA's gradient on this machine
    build     compile ``fused_grad.cc`` on this machine, keep it in the cache, load it
    ops       the kernel's three operations as jax calls (gradient, logits, margins)

The C++: ``fused_grad.cc`` (operands and the XLA FFI handlers) includes ``simd.h`` (vectors,
activations), ``point_major.h`` (the form every network can take) and ``wide.h`` (the form
for hidden layers exactly one vector wide).
"""
