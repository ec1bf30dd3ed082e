//! The blob store and the SQLite index. (Being written.)
