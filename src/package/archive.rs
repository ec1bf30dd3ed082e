//! Deterministic archives (tar + zstd) and safe unpacking. (Being written.)
