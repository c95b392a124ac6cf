//! libukey_pkcs11.so
