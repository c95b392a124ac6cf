//! libukey_skf.so
