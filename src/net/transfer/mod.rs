//! Archive download from providers (written by the transfer engineer on branch `transfer`; placeholder so this branch compiles).
