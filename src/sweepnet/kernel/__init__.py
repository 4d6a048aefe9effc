"""The fused CPU gradient: a C++ kernel built on the user's machine and called through XLA's FFI."""
