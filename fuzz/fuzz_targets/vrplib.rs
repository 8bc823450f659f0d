//! CVRPLIB/VRPLIB instance reader.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = zengine_solver::read::parse_vrplib(text);
        let _ = zengine_solver::read::parse_instance(text);
    }
});
