//! X.509 certificates: reading, summaries for `cert show`, self-signed certificates for new keys.
