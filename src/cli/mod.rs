//! The `ggen-p2p` command line. (Being written.)
