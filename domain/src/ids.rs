//! Identifiers: tenants, channels, sessions, conversations and idempotency keys.
//!
//! Workflow ids are built from business keys by exactly one helper per workflow kind
//! ([`ConversationId::workflow_id`]) and parsed back by its inverse, so a log line or the
//! Temporal UI always tells which tenant and contact a workflow belongs to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} may only contain {allowed}")]
    BadCharacter {
        what: &'static str,
        allowed: &'static str,
    },
    #[error("unknown channel `{0}`")]
    UnknownChannel(String),
    #[error("`{0}` is not a conversation workflow id")]
    NotAConversationId(String),
}

fn check(
    value: &str,
    what: &'static str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    if value.chars().count() > max {
        return Err(IdError::TooLong { what, max });
    }
    if !value.chars().all(ok) {
        return Err(IdError::BadCharacter { what, allowed });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check(&value, $what, $max, $allowed, $ok)?;
                Ok(Self(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn slug_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+' | '@' | '=')
}

string_id!(
    /// A tenant: lowercase letters, digits, `-` and `_`, at most 64 characters.
    TenantId,
    "tenant id",
    64,
    "lowercase letters, digits, '-' and '_'",
    slug_char
);

impl TenantId {
    /// Ids the platform keeps for its own workflows: those starting with `_` (`_system`) and,
    /// because a deployment may put a prefix before its platform workflow ids
    /// (`zt-1_system/channel-health`), those ending in `_system`. No tenant may be created with
    /// one: its workflows would be read as the platform's (payloads sealed under the platform
    /// key, listed among the platform's schedules).
    pub fn is_reserved(id: &str) -> bool {
        id.starts_with('_') || id.ends_with("_system")
    }
}

string_id!(
    /// A channel-side contact or session key (webchat session id, phone number, chat id).
    /// Printable ASCII without `/` or spaces, at most 128 characters.
    SessionId,
    "session id",
    128,
    "letters, digits and '-_.:+@='",
    token_char
);

string_id!(
    /// A client-chosen key that makes a request safe to repeat (`x-idempotency-key`).
    IdempotencyKey,
    "idempotency key",
    128,
    "letters, digits and '-_.:+@='",
    token_char
);

/// The channel a conversation runs on. The names are stable: they are part of workflow ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Webchat,
    Whatsapp,
    Five9,
    AmazonConnect,
    Email,
    Sms,
}

impl Channel {
    /// The stable name used in workflow ids and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webchat => "webchat",
            Channel::Whatsapp => "whatsapp",
            Channel::Five9 => "five9",
            Channel::AmazonConnect => "amazon-connect",
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Channel::Webchat,
            Channel::Whatsapp,
            Channel::Five9,
            Channel::AmazonConnect,
            Channel::Email,
            Channel::Sms,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| IdError::UnknownChannel(s.to_owned()))
    }
}

/// One conversation: a contact talking to a tenant on a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConversationId {
    pub tenant: TenantId,
    pub channel: Channel,
    pub contact: SessionId,
}

impl ConversationId {
    pub fn new(tenant: TenantId, channel: Channel, contact: SessionId) -> Self {
        Self {
            tenant,
            channel,
            contact,
        }
    }

    /// The Temporal workflow id: `{tenant}/conversation/{channel}/{contact}`.
    pub fn workflow_id(&self) -> String {
        format!(
            "{}/conversation/{}/{}",
            self.tenant, self.channel, self.contact
        )
    }

    /// Whether the contact of this channel is a phone number (personal data that must not
    /// appear in Temporal ids, which are not encrypted).
    pub fn contact_is_phone(&self) -> bool {
        matches!(self.channel, Channel::Whatsapp | Channel::Sms)
    }

    /// The id the conversation workflow runs under: [`ConversationId::workflow_id`], except for
    /// phone channels, where the contact is replaced by a keyed hash:
    /// `{tenant}/conversation/{channel}/p-<first 32 hex digits of HMAC-SHA256(key, tenant/channel/contact)>`.
    pub fn temporal_id(&self, key: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        if !self.contact_is_phone() {
            return self.workflow_id();
        }
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(format!("{}/{}/{}", self.tenant, self.channel, self.contact).as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        format!(
            "{}/conversation/{}/p-{}",
            self.tenant,
            self.channel,
            &digest[..32]
        )
    }

    /// The inverse of [`ConversationId::workflow_id`].
    pub fn from_workflow_id(id: &str) -> Result<Self, IdError> {
        let bad = || IdError::NotAConversationId(id.to_owned());
        let mut parts = id.splitn(4, '/');
        let (Some(tenant), Some("conversation"), Some(channel), Some(contact)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Self {
            tenant: TenantId::parse(tenant).map_err(|_| bad())?,
            channel: channel.parse().map_err(|_| bad())?,
            contact: SessionId::parse(contact).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.workflow_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_contacts_are_hashed_in_temporal_ids_and_others_are_not() {
        let tenant = TenantId::parse("demo").unwrap();
        let phone = SessionId::parse("16505551234").unwrap();
        let wa = ConversationId::new(tenant.clone(), Channel::Whatsapp, phone.clone());
        let id = wa.temporal_id(b"k1");
        assert!(id.starts_with("demo/conversation/whatsapp/p-"), "{id}");
        assert!(!id.contains("16505551234"));
        assert_eq!(id.len(), "demo/conversation/whatsapp/p-".len() + 32);
        assert_eq!(id, wa.temporal_id(b"k1"), "stable");
        assert_ne!(id, wa.temporal_id(b"k2"), "keyed");
        let sms = ConversationId::new(tenant.clone(), Channel::Sms, phone);
        assert!(!sms.temporal_id(b"k1").contains("16505551234"));
        let chat = ConversationId::new(tenant, Channel::Webchat, SessionId::parse("s-1").unwrap());
        assert_eq!(chat.temporal_id(b"k1"), "demo/conversation/webchat/s-1");
    }

    #[test]
    fn tenant_ids_accept_slugs_and_reject_everything_else() {
        assert!(TenantId::parse("demo").is_ok());
        assert!(TenantId::parse("acme-01_x").is_ok());
        assert_eq!(
            TenantId::parse(""),
            Err(IdError::Empty { what: "tenant id" })
        );
        assert!(matches!(
            TenantId::parse("Demo"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(matches!(
            TenantId::parse("a/b"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(matches!(
            TenantId::parse("x".repeat(65)),
            Err(IdError::TooLong { max: 64, .. })
        ));
    }

    #[test]
    fn session_ids_reject_slashes_spaces_and_control_characters() {
        assert!(SessionId::parse("+51987654321").is_ok());
        assert!(SessionId::parse("s-1.a:b@c").is_ok());
        for bad in ["a/b", "a b", "a\nb", "ñ"] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn conversation_workflow_ids_round_trip() {
        let id = ConversationId::new(
            TenantId::parse("demo").unwrap(),
            Channel::AmazonConnect,
            SessionId::parse("s-42").unwrap(),
        );
        assert_eq!(id.workflow_id(), "demo/conversation/amazon-connect/s-42");
        assert_eq!(ConversationId::from_workflow_id(&id.workflow_id()), Ok(id));
    }

    #[test]
    fn malformed_conversation_workflow_ids_are_rejected() {
        for bad in [
            "demo",
            "demo/order/webchat/s",
            "demo/conversation/fax/s",
            "Demo/conversation/webchat/s",
            "demo/conversation/webchat/a/b",
        ] {
            assert!(ConversationId::from_workflow_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: TenantId = serde_json::from_str("\"demo\"").unwrap();
        assert_eq!(ok.as_str(), "demo");
        assert!(serde_json::from_str::<TenantId>("\"DEMO\"").is_err());
    }
}
