//! Benchmark tools for sluicegate (binaries only): `loadgen` and `bench-upstream`.
