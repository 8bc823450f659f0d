//! Security: see mod.rs.
