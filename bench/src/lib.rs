//! Benchmark tools for switchyard (binaries only): `loadgen` and `bench-upstream`.
