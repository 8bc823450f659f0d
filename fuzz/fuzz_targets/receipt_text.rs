//! Receipt field extraction from OCR page text, and the amount-line parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = zengine_domain::receipt::extract(text);
        for line in text.lines() {
            let _ = zengine_domain::receipt::parse_amount_line(line);
        }
    }
});
