//! The provider that the free functions dispatch through.

/// The process-wide provider.
pub fn provider() {}
