//! Amazon Connect chat streaming SNS notifications through the pure parser (the SNS signature
//! is verified before it, in the activities): never a panic; a message always has a contact
//! and a `connect:` id.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zengine_domain::channel::chat::ChatItem;

fuzz_target!(|data: &[u8]| {
    if let Ok(ChatItem::Message {
        contact, message, ..
    }) = zengine_domain::channel::connect::parse_notification(data)
    {
        assert!(!contact.is_empty());
        assert!(message.message_id.starts_with("connect:"));
    }
});
