//! `GET /v1/reports/{name}?from=YYYY-MM-DD&to=YYYY-MM-DD[&format=csv]`: tenant-scoped reports
//! from the read models of `zengine_storage::ReportRepo`. Each request first projects the
//! tenant's new domain events (inline, idempotent by event id), then aggregates the facts of the
//! range. JSON by default; CSV with `Accept: text/csv` or `?format=csv`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use zengine_storage::Fact;

use crate::auth::{Caller, Role};
use crate::{ApiError, AppState, ErrorCode};

/// Events younger than this wait for the next report request (a transaction that took its
/// sequence number earlier may still be committing).
pub const SETTLE_MS: i64 = 1_000;
/// The reports, by name.
pub const REPORTS: [&str; 9] = [
    "conversations",
    "response_times",
    "handoffs",
    "resolution_times",
    "csat",
    "orders",
    "payments",
    "routes",
    "assistance",
];

/// Longest range one request may ask for.
const MAX_DAYS: i64 = 366;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    /// First UTC day, `YYYY-MM-DD` (default: 30 days before `to`).
    #[serde(default)]
    from: Option<String>,
    /// Last UTC day, inclusive (default: today).
    #[serde(default)]
    to: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidField, message)
}

fn day(field: &str, raw: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| raw.len() == 10)
        .ok_or_else(|| {
            bad(format!(
                "query `{field}`: `{raw}` is not a date (YYYY-MM-DD)"
            ))
        })
}

/// A report: column names and rows.
struct Table {
    columns: &'static [&'static str],
    rows: Vec<Vec<Value>>,
}

fn rate(part: usize, whole: usize) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!(((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0)
    }
}

fn conversations(facts: &[Fact]) -> Table {
    let mut by: BTreeMap<(String, String), (BTreeSet<&str>, usize)> = BTreeMap::new();
    for f in facts {
        let entry = by.entry((f.day.clone(), f.dimension.clone())).or_default();
        entry.0.insert(&f.subject);
        entry.1 += 1;
    }
    Table {
        columns: &["day", "channel", "conversations", "messages"],
        rows: by
            .into_iter()
            .map(|((day, channel), (subjects, messages))| {
                vec![
                    json!(day),
                    json!(channel),
                    json!(subjects.len()),
                    json!(messages),
                ]
            })
            .collect(),
    }
}

fn handoffs(conversation_facts: &[Fact], handoff_facts: &[Fact]) -> Table {
    let mut by: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for f in conversation_facts {
        by.entry(&f.day).or_default().0.insert(&f.subject);
    }
    for f in handoff_facts.iter().filter(|f| f.dimension == "handoff") {
        by.entry(&f.day).or_default().1.insert(&f.subject);
    }
    Table {
        columns: &["day", "conversations", "handed_off", "handoff_rate"],
        rows: by
            .into_iter()
            .map(|(day, (all, handed))| {
                let all = all.union(&handed).count();
                vec![
                    json!(day),
                    json!(all),
                    json!(handed.len()),
                    rate(handed.len(), all),
                ]
            })
            .collect(),
    }
}

fn seconds(ms: &[i64]) -> (Value, Value) {
    if ms.is_empty() {
        return (Value::Null, Value::Null);
    }
    let mut sorted = ms.to_vec();
    sorted.sort_unstable();
    let average = sorted.iter().sum::<i64>() as f64 / sorted.len() as f64 / 1000.0;
    let median = sorted[sorted.len() / 2] as f64 / 1000.0;
    (
        json!((average * 1000.0).round() / 1000.0),
        json!((median * 1000.0).round() / 1000.0),
    )
}

/// Per day (of the conversation's first inbound message in the range) and channel: how long
/// the first reply after it took.
fn response_times(inbound: &[Fact], replies: &[Fact]) -> Table {
    let mut first: BTreeMap<&str, &Fact> = BTreeMap::new();
    for f in inbound {
        first.entry(&f.subject).or_insert(f);
    }
    let mut by: BTreeMap<(&str, &str), (usize, Vec<i64>)> = BTreeMap::new();
    for (subject, f) in &first {
        let entry = by.entry((&f.day, &f.dimension)).or_default();
        entry.0 += 1;
        if let Some(reply) = replies
            .iter()
            .find(|r| r.subject == *subject && r.occurred_at >= f.occurred_at)
        {
            entry.1.push(reply.occurred_at - f.occurred_at);
        }
    }
    Table {
        columns: &[
            "day",
            "channel",
            "conversations",
            "answered",
            "average_first_response_secs",
            "median_first_response_secs",
        ],
        rows: by
            .into_iter()
            .map(|((day, channel), (n, deltas))| {
                let (average, median) = seconds(&deltas);
                vec![
                    json!(day),
                    json!(channel),
                    json!(n),
                    json!(deltas.len()),
                    average,
                    median,
                ]
            })
            .collect(),
    }
}

/// Per day of the handoff: how long until the agent gave the conversation back to the bot.
fn resolution_times(facts: &[Fact], to: &str) -> Table {
    let mut by: BTreeMap<&str, (usize, Vec<i64>)> = BTreeMap::new();
    for (i, f) in facts.iter().enumerate() {
        if f.dimension != "handoff" || f.day.as_str() > to {
            continue;
        }
        let entry = by.entry(&f.day).or_default();
        entry.0 += 1;
        if let Some(back) = facts[i + 1..]
            .iter()
            .find(|r| r.subject == f.subject && r.dimension == "returned")
        {
            entry.1.push(back.occurred_at - f.occurred_at);
        }
    }
    Table {
        columns: &[
            "day",
            "handed_off",
            "resolved",
            "average_resolution_secs",
            "median_resolution_secs",
        ],
        rows: by
            .into_iter()
            .map(|(day, (n, deltas))| {
                let (average, median) = seconds(&deltas);
                vec![json!(day), json!(n), json!(deltas.len()), average, median]
            })
            .collect(),
    }
}

fn csat(facts: &[Fact]) -> Table {
    let mut by: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for f in facts {
        by.entry(&f.day).or_default().push(f.value);
    }
    Table {
        columns: &["day", "responses", "average_rating", "csat"],
        rows: by
            .into_iter()
            .map(|(day, ratings)| {
                let average = ratings.iter().sum::<f64>() / ratings.len() as f64;
                let satisfied = ratings.iter().filter(|r| **r >= 4.0).count();
                vec![
                    json!(day),
                    json!(ratings.len()),
                    json!((average * 100.0).round() / 100.0),
                    rate(satisfied, ratings.len()),
                ]
            })
            .collect(),
    }
}

/// Orders by the last status they reached within the range.
fn orders(facts: &[Fact]) -> Table {
    let mut last: HashMap<&str, &str> = HashMap::new();
    for f in facts {
        last.insert(&f.subject, &f.dimension);
    }
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for status in last.values() {
        *by.entry(status).or_default() += 1;
    }
    Table {
        columns: &["status", "orders"],
        rows: by
            .into_iter()
            .map(|(s, n)| vec![json!(s), json!(n)])
            .collect(),
    }
}

fn counts(facts: &[Fact], columns: &'static [&'static str]) -> Table {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for f in facts {
        *by.entry(&f.dimension).or_default() += 1;
    }
    Table {
        columns,
        rows: by
            .into_iter()
            .map(|(d, n)| vec![json!(d), json!(n)])
            .collect(),
    }
}

fn routes(facts: &[Fact]) -> Table {
    let mut by: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for f in facts {
        let entry = by.entry(&f.dimension).or_default();
        entry.0 += 1;
        entry.1 += f.value;
        entry.2 += f.value2;
    }
    Table {
        columns: &["driver_id", "routes", "stops", "distance_m"],
        rows: by
            .into_iter()
            .map(|(d, (n, stops, metres))| {
                vec![
                    json!(d),
                    json!(n),
                    json!(stops as i64),
                    json!(metres as i64),
                ]
            })
            .collect(),
    }
}

fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        // A text cell a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+cmd|…`, `@SUM`)
        // is neutralised with a leading `'` (OWASP CSV injection); numbers are left alone.
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// `GET /v1/reports/{name}` (viewer and up; an operator's tool, so API keys get 403).
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    if !REPORTS.contains(&name.as_str()) {
        return Err(ApiError::not_found(format!(
            "no report `{name}` (known: {})",
            REPORTS.join(", ")
        )));
    }
    let csv = match query.format.as_deref() {
        None | Some("") => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv")),
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(bad(format!(
                "query `format`: `{other}` is not `json` or `csv`"
            )));
        }
    };
    let to = match query.to.as_deref() {
        Some(raw) => day("to", raw)?,
        None => chrono::Utc::now().date_naive(),
    };
    let from = match query.from.as_deref() {
        Some(raw) => day("from", raw)?,
        None => to - chrono::Duration::days(30),
    };
    if from > to {
        return Err(bad("query `from` is after `to`"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(bad(format!("the range is longer than {MAX_DAYS} days")));
    }
    let tenant = caller.tenant.clone();
    let reports = state.db.reports();
    reports.project(&tenant, SETTLE_MS).await?;
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let kind = match name.as_str() {
        "response_times" => "conversations",
        "resolution_times" => "handoffs",
        other => other,
    };
    let facts = reports.facts(&tenant, kind, &from_s, &to_s).await?;
    let table = match name.as_str() {
        "conversations" => conversations(&facts),
        "response_times" => {
            // A reply may come after the range's last day.
            let replies = reports
                .facts(&tenant, "replies", &from_s, "9999-12-31")
                .await?;
            response_times(&facts, &replies)
        }
        "resolution_times" => {
            let mut all = reports
                .facts(&tenant, "handoffs", &from_s, "9999-12-31")
                .await?;
            all.sort_by_key(|f| f.occurred_at);
            resolution_times(&all, &to_s)
        }
        "handoffs" => {
            let all = reports
                .facts(&tenant, "conversations", &from_s, &to_s)
                .await?;
            handoffs(&all, &facts)
        }
        "csat" => csat(&facts),
        "orders" => orders(&facts),
        "payments" => counts(&facts, &["outcome", "payments"]),
        "routes" => routes(&facts),
        _ => counts(&facts, &["status", "events"]),
    };
    if csv {
        let mut out = table.columns.join(",");
        out.push('\n');
        for row in &table.rows {
            out.push_str(&row.iter().map(csv_field).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            out,
        )
            .into_response());
    }
    let rows: Vec<Value> = table
        .rows
        .iter()
        .map(|row| {
            Value::Object(
                table
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| ((*c).to_owned(), v.clone()))
                    .collect(),
            )
        })
        .collect();
    Ok(Json(json!({
        "report": name, "from": from_s, "to": to_s, "columns": table.columns, "rows": rows,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(report: &'static str, day: &str, dimension: &str, subject: &str, value: f64) -> Fact {
        Fact {
            event_id: format!("{subject}/{dimension}/{value}"),
            report,
            day: day.into(),
            dimension: dimension.into(),
            subject: subject.into(),
            value,
            value2: 0.0,
            occurred_at: 0,
        }
    }

    #[test]
    fn orders_count_the_last_status_and_csv_quotes() {
        let facts = [
            fact("orders", "2026-01-01", "CONFIRMED", "o1", 1.0),
            fact("orders", "2026-01-01", "PAID", "o1", 1.0),
            fact("orders", "2026-01-01", "CONFIRMED", "o2", 1.0),
        ];
        let table = orders(&facts);
        assert_eq!(
            table.rows,
            vec![
                vec![json!("CONFIRMED"), json!(1)],
                vec![json!("PAID"), json!(1)]
            ]
        );
        assert_eq!(csv_field(&json!("a,\"b\"")), "\"a,\"\"b\"\"\"");
        // Formulas a customer typed (a name, a note) reach the spreadsheet as text.
        for formula in [
            "=HYPERLINK(\"http://x\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
        ] {
            assert!(
                csv_field(&json!(formula))
                    .trim_start_matches('"')
                    .starts_with('\''),
                "{formula}"
            );
        }
        assert_eq!(csv_field(&json!(-5)), "-5");
        let c = csat(&[
            fact("csat", "d", "rating", "c1", 5.0),
            fact("csat", "d", "rating", "c2", 2.0),
        ]);
        assert_eq!(
            c.rows[0],
            vec![json!("d"), json!(2), json!(3.5), json!(0.5)]
        );
    }
}
