//! Finds devices: the soft devices in the data directory (and, later, readers and keys).
