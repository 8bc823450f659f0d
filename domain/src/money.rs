//! Money as an exact count of cents (never floating point).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount in cents of the tenant's currency (PEN by default).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub i64);

/// Why an amount was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an amount (use digits with at most 2 decimals, e.g. 12.50)")]
    NotAnAmount(String),
    #[error("amount is too large")]
    TooLarge,
}

impl Cents {
    /// Parses `12`, `12.5`, `12.50` (also with `,` as decimal separator). At most 2 decimals.
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        let t = text.trim().replace(',', ".");
        let bad = || MoneyError::NotAnAmount(text.to_owned());
        let (negative, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, t),
        };
        let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if whole.len() > 15 {
            return Err(MoneyError::TooLarge);
        }
        let whole: i64 = whole.parse().map_err(|_| bad())?;
        let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let cents = whole * 100 + frac;
        Ok(Cents(if negative { -cents } else { cents }))
    }

    pub fn checked_mul(self, n: i64) -> Option<Cents> {
        self.0.checked_mul(n).map(Cents)
    }

    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }
}

impl fmt::Display for Cents {
    /// `12.50` (no currency symbol).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:02}", self.0.abs() / 100, self.0.abs() % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_and_print_back() {
        for (text, cents, shown) in [
            ("12", 1200, "12.00"),
            ("12.5", 1250, "12.50"),
            ("0,05", 5, "0.05"),
            (" 7.10 ", 710, "7.10"),
            ("-3.2", -320, "-3.20"),
        ] {
            let c = Cents::parse(text).unwrap();
            assert_eq!((c.0, c.to_string().as_str()), (cents, shown), "{text}");
        }
        for bad in ["", "1.234", "abc", "1.2.3", ".5", "1e3", "12 soles"] {
            assert!(Cents::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Cents::parse("1234567890123456"), Err(MoneyError::TooLarge));
        // 0.1 + 0.2 is exactly 0.3 in cents.
        assert_eq!(
            Cents::parse("0.1")
                .unwrap()
                .checked_add(Cents::parse("0.2").unwrap()),
            Some(Cents(30))
        );
    }
}
