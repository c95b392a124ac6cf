//! SM3 kernels (filled in by the SM3 work of issue 8).
