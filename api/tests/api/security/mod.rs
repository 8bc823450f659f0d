//! The security suite: each attack of the tenant-boundary review (issue 18), sent the way an
//! attacker would send it, against the real API, worker, Temporal and database. Every test here
//! failed on the code before its fix.

mod anonymous;
mod api_keys;
mod query;
mod secrets;
mod ssrf;
