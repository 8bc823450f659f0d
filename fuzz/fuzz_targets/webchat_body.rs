//! `POST /v1/webchat/messages` bodies through the widget's validator: never a panic; an
//! accepted body always yields a message within the documented limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zengine_domain::channel::webchat::{MAX_TEXT_BYTES, normalize};

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = normalize(data, "fuzz-key") {
        assert!(parsed.message.text.len() <= MAX_TEXT_BYTES);
        assert_eq!(parsed.message.message_id, "fuzz-key");
        if let Some(l) = parsed.message.location {
            assert!((-90.0..=90.0).contains(&l.lat) && (-180.0..=180.0).contains(&l.lon));
        }
    }
});
