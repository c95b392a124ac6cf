//! The soft token: an encrypted SQLite store, one database per device.
