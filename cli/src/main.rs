//! ukey
fn main() {}
