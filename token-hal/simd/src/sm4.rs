//! SM4 kernels (filled in by the SM4 work of issue 8).
