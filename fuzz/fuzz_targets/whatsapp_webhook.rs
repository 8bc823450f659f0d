//! WhatsApp Cloud API / 360dialog webhook bodies (same Cloud envelope) through the pure parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zengine_domain::channel::whatsapp::parse_webhook(data);
});
