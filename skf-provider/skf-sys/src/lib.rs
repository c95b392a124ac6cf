//! GM/T 0016 (SKF) C types and constants.
