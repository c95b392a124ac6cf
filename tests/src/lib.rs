//! Black-box tests of ukey live in tests/tests/.
