//! Visibility queries restricted to one tenant.
//!
//! Every query sent to Temporal starts with `TenantId = '<tenant>'` and ANDs everything else
//! after it. A caller's free query is checked to be one balanced expression (quotes closed,
//! parentheses never closing more than they opened) and then wrapped in parentheses, so no
//! input can close the wrapper and add an `OR` of its own.

use chrono::{DateTime, SecondsFormat, Utc};
use zengine_domain::TenantId;

use super::OpsError;

/// Longest free visibility query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;

/// Workflow execution statuses a filter may name (Temporal's `ExecutionStatus` values).
pub const STATUSES: &[&str] = &[
    "Running",
    "Completed",
    "Failed",
    "Canceled",
    "Terminated",
    "ContinuedAsNew",
    "TimedOut",
];

/// What a list asks for, besides the tenant.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Workflow type (`Conversation`, `Order`, …).
    pub workflow_type: Option<String>,
    /// One of [`STATUSES`] (case-insensitive).
    pub status: Option<String>,
    /// Started at or after (RFC 3339).
    pub started_after: Option<String>,
    /// Started at or before (RFC 3339).
    pub started_before: Option<String>,
    /// A free Temporal visibility query, ANDed with the rest.
    pub query: Option<String>,
}

fn invalid(message: impl Into<String>) -> OpsError {
    OpsError::Invalid(message.into())
}

fn time(field: &str, raw: &str) -> Result<String, OpsError> {
    let parsed = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|e| invalid(format!("`{field}` is not an RFC 3339 time: {e}")))?;
    Ok(parsed
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Checks that `query` is one self-contained expression: every quote closed and parentheses
/// balanced without ever going below zero (outside string literals).
pub fn check_free_query(query: &str) -> Result<(), OpsError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(invalid(format!(
            "`query` is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    if query.chars().any(char::is_control) {
        return Err(invalid("`query` contains control characters"));
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut outside = String::new();
    for c in query.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| invalid("`query` closes a parenthesis it did not open"))?;
            }
            _ => {}
        }
        outside.push(c.to_ascii_lowercase());
    }
    if quote.is_some() {
        return Err(invalid("`query` has an unterminated string"));
    }
    if depth != 0 {
        return Err(invalid("`query` has unbalanced parentheses"));
    }
    if outside
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w == ["order", "by"])
    {
        return Err(invalid("`query` may not contain ORDER BY"));
    }
    Ok(())
}

/// The visibility query for `filter` inside `tenant`.
pub fn visibility_query(tenant: &TenantId, filter: &ListFilter) -> Result<String, OpsError> {
    // Tenant ids are slugs (no quotes), so quoting them needs no escaping.
    let mut parts = vec![format!("TenantId = '{}'", tenant.as_str())];
    if let Some(kind) = filter.workflow_type.as_deref().filter(|t| !t.is_empty()) {
        if kind.len() > 128
            || !kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(invalid("`type` is not a workflow type name"));
        }
        parts.push(format!("WorkflowType = '{kind}'"));
    }
    if let Some(status) = filter.status.as_deref().filter(|s| !s.is_empty()) {
        let known = STATUSES
            .iter()
            .find(|s| s.eq_ignore_ascii_case(status))
            .ok_or_else(|| invalid(format!("`status` must be one of {}", STATUSES.join(", "))))?;
        parts.push(format!("ExecutionStatus = '{known}'"));
    }
    if let Some(after) = filter.started_after.as_deref().filter(|s| !s.is_empty()) {
        parts.push(format!("StartTime >= '{}'", time("started_after", after)?));
    }
    if let Some(before) = filter.started_before.as_deref().filter(|s| !s.is_empty()) {
        parts.push(format!(
            "StartTime <= '{}'",
            time("started_before", before)?
        ));
    }
    if let Some(query) = filter
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
    {
        check_free_query(query)?;
        parts.push(format!("({query})"));
    }
    Ok(parts.join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> TenantId {
        TenantId::parse("demo").unwrap()
    }

    #[test]
    fn filters_are_anded_after_the_tenant() {
        let q = visibility_query(
            &demo(),
            &ListFilter {
                workflow_type: Some("Order".into()),
                status: Some("running".into()),
                started_after: Some("2026-01-02T03:04:05Z".into()),
                query: Some(
                    "WorkflowId STARTS_WITH 'demo/order' OR WorkflowType = 'Payment'".into(),
                ),
                ..ListFilter::default()
            },
        )
        .unwrap();
        assert_eq!(
            q,
            "TenantId = 'demo' AND WorkflowType = 'Order' AND ExecutionStatus = 'Running' \
             AND StartTime >= '2026-01-02T03:04:05.000Z' AND \
             (WorkflowId STARTS_WITH 'demo/order' OR WorkflowType = 'Payment')"
        );
    }

    #[test]
    fn a_free_query_cannot_close_the_wrapper() {
        for escape in [
            "x = 1) OR (TenantId = 'other'",
            "x = 1)) OR ((TenantId = 'other'",
            ") OR TenantId = 'other' OR (",
            "WorkflowType = 'a' OR TenantId = 'b",
            "x = 1 ORDER BY StartTime",
            "a = 'x\n'",
        ] {
            let filter = ListFilter {
                query: Some(escape.into()),
                ..ListFilter::default()
            };
            assert!(visibility_query(&demo(), &filter).is_err(), "{escape}");
        }
        // Parentheses inside strings do not count; escaped quotes stay inside the string.
        check_free_query("WorkflowId = 'a)b' AND WorkflowId != 'it\\'s ('").unwrap();
        let long = "a".repeat(MAX_QUERY_BYTES + 1);
        assert!(check_free_query(&long).is_err());
    }

    #[test]
    fn bad_filter_values_are_refused() {
        let bad = [
            ListFilter {
                workflow_type: Some("Order' OR 'a".into()),
                ..Default::default()
            },
            ListFilter {
                status: Some("Sleeping".into()),
                ..Default::default()
            },
            ListFilter {
                started_before: Some("yesterday".into()),
                ..Default::default()
            },
        ];
        for filter in bad {
            assert!(visibility_query(&demo(), &filter).is_err(), "{filter:?}");
        }
    }
}
