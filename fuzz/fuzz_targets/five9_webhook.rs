//! Five9 Digital Engagement webhook bodies through the pure parser (credentials and the IP
//! allowlist are checked before it, in the activities): never a panic; a message always has a
//! contact, a `five9:` id and text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zengine_domain::channel::chat::ChatItem;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = zengine_domain::channel::five9::parse_webhook(data) {
        for item in items {
            if let ChatItem::Message {
                contact, message, ..
            } = item
            {
                assert!(!contact.is_empty());
                assert!(message.message_id.starts_with("five9:"));
                assert!(!message.text.is_empty());
            }
        }
    }
});
