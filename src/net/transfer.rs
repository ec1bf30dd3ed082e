//! Archive download from providers (written by the transfer engineer).
