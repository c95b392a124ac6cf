//! Unit tests of the soft token.
