//! The `X-Hub-Signature-256` header parser and the constant-time comparison.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zengine_domain::channel::whatsapp::{constant_time_eq, parse_signature_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(mac) = parse_signature_header(text) {
            assert!(constant_time_eq(&mac, &mac));
        }
    }
});
