//! Payments by receipt: the contracts the payment workflow, its activities and the repository
//! share. Pure, so workflows use them directly.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Received, not decided yet.
    Pending,
    /// Credited to its order (the order is PAID).
    Assigned,
    /// Waiting for an operator (`POST /v1/payments/{id}/review`).
    ManualReview,
    /// Not credited (duplicate operation code, or an operator rejected it).
    Rejected,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Assigned => "ASSIGNED",
            Self::ManualReview => "MANUAL_REVIEW",
            Self::Rejected => "REJECTED",
        }
    }

    /// ASSIGNED and REJECTED do not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Assigned | Self::Rejected)
    }
}

impl std::str::FromStr for PaymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "PENDING" => Self::Pending,
            "ASSIGNED" => Self::Assigned,
            "MANUAL_REVIEW" => Self::ManualReview,
            "REJECTED" => Self::Rejected,
            other => return Err(format!("unknown payment status `{other}`")),
        })
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the verification concluded; the payment repository's `settle` applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Everything matched: credit the order.
    Accept,
    /// Something is missing or doubtful: a person decides.
    Review,
}

/// The payment id of a receipt image submitted for an order: the same image (media ids are
/// content hashes) for the same order is the same payment (a resubmission), a different image or
/// order is a new one. Pure, so workflows can compute it too.
pub fn payment_id_for(order_id: &str, media_id: &str) -> String {
    let digest = Sha256::digest(format!("{order_id}\n{media_id}"));
    format!("pay_{}", &hex::encode(digest)[..24])
}

/// Where a payment this conversation asked for stands (the conversation workflow's `PaymentUpdate` signal, sent by the
/// payment workflow after its first decision and again after a manual review).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentUpdate {
    pub payment_id: String,
    pub order_id: String,
    pub status: PaymentStatus,
    pub reasons: Vec<String>,
}
