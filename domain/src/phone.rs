//! Phone numbers in E.164 form (`+` country code and subscriber number, 8 to 15 digits), the
//! only form SMS providers such as Amazon SNS accept.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a phone number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an E.164 phone number (`+` and 8 to 15 digits, e.g. +51987654321)")]
pub struct NotE164(pub String);

/// A phone number in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    /// Accepts `+` followed by 8 to 15 digits, the first not `0`. Nothing is normalised: a
    /// number with spaces or dashes is rejected rather than guessed at.
    pub fn parse(value: impl Into<String>) -> Result<Self, NotE164> {
        let value = value.into();
        let ok = value.strip_prefix('+').is_some_and(|digits| {
            (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0')
        });
        if ok {
            Ok(Self(value))
        } else {
            Err(NotE164(value))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but its last four digits masked, for logs (`+5198*****321` style).
    pub fn masked(&self) -> String {
        let keep = 4.min(self.0.len() - 1);
        let (head, tail) = self.0.split_at(self.0.len() - keep);
        let shown = head.chars().take(3).collect::<String>();
        format!("{shown}{}{tail}", "*".repeat(head.len() - shown.len()))
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for E164 {
    type Error = NotE164;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<E164> for String {
    fn from(n: E164) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_accepted_and_everything_else_rejected() {
        for good in [
            "+51987654321",
            "+14155550100",
            "+12345678",
            "+123456789012345",
        ] {
            assert!(E164::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "+",
            "51987654321",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "+51 987 654 321",
            "+51-987654321",
            "not-a-number",
            "+5198765432１",
        ] {
            assert!(E164::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn masked_numbers_keep_the_prefix_and_the_last_four_digits() {
        assert_eq!(
            E164::parse("+51987654321").unwrap().masked(),
            "+51*****4321"
        );
    }

    #[test]
    fn numbers_deserialize_through_validation() {
        assert!(serde_json::from_str::<E164>("\"+51987654321\"").is_ok());
        assert!(serde_json::from_str::<E164>("\"987654321\"").is_err());
    }
}
