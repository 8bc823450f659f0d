//! Accuracy of the whole OCR pipeline (Tesseract + extraction) on the shared receipt sets
//! (`$ZENGINE_SHARED_DIR/data/ocr`, default `../shared` beside the checkout):
//!
//! - `dev/`: amount, operation code and date all correct on at least 29 of 30 images;
//! - `stress/` (badly degraded): a wrong amount is never accepted — reconciliation against an
//!   order whose total equals the misread amount still sends the payment to manual review.

use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use zengine_domain::money::Cents;
use zengine_domain::receipt::{Decision, Expected, ReconcileRules, reconcile};
use zengine_ocr::Engine;

fn shared_dir() -> PathBuf {
    std::env::var_os("ZENGINE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

struct Truth {
    file: String,
    amount: Cents,
    op_code: String,
    date: String,
    time: String,
}

fn truths(set: &str) -> Vec<Truth> {
    let path = shared_dir()
        .join("data/ocr")
        .join(set)
        .join("ground_truth.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set ZENGINE_SHARED_DIR)", path.display()));
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    list.iter()
        .map(|t| Truth {
            file: t["file"].as_str().unwrap().to_owned(),
            amount: Cents::parse(t["amount"].as_str().unwrap()).unwrap(),
            op_code: t["op_code"].as_str().unwrap().to_owned(),
            date: t["date"].as_str().unwrap().to_owned(),
            time: t["time"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// The receipt's moment in UTC milliseconds (receipts show Peru time, UTC-5).
fn utc_ms(date: &str, time: &str) -> i64 {
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    let time = NaiveTime::parse_from_str(time, "%H:%M").unwrap();
    NaiveDateTime::new(date, time).and_utc().timestamp_millis() + 5 * 3_600_000
}

#[test]
fn dev_set_reads_amount_code_and_date_on_29_of_30() {
    let mut engine = Engine::new(None, "spa").expect("Tesseract with spa data is installed");
    let truths = truths("dev");
    assert_eq!(truths.len(), 30);
    let mut all_three = 0;
    let mut report = Vec::new();
    for t in &truths {
        let bytes = std::fs::read(shared_dir().join("data/ocr/dev").join(&t.file)).unwrap();
        let r = engine.read(&bytes).unwrap();
        let f = &r.fields;
        let ok = f.amount == Some(t.amount)
            && f.operation_code.as_deref() == Some(t.op_code.as_str())
            && f.date.as_deref() == Some(t.date.as_str());
        if ok {
            all_three += 1;
        } else {
            report.push(format!(
                "{}: amount {:?} (want {}), code {:?} (want {}), date {:?} (want {}); passes {:?}",
                t.file, f.amount, t.amount, f.operation_code, t.op_code, f.date, t.date, r.passes
            ));
        }
        // A value read is never a wrong value with high confidence.
        if let Some(a) = f.amount
            && a != t.amount
        {
            assert!(
                f.confidence.amount < 0.8,
                "{}: wrong amount {a} with confidence",
                t.file
            );
        }
    }
    println!("dev: {all_three}/30 with amount, operation code and date right");
    assert!(
        all_three >= 29,
        "only {all_three}/30 right:\n{}",
        report.join("\n")
    );
}

#[test]
fn stress_set_never_accepts_a_wrong_amount() {
    let mut engine = Engine::new(None, "spa").expect("Tesseract with spa data is installed");
    let truths = truths("stress");
    assert!(!truths.is_empty());
    let rules = ReconcileRules::default();
    let (mut read, mut accepted) = (0, 0);
    for t in &truths {
        let bytes = std::fs::read(shared_dir().join("data/ocr/stress").join(&t.file)).unwrap();
        let Ok(r) = engine.read(&bytes) else { continue };
        let Some(amount) = r.fields.amount else {
            continue;
        };
        read += 1;
        let at = utc_ms(&t.date, &t.time);
        // The worst case: the order's total is exactly what OCR read.
        let expected = Expected {
            total: amount,
            window_start_utc_ms: at - 86_400_000,
            window_end_utc_ms: at + 86_400_000,
            merchant_name: None,
        };
        let decision = reconcile(&r.fields, &expected, &rules);
        if decision == Decision::Accept {
            accepted += 1;
            assert_eq!(
                amount, t.amount,
                "{}: misread amount accepted as paid ({:?})",
                t.file, r.fields
            );
        }
    }
    println!(
        "stress: {read}/{} amounts read, {accepted} accepted (all correct)",
        truths.len()
    );
}
