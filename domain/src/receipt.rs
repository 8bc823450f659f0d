//! Payment receipts: the pure extraction of Yape / Plin screenshot fields from OCR text, and the
//! reconciliation of those fields with an order.
//!
//! # What the screens show
//!
//! Customers in Peru pay by Yape or Plin and forward a screenshot of the "sent" screen:
//!
//! * **Yape `¡Yapeaste!`** (received side: `¡Te yapearon!`): a large amount with a small stylised
//!   `S/` (`S/ 23.50`, whole amounts without decimals: `S/ 35`, thousands with a comma:
//!   `S/ 1,250.00`), the counterparty (on a "sent" screen, the recipient, i.e. the merchant; often
//!   masked: `Ana Lo*`), `27 set. 2026 | 09:38 p. m.` (or a `-` separator), a 3-digit
//!   `CÓDIGO DE SEGURIDAD`, then `DATOS DE LA TRANSACCIÓN` with `Nro. de celular *** *** 789`,
//!   `Destino Yape|Plin` (the *destination* wallet, not the screen's) and
//!   `Nro. de operación 04718822`. Below, an ad with a **decoy amount**: `Yapea S/150 y gana`.
//! * **Plin** (one rail, per-bank screens): Interbank shows `¡Plineaste!`, the masked name,
//!   `... 334 - Yape`, `S/ 12.50`, `05 Oct 2026 | 10:30 AM`, `Código de operación: 01234567`;
//!   a generic variant shows `Enviado a` / name, `Fecha y hora` / `07/10/2026 08:15 AM` and
//!   `Código de operación` / `004512` on the next line.
//!
//! # Heuristics
//!
//! The text is the Tesseract page pass (`spa`, PSM 3). Each line is folded (lowercase, no
//! accents) for label matching and kept raw for the name.
//!
//! * **Amount**: a line that is *only* an amount, optionally behind what OCR makes of the small
//!   `S/` (`“478`, `s: 1,387`, `s, 506`, `:244`, `- 4,307.50`, `$, 386.90`). Only lines above the
//!   date line and the section headers count, which skips the security-code boxes, phone digits,
//!   the message line and the `Yapea S/150 y gana` ad (a line with words is never an amount
//!   line). The app writes amounts ≥ 1,000 with a comma, so a bare 4-digit `1295` is read as a
//!   misread `S/` plus `295`, with low confidence.
//! * **Operation code**: digits after an `... de operación` label (same line, or the next line),
//!   with `O`→`0` and `I`/`l`/`|`→`1` inside the code. A bare 6–12 digit line is a weak fallback.
//! * **Date / time**: `27 set. 2026 | 09:38 p. m.`, `05 Oct 2026 | 10:30 AM`,
//!   `07/10/2026 08:15 AM`. The time is taken only from the date line, never from the status-bar
//!   clock. Impossible dates (day 31 of a 30-day month, year outside 2020–2099) are dropped.
//! * **Counterparty**: the line after `Enviado a`, else the line after the amount (Yape), else the
//!   line after the title (Interbank), if it looks like a name.
//!
//! # Why confidence matters
//!
//! OCR proves nothing about payment, and a wrong value must never mark an order as paid, so every
//! field carries a confidence in `0.0..=1.0` and [`reconcile`] only accepts when the key fields
//! are all at or above [`ReconcileRules::min_confidence`] (0.8 by default). A value read from a
//! clean labelled line scores ≥ 0.9; a value from a weaker heuristic (bare digits, a guessed
//! leading digit, digits joined across spaces) scores below 0.8. A page where little of the
//! expected layout was recognised (a degraded image) scales every confidence down.
//!
//! The big stylised amount is the page pass's weak spot: it gets digits wrong (5→9) even behind a
//! clean-looking `s/`. A page-pass amount alone therefore never reaches 0.8 (at most
//! [`PAGE_AMOUNT_MAX`]); it becomes high-confidence only when the independent amount crop pass
//! agrees ([`merge_amount`]). Anything doubtful goes to manual review; nothing is auto-rejected.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::money::Cents;

/// Input beyond this many bytes is ignored (a page of receipt text is ~1 KiB).
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Lines beyond this count are ignored.
const MAX_LINES: usize = 500;
/// Longer lines are never a field (labels and values are short), so they are skipped.
const MAX_LINE_CHARS: usize = 200;

/// Amounts from this value up are not plausible wallet payments (Yape / Plin limits are far
/// lower).
pub const MAX_AMOUNT: Cents = Cents(10_000_000);
/// The highest confidence an amount read by the page pass alone can get (below the default
/// acceptance threshold of 0.8 on purpose: see the module docs).
pub const PAGE_AMOUNT_MAX: f32 = 0.75;
/// Amount confidence when the page pass and the crop pass read the same amount.
pub const AMOUNT_AGREED: f32 = 0.97;
/// Amount confidence when only the crop pass read an amount.
pub const AMOUNT_CROP_ONLY: f32 = 0.7;
/// Amount confidence when the page pass and the crop pass disagree (the crop amount is kept).
pub const AMOUNT_DISAGREED: f32 = 0.5;
/// Cap on a field's confidence when the native and the 2x reads disagree ([`fill_missing`]).
pub const RERUN_DISAGREED: f32 = 0.5;

/// The wallet whose screen the screenshot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wallet {
    Yape,
    Plin,
}

/// A field of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Amount,
    OperationCode,
    Date,
    Time,
    Counterparty,
}

/// Per-field confidence: 0.0 when the field is missing, up to 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    pub amount: f32,
    pub operation_code: f32,
    pub date: f32,
    pub time: f32,
    pub counterparty: f32,
}

/// The fields read from one payment screenshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptFields {
    pub wallet: Option<Wallet>,
    /// Serialised as an integer count of cents.
    pub amount: Option<Cents>,
    /// Digits as a string; leading zeros are kept.
    pub operation_code: Option<String>,
    /// ISO date, `2026-09-27` (Peru local date as shown).
    pub date: Option<String>,
    /// 24 h `HH:MM` (Peru local time as shown).
    pub time: Option<String>,
    /// The other party as shown (the recipient on a "¡Yapeaste!"/"¡Plineaste!" screen).
    pub counterparty: Option<String>,
    pub confidence: Confidence,
}

impl ReceiptFields {
    /// No field read.
    pub fn empty() -> Self {
        ReceiptFields {
            wallet: None,
            amount: None,
            operation_code: None,
            date: None,
            time: None,
            counterparty: None,
            confidence: Confidence {
                amount: 0.0,
                operation_code: 0.0,
                date: 0.0,
                time: 0.0,
                counterparty: 0.0,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

/// Lowercases, strips Spanish accents and maps `°`/`º` to `o`, so `N° de OPERACIÓN` matches
/// `no de operacion`.
fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' | '°' | 'º' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            other => other,
        })
        .collect()
}

/// The first `max` bytes of `text`, cut at a char boundary.
fn cap(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

/// One non-empty line of the page: raw (trimmed) and folded.
struct Line<'a> {
    raw: &'a str,
    folded: String,
}

fn lines(page_text: &str) -> Vec<Line<'_>> {
    cap(page_text, MAX_INPUT_BYTES)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(MAX_LINES)
        .map(|raw| {
            if raw.chars().count() > MAX_LINE_CHARS {
                // Too long to be a field: keep the slot (so neighbours stay neighbours) but make
                // it match nothing.
                Line {
                    raw: "",
                    folded: String::new(),
                }
            } else {
                Line {
                    raw,
                    folded: fold(raw),
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Amount
// ---------------------------------------------------------------------------------------------

/// An amount line: what OCR makes of the small `S/` (`S/`, `s:`, `s,`, `“`, `"`, `:`, `-`, `$,`,
/// or nothing), then digits with `,` `.` and spaces, then at most some trailing punctuation.
static AMOUNT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"^(?P<pre>(?:[sS$§]\s*[/:,.;]?|5\s*/|[“”"'‘’«»:;,.\-–—~]|\s)*)(?P<body>\d[\d,. ]*)(?P<post>[\s'’`"|]*)$"#,
    )
});
/// `1,387` / `2,652.90`.
static THOUSANDS: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{1,3}(?:,\d{3})+(?:\.\d{2})?$"));
/// `478` / `26.25`.
static PLAIN: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{1,3}(?:\.\d{2})?$"));
/// `415,42` / `1.387,50` (decimal comma).
static DECIMAL_COMMA: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{1,3}(?:\.\d{3})*,\d{2}$"));
/// `1295` / `1295.50`: 4 integer digits without the thousands comma the app always writes, so the
/// first digit is most likely the small `S/` misread (`/` → `1` or `7`, `S` → `5`).
static LEADING_MISREAD: LazyLock<Regex> = LazyLock::new(|| re(r"^[157][1-9]\d{2}(?:\.\d{2})?$"));

/// How an amount was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AmountShape {
    /// Well-formed: `478`, `26.25`, `1,387`, `2,652.90`.
    Exact,
    /// `415,42`: a comma read for the decimal point.
    DecimalComma,
    /// `1295`: leading digit dropped as a misread `S/`.
    LeadingDropped,
}

/// Parses the digits part of an amount (no prefix). Spaces between digit groups are joined only
/// when the result has a separator (`1,38 7` → `1,387`; `2 4 48` is not an amount).
fn parse_amount_body(body: &str) -> Option<(Cents, AmountShape, bool)> {
    let body = body.trim_end_matches([' ', '.', ',']);
    let joined: String = body.chars().filter(|c| *c != ' ').collect();
    let spaced = joined.len() != body.len();
    if joined.is_empty() || joined.len() > 16 {
        return None;
    }
    let has_separator = joined.contains([',', '.']);
    let no_leading_zero =
        !(joined.starts_with('0') && joined.as_bytes().get(1).is_some_and(u8::is_ascii_digit));
    let (text, shape) =
        if no_leading_zero && (THOUSANDS.is_match(&joined) || PLAIN.is_match(&joined)) {
            (joined.replace(',', ""), AmountShape::Exact)
        } else if no_leading_zero && DECIMAL_COMMA.is_match(&joined) {
            (joined.replace('.', ""), AmountShape::DecimalComma)
        } else if !spaced && LEADING_MISREAD.is_match(&joined) {
            (joined[1..].to_owned(), AmountShape::LeadingDropped)
        } else {
            return None;
        };
    if spaced && !has_separator {
        return None;
    }
    let cents = Cents::parse(&text).ok()?;
    (cents.0 > 0 && cents.0 < MAX_AMOUNT.0).then_some((cents, shape, spaced))
}

/// One amount read from a page line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AmountRead {
    cents: Cents,
    confidence: f32,
}

/// Reads a line that is only an amount (see [`is_amount_line`]).
fn amount_in_line(line: &str) -> Option<AmountRead> {
    let line = line.trim();
    if line.is_empty() || line.chars().count() > 40 {
        return None;
    }
    let caps = AMOUNT_LINE.captures(line)?;
    let pre = caps.name("pre").map_or("", |m| m.as_str()).trim();
    let (cents, shape, spaced) = parse_amount_body(caps.name("body")?.as_str())?;
    let written = caps.name("body")?.as_str();
    let confidence = match shape {
        AmountShape::LeadingDropped => 0.4,
        AmountShape::DecimalComma => 0.55,
        AmountShape::Exact if spaced => 0.5,
        AmountShape::Exact if pre.contains('/') => PAGE_AMOUNT_MAX,
        AmountShape::Exact if !pre.is_empty() || written.contains([',', '.']) => 0.7,
        AmountShape::Exact => 0.65,
    };
    Some(AmountRead { cents, confidence })
}

/// Is this text line the big amount line? `S/ 23.50`, `“478`, `s: 1,387`, `1295` alone on a line
/// are; the ad `Yapea S/150 y gana`, dates, times, phone digits `*** *** 789` and labelled
/// operation codes are not (a line with words or other symbols is never the amount line).
pub fn is_amount_line(line: &str) -> bool {
    amount_in_line(line).is_some()
}

/// Parses the output of the amount crop pass: one line OCR'd with a digit / `.,` / `S/`
/// whitelist, the small `S/` usually cut off, possibly with stray characters around. `None` if
/// it is not a plausible amount, including the ambiguous `1295` (a leftover `S/` or a lost
/// thousands comma cannot be told apart; the page pass and manual review handle it).
pub fn parse_amount_line(line: &str) -> Option<Cents> {
    let line = cap(line, 256).trim();
    // Whatever precedes a slash is the `S/` (or part of it).
    let line = line.rsplit_once('/').map_or(line, |(_, after)| after);
    let body: String = line
        .trim_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '.')
    {
        return None;
    }
    match parse_amount_body(&body)? {
        (cents, AmountShape::Exact | AmountShape::DecimalComma, _) => Some(cents),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Operation code, date, time, name, wallet
// ---------------------------------------------------------------------------------------------

/// `nro. de operacion`, `codigo de operacion:`, `no de operacion`, `numero de operacion` (folded).
static OP_LABEL: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:^|[^a-z])(?:[a-z]{1,7}\.?\s*)?de\s*operaci[o0]n\s*[:.;]?"));
/// A code: digits plus the letters OCR confuses with digits.
static CODE_TOKEN: LazyLock<Regex> = LazyLock::new(|| re(r"^[0-9OoIil|]{6,12}$"));

/// Reads an operation code token: `04718822`, `O1234567` (`O`→`0`, `I`/`l`/`|`→`1`). Returns the
/// digits and whether letters had to be mapped. At least 5 must be real digits.
fn code_token(token: &str) -> Option<(String, bool)> {
    let token = token.trim_matches(|c: char| ".,:;'\"“”‘’".contains(c));
    if !CODE_TOKEN.is_match(token) {
        return None;
    }
    let digits = token.chars().filter(char::is_ascii_digit).count();
    if digits < 5 {
        return None;
    }
    let code: String = token
        .chars()
        .map(|c| match c {
            'O' | 'o' => '0',
            'I' | 'i' | 'l' | '|' => '1',
            d => d,
        })
        .collect();
    Some((code, digits != token.len()))
}

fn code_confidence(code: &str, mapped: bool, base: f32) -> f32 {
    let mut c = base;
    if mapped {
        c -= 0.1;
    }
    if code.len() > 10 {
        c -= 0.3;
    } else if code.len() > 8 {
        c -= 0.15;
    }
    c
}

const MONTHS: [&str; 12] = [
    "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "set", "oct", "nov", "dic",
];

/// `27 set. 2026 ...`, `05 oct 2026 ...` (folded; `sep` and `set` both mean September).
static DATE_NAMED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[^0-9])(?P<d>[0-3]?[0-9])\s*(?:de\s+)?(?P<m>ene|feb|mar|abr|may|jun|jul|ago|sep|set|oct|nov|dic)[a-z]{0,7}\.?\s*,?\s*(?:de\s+|del\s+)?(?P<y>20[0-9]{2})(?P<rest>.*)$",
    )
});
/// `07/10/2026 ...`.
static DATE_NUMERIC: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[^0-9])(?P<d>[0-3]?[0-9])\s*/\s*(?P<m>[01]?[0-9])\s*/\s*(?P<y>20[0-9]{2})(?P<rest>.*)$",
    )
});
/// The time after the date: `| 09:38 p. m.`, `- 08:15 pm`, ` 10:30 AM` (folded).
static TIME_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^[^0-9]{0,6}?(?P<h>[0-2]?[0-9])\s*[:.]\s*(?P<mi>[0-5][0-9])(?:\s*(?P<ap>[ap])\s*\.?\s*m(?:[^a-z]|$))?",
    )
});

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A date (and maybe a time) read from one line.
struct DateRead {
    date: (i64, u32, u32),
    time: Option<((u32, u32), f32)>,
}

fn date_in_line(folded: &str) -> Option<DateRead> {
    let (caps, month) = if let Some(c) = DATE_NAMED.captures(folded) {
        let m = &c["m"];
        let month = if m == "sep" {
            9
        } else {
            MONTHS.iter().position(|x| *x == m)? as u32 + 1
        };
        (c, month)
    } else {
        let c = DATE_NUMERIC.captures(folded)?;
        let month: u32 = c["m"].parse().ok()?;
        (c, month)
    };
    let day: u32 = caps["d"].parse().ok()?;
    let year: i64 = caps["y"].parse().ok()?;
    if !(2020..=2099).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let rest = caps.name("rest").map_or("", |m| m.as_str());
    Some(DateRead {
        date: (year, month, day),
        time: time_in(rest),
    })
}

/// The time at the start of `rest` (after the date), as 24 h with its confidence.
fn time_in(rest: &str) -> Option<((u32, u32), f32)> {
    let caps = TIME_AFTER.captures(rest)?;
    let h: u32 = caps["h"].parse().ok()?;
    let mi: u32 = caps["mi"].parse().ok()?;
    match caps.name("ap").map(|m| m.as_str()) {
        Some(ap) if (1..=12).contains(&h) => {
            let h24 = if ap == "p" { h % 12 + 12 } else { h % 12 };
            Some(((h24, mi), 0.95))
        }
        Some(_) => None,
        // No a.m./p.m. marker: a 24 h reading is plausible; a 1–12 hour is ambiguous.
        None if (13..=23).contains(&h) || h == 0 => Some(((h, mi), 0.7)),
        None if h <= 12 => Some(((h, mi), 0.4)),
        None => None,
    }
}

/// Folded words that mark a line as layout, not a name.
const NOT_NAME_WORDS: &[&str] = &[
    "yape",
    "plin",
    "interbank",
    "destino",
    "compartir",
    "constancia",
    "codigo",
    "operacion",
    "datos",
    "transaccion",
    "celular",
    "fecha",
    "hora",
    "enviado",
    "seguridad",
    "gana",
    "bbva",
    "scotiabank",
];

/// A plausible (possibly masked) person or business name: letters, spaces, `.`, `*`, `-`, `'`,
/// at least 3 letters, no digits and no layout words.
fn name_like(line: &Line<'_>) -> bool {
    let letters = line.raw.chars().filter(|c| c.is_alphabetic()).count();
    letters >= 3
        && line
            .raw
            .chars()
            .all(|c| c.is_alphabetic() || " .*-'’".contains(c))
        && line.raw.split_whitespace().count() <= 6
        && !NOT_NAME_WORDS.iter().any(|w| line.folded.contains(w))
}

/// The title line's wallet: `¡Yapeaste!`, `iYapeaste!`, `¡Te yapearon!`, `¡Plineaste!`.
fn title_wallet(folded: &str) -> Option<Wallet> {
    if folded.contains("yapeaste") || folded.contains("yapearon") {
        Some(Wallet::Yape)
    } else if folded.contains("plineaste") || folded.contains("plinearon") {
        Some(Wallet::Plin)
    } else {
        None
    }
}

/// The wallet from other layout clues when the title is unreadable.
fn layout_wallet(folded: &str) -> Option<Wallet> {
    if folded.starts_with("destino") {
        // `Destino Yape|Plin` is the destination, not the screen's wallet.
        None
    } else if folded.contains("yapea s")
        || folded.contains("seguridad")
        || folded.contains("nro. de celular")
    {
        Some(Wallet::Yape)
    } else if folded.contains("interbank")
        || folded.contains("constancia")
        || folded.contains("enviado a")
        || folded.contains("codigo de operaci")
    {
        Some(Wallet::Plin)
    } else {
        None
    }
}

/// Section headers below which no amount or name appears.
fn is_section_header(folded: &str) -> bool {
    folded.contains("seguridad")
        || folded.contains("datos de")
        || folded.contains("datos dela")
        || folded.contains("transacci")
        || folded.contains("fecha y hora")
        || OP_LABEL.is_match(folded)
}

/// Secondary layout anchors (used to judge how much of the page was read).
fn is_anchor(folded: &str) -> bool {
    [
        "seguridad",
        "transacci",
        "destino",
        "compartir",
        "enviado a",
        "fecha y hora",
        "interbank",
        "celular",
    ]
    .iter()
    .any(|a| folded.contains(a))
}

// ---------------------------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------------------------

/// Extracts the fields from the page text of one screenshot. Pure and total: never panics, on any
/// input; input beyond [`MAX_INPUT_BYTES`] is ignored.
pub fn extract(page_text: &str) -> ReceiptFields {
    let lines = lines(page_text);
    let mut out = ReceiptFields::empty();

    // Wallet and title position.
    let title = lines.iter().position(|l| title_wallet(&l.folded).is_some());
    out.wallet = title
        .and_then(|i| title_wallet(&lines[i].folded))
        .or_else(|| lines.iter().find_map(|l| layout_wallet(&l.folded)));

    // Date and time: the first line with a valid date.
    let dates: Vec<(usize, DateRead)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| date_in_line(&l.folded).map(|d| (i, d)))
        .collect();
    let date_line = dates.first().map(|(i, _)| *i);
    if let Some((_, first)) = dates.first() {
        let (y, m, d) = first.date;
        out.date = Some(format!("{y:04}-{m:02}-{d:02}"));
        let distinct = dates.iter().any(|(_, o)| o.date != first.date);
        out.confidence.date = match (distinct, first.time.is_some()) {
            (true, _) => 0.4,
            (false, true) => 0.95,
            (false, false) => 0.85,
        };
        if let Some(((h, mi), c)) = first.time {
            out.time = Some(format!("{h:02}:{mi:02}"));
            out.confidence.time = c;
        }
    }

    // Amount: amount-only lines above the date line and the section headers.
    let region_end = lines
        .iter()
        .position(|l| is_section_header(&l.folded))
        .into_iter()
        .chain(date_line)
        .min()
        .unwrap_or(lines.len());
    let amounts: Vec<(usize, AmountRead)> = lines[..region_end]
        .iter()
        .enumerate()
        .filter_map(|(i, l)| amount_in_line(l.raw).map(|a| (i, a)))
        .collect();
    let best = amounts.iter().max_by(|a, b| {
        a.1.confidence
            .total_cmp(&b.1.confidence)
            .then(b.0.cmp(&a.0))
    });
    let amount_line = best.map(|(i, _)| *i);
    if let Some((_, a)) = best {
        out.amount = Some(a.cents);
        let disagree = amounts.iter().any(|(_, o)| o.cents != a.cents);
        out.confidence.amount = if disagree {
            a.confidence.min(0.3)
        } else {
            a.confidence
        };
    }

    // Operation code: after its label (same line or next line), else a lone bare code.
    let mut op_label_seen = false;
    let mut labelled: Vec<(String, f32)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(m) = OP_LABEL.find(&l.folded) else {
            continue;
        };
        op_label_seen = true;
        let rest = l.folded[m.end()..].trim();
        let same_line = rest.split_whitespace().collect::<String>();
        if let Some((code, mapped)) = code_token(&same_line) {
            labelled.push((code.clone(), code_confidence(&code, mapped, 0.95)));
        } else if rest.is_empty()
            && let Some(next) = lines.get(i + 1)
            && let Some((code, mapped)) = code_token(next.raw)
        {
            labelled.push((code.clone(), code_confidence(&code, mapped, 0.9)));
        }
    }
    if let Some((code, c)) = labelled.first() {
        let distinct = labelled.iter().any(|(o, _)| o != code);
        out.operation_code = Some(code.clone());
        out.confidence.operation_code = if distinct { c.min(0.4) } else { *c };
    } else if !op_label_seen {
        let bare: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != amount_line)
            .filter(|(i, _)| {
                // Not the continuation of a phone label.
                *i == 0 || !lines[i - 1].folded.contains("celular")
            })
            .filter_map(|(_, l)| code_token(l.raw))
            .filter(|(_, mapped)| !mapped)
            .map(|(c, _)| c)
            .collect();
        if let Some(code) = bare.first()
            && bare.iter().all(|o| o == code)
        {
            out.operation_code = Some(code.clone());
            out.confidence.operation_code = code_confidence(code, false, 0.6);
        }
    }

    // Counterparty: after `Enviado a`, else after the amount line, else after the title.
    let before_date = date_line.unwrap_or(lines.len());
    let after = |i: Option<usize>| i.and_then(|i| lines.get(i + 1).map(|l| (i + 1, l)));
    let sent_to = lines
        .iter()
        .position(|l| l.folded.starts_with("envi") && l.folded.ends_with(" a"));
    let name = [
        (after(sent_to), 0.9),
        (after(amount_line).filter(|(i, _)| *i < before_date), 0.85),
        (after(title).filter(|(i, _)| *i < before_date), 0.75),
    ]
    .into_iter()
    .find_map(|(l, c)| l.filter(|(_, l)| name_like(l)).map(|(_, l)| (l.raw, c)));
    if let Some((name, c)) = name {
        out.counterparty = Some(name.to_owned());
        out.confidence.counterparty = c;
    }

    // Page quality: how much of the expected layout was read. A degraded page (few anchors)
    // scales every confidence down, so that its labelled-but-misread values need review.
    let seen = [
        title.is_some(),
        out.date.is_some(),
        op_label_seen,
        out.amount.is_some(),
        lines.iter().any(|l| is_anchor(&l.folded)),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let quality = match seen {
        4.. => 1.0,
        3 => 0.8,
        _ => 0.7,
    };
    let c = &mut out.confidence;
    for v in [
        &mut c.amount,
        &mut c.operation_code,
        &mut c.date,
        &mut c.time,
        &mut c.counterparty,
    ] {
        *v = (*v * quality).clamp(0.0, 1.0);
    }
    out
}

/// Combines the page-pass result with the crop-pass amount. The crop amount wins when present
/// (it was right every time the two disagreed in the evaluation), but a disagreement lowers the
/// amount confidence to [`AMOUNT_DISAGREED`]; agreement of the two independent reads raises it to
/// [`AMOUNT_AGREED`]; a crop amount alone fills a missing amount with [`AMOUNT_CROP_ONLY`].
pub fn merge_amount(mut fields: ReceiptFields, crop_amount: Option<Cents>) -> ReceiptFields {
    let Some(crop) = crop_amount else {
        return fields;
    };
    fields.confidence.amount = match fields.amount {
        None => AMOUNT_CROP_ONLY,
        Some(page) if page == crop => fields.confidence.amount.max(AMOUNT_AGREED),
        Some(_) => AMOUNT_DISAGREED,
    };
    fields.amount = Some(crop);
    fields
}

/// Fills one field of `primary` from `fallback`.
fn fill<T: PartialEq>(primary: &mut Option<T>, pc: &mut f32, fallback: Option<T>, fc: f32) {
    match (primary.as_ref(), fallback) {
        (None, Some(v)) => {
            *primary = Some(v);
            *pc = fc;
        }
        (Some(p), Some(f)) if *p == f => *pc = pc.max(fc),
        (Some(_), Some(_)) => *pc = pc.min(RERUN_DISAGREED),
        _ => {}
    }
}

/// Fills the fields missing in `primary` from `fallback` (the 2x-upscale rerun), keeping
/// primary's values where present. When both reads have a value: agreement keeps the higher
/// confidence; disagreement keeps primary's value but caps its confidence at
/// [`RERUN_DISAGREED`] (two reads of the same pixels disagree: a human should look).
pub fn fill_missing(primary: ReceiptFields, fallback: ReceiptFields) -> ReceiptFields {
    let mut p = primary;
    let f = fallback;
    let c = &mut p.confidence;
    fill(&mut p.amount, &mut c.amount, f.amount, f.confidence.amount);
    fill(
        &mut p.operation_code,
        &mut c.operation_code,
        f.operation_code,
        f.confidence.operation_code,
    );
    fill(&mut p.date, &mut c.date, f.date, f.confidence.date);
    fill(&mut p.time, &mut c.time, f.time, f.confidence.time);
    fill(
        &mut p.counterparty,
        &mut c.counterparty,
        f.counterparty,
        f.confidence.counterparty,
    );
    p.wallet = p.wallet.or(f.wallet);
    p
}

/// Which of amount / operation code / date are missing (the pipeline reruns at 2x when this is
/// non-empty).
pub fn missing_key_fields(f: &ReceiptFields) -> Vec<Field> {
    let mut missing = Vec::new();
    if f.amount.is_none() {
        missing.push(Field::Amount);
    }
    if f.operation_code.is_none() {
        missing.push(Field::OperationCode);
    }
    if f.date.is_none() {
        missing.push(Field::Date);
    }
    missing
}

// ---------------------------------------------------------------------------------------------
// Reconciliation
// ---------------------------------------------------------------------------------------------

/// Thresholds for accepting a receipt automatically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileRules {
    /// Largest accepted `|amount - total|`.
    pub tolerance: Cents,
    /// Every key field needs at least this confidence.
    pub min_confidence: f32,
}

impl Default for ReconcileRules {
    /// S/ 0.50 tolerance, confidence 0.8.
    fn default() -> Self {
        ReconcileRules {
            tolerance: Cents(50),
            min_confidence: 0.8,
        }
    }
}

/// What the receipt should show for an order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected<'a> {
    pub total: Cents,
    /// Order created (UTC epoch ms).
    pub window_start_utc_ms: i64,
    /// Now plus a small slack (UTC epoch ms).
    pub window_end_utc_ms: i64,
    /// The merchant's (possibly masked) wallet account name, if known.
    pub merchant_name: Option<&'a str>,
}

/// The outcome of reconciling a receipt with an order. Never a rejection: OCR alone cannot prove
/// a receipt fake, so anything doubtful goes to a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// The order can be marked PAID.
    Accept,
    /// A human must look; `reasons` say why.
    ManualReview { reasons: Vec<String> },
}

/// Peru is UTC-5 all year (no DST).
const PERU_OFFSET_MS: i64 = -5 * 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-09-27` → (y, m, d), validated.
fn parse_iso_date(s: &str) -> Option<(i64, u32, u32)> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    (s.len() == 10 && (1..=9999).contains(&y) && d >= 1 && d <= days_in_month(y, m))
        .then_some((y, m, d))
}

/// `21:38` → minutes since midnight.
fn parse_hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m) && s.len() == 5).then_some(h * 60 + m)
}

/// `S/ 12.50`, for any `i64` (`Cents`' `Display` cannot take `i64::MIN`).
fn soles(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("S/ {sign}{}.{:02}", abs / 100, abs % 100)
}

/// Folds a name token for comparison: no accents, lowercase, letters (and the mask `*`) only,
/// `l`/`1`/`|`→`i`, `0`→`o` (OCR confusions).
fn name_key(name: &str) -> String {
    fold(name)
        .chars()
        .filter_map(|c| match c {
            'l' | '1' | '|' => Some('i'),
            '0' => Some('o'),
            c if c.is_alphabetic() || c == '*' => Some(c),
            _ => None,
        })
        .collect()
}

/// Levenshtein distance (names are short).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Close enough for OCR: one error in 3–7 letters, a quarter of the letters beyond.
fn close(a: &[char], b: &[char]) -> bool {
    let n = a.len().max(b.len());
    let allowed = match n {
        0..=2 => 0,
        3..=7 => 1,
        _ => n / 4,
    };
    edit_distance(a, b) <= allowed
}

/// Do two name tokens match? An initial (`M`) matches any token starting with it, a masked token
/// (`Lo*`) any token starting (about) with its visible prefix.
fn tokens_match(a: &str, b: &str) -> bool {
    let (va, vb) = (a.trim_end_matches('*'), b.trim_end_matches('*'));
    let (ca, cb): (Vec<char>, Vec<char>) = (va.chars().collect(), vb.chars().collect());
    if ca.is_empty() || cb.is_empty() {
        return true; // a bare `*`: nothing visible
    }
    if ca.len() == 1 || cb.len() == 1 {
        return ca[0] == cb[0];
    }
    if a.ends_with('*') || b.ends_with('*') {
        let n = ca.len().min(cb.len());
        return close(&ca[..n], &cb[..n]);
    }
    close(&ca, &cb)
}

/// Does the name on the receipt fit the merchant's account name? Token by token: initials
/// (`Rosa Quispe M.` ~ `Rosa Quispe Mamani`) and masks (`Ana Lo* C` ~ `Ana López Castro`) match
/// prefixes, and OCR noise is tolerated. Extra tokens on one side are ignored.
fn names_match(shown: &str, merchant: &str) -> bool {
    let tokens = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(name_key)
            .filter(|t| !t.is_empty())
            .collect()
    };
    let (a, b) = (tokens(shown), tokens(merchant));
    if a.is_empty() || b.is_empty() {
        return true; // nothing to compare
    }
    a.iter().zip(&b).all(|(x, y)| tokens_match(x, y))
}

/// Decides whether a receipt pays an order: the amount within `tolerance`
/// (`|amount - total| <= tolerance`); amount, operation code and date present with confidence
/// `>= min_confidence`; the date and time (Peru time, UTC-5) inside the window (without a
/// confident time, the whole day must overlap the window); and, when the merchant's name and a
/// confident counterparty are both known, the names must match. Never rejects: anything doubtful
/// is [`Decision::ManualReview`]. Duplicate operation codes are checked by the database layer.
pub fn reconcile(f: &ReceiptFields, expected: &Expected, rules: &ReconcileRules) -> Decision {
    let mut reasons = Vec::new();
    let min = rules.min_confidence;
    let c = &f.confidence;

    match f.amount {
        None => reasons.push("amount not found".to_owned()),
        Some(a) => {
            if c.amount < min {
                reasons.push(format!(
                    "amount {} read with low confidence ({:.2})",
                    soles(a.0),
                    c.amount
                ));
            }
            let off = i128::from(a.0) - i128::from(expected.total.0);
            if off.unsigned_abs() > u128::try_from(rules.tolerance.0).unwrap_or(0) {
                reasons.push(format!(
                    "amount {} differs from the order total {}",
                    soles(a.0),
                    soles(expected.total.0)
                ));
            }
        }
    }

    match &f.operation_code {
        None => reasons.push("operation code not found".to_owned()),
        Some(code) if c.operation_code < min => reasons.push(format!(
            "operation code {code} read with low confidence ({:.2})",
            c.operation_code
        )),
        Some(_) => {}
    }

    match f.date.as_deref().map(|d| (d, parse_iso_date(d))) {
        None => reasons.push("date not found".to_owned()),
        Some((d, None)) => reasons.push(format!("date `{d}` is not a valid date")),
        Some((d, Some((y, m, day)))) => {
            if c.date < min {
                reasons.push(format!("date {d} read with low confidence ({:.2})", c.date));
            }
            // Local midnight in UTC: local = utc + offset, so utc = local - offset.
            let day_start = days_from_civil(y, m, day) * DAY_MS - PERU_OFFSET_MS;
            let minute = f
                .time
                .as_deref()
                .filter(|_| c.time >= min)
                .and_then(parse_hhmm);
            let (start, end, what) = match minute {
                // The shown minute covers [t, t + 60 s).
                Some(mins) => {
                    let t = day_start + mins * 60_000;
                    (
                        t,
                        t + 60_000,
                        format!("{d} {}", f.time.as_deref().unwrap_or("")),
                    )
                }
                None => (day_start, day_start + DAY_MS, format!("{d} (whole day)")),
            };
            let overlaps =
                start <= expected.window_end_utc_ms && end > expected.window_start_utc_ms;
            if !overlaps {
                reasons.push(format!(
                    "payment time {what} (Peru) is outside the order's window"
                ));
            }
        }
    }

    if let (Some(merchant), Some(shown)) = (expected.merchant_name, f.counterparty.as_deref())
        && c.counterparty >= min
        && !names_match(shown, merchant)
    {
        reasons.push(format!(
            "recipient `{shown}` does not match the merchant `{merchant}`"
        ));
    }

    if reasons.is_empty() {
        Decision::Accept
    } else {
        Decision::ManualReview { reasons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAPE: &str = "12:24 4G 87%\n¡Yapeaste!\nS/ 23.50\nRosa Quispe M.\n27 set. 2026 | 09:38 p. m.\n\
        almuerzo\nCÓDIGO DE SEGURIDAD\n(1) (8) (4)\nDATOS DE LA TRANSACCIÓN\n\
        Nro. de celular *** *** 789\nDestino Plin\nNro. de operación 04718822\nCompartir\n\
        Yapea S/150 y gana\n";

    const INTERBANK: &str = "10:41\ninterbank\n¡Plineaste!\nAna Lo* C\n... 334 - Yape\nS/ 12.50\n\
        05 Oct 2026 | 10:30 AM\nCódigo de operación: 01234567\nCompartir constancia\n\
        Solo con Interbank paga a Plin\n";

    const GENERIC: &str = "¡Plineaste!\nS/ 300.00\nEnviado a\nPollería El Buen Sabor\nFecha y hora\n\
        07/10/2026 08:15 AM\nCódigo de operación\n004512\nDestino\nYape\n";

    fn at(f: &ReceiptFields) -> (Option<i64>, Option<&str>, Option<&str>, Option<&str>) {
        (
            f.amount.map(|a| a.0),
            f.operation_code.as_deref(),
            f.date.as_deref(),
            f.time.as_deref(),
        )
    }

    #[test]
    fn clean_screens_read_every_field() {
        let y = extract(YAPE);
        assert_eq!(
            at(&y),
            (
                Some(2350),
                Some("04718822"),
                Some("2026-09-27"),
                Some("21:38")
            )
        );
        assert_eq!(
            y.wallet,
            Some(Wallet::Yape),
            "`Destino Plin` is not the wallet"
        );
        assert_eq!(y.counterparty.as_deref(), Some("Rosa Quispe M."));
        let c = &y.confidence;
        assert!(
            c.operation_code >= 0.9 && c.date >= 0.9 && c.time >= 0.9,
            "{c:?}"
        );
        // A page-pass amount alone is never enough to accept (see the module docs).
        assert!(c.amount > 0.7 && c.amount < 0.8, "{c:?}");

        let i = extract(INTERBANK);
        assert_eq!(
            at(&i),
            (
                Some(1250),
                Some("01234567"),
                Some("2026-10-05"),
                Some("10:30")
            )
        );
        assert_eq!(i.wallet, Some(Wallet::Plin));
        assert_eq!(i.counterparty.as_deref(), Some("Ana Lo* C"));

        let g = extract(GENERIC);
        assert_eq!(
            at(&g),
            (
                Some(30000),
                Some("004512"),
                Some("2026-10-07"),
                Some("08:15")
            )
        );
        assert_eq!(g.counterparty.as_deref(), Some("Pollería El Buen Sabor"));
        assert!(g.confidence.operation_code >= 0.9, "next-line label");
    }

    #[test]
    fn ocr_noise_from_the_notes() {
        // `“478` (S/ read as a quote), `iYapeaste!`, `a. m.`, `-` separator, `O` for `0`.
        let t = "iYapeaste!\n“478\nRocío Cárdenas Ñ.\n02 ene. 2026 - 01:30 a. m.\nCODIGO DE SEGURIDAD\n\
            DATOS DE LA TRANSACCION\nNro. de operacion O1234567\nYapea S/150 y gana\n";
        let f = extract(t);
        assert_eq!(
            at(&f),
            (
                Some(47800),
                Some("01234567"),
                Some("2026-01-02"),
                Some("01:30")
            )
        );
        assert_eq!(f.wallet, Some(Wallet::Yape));
        assert!(
            f.confidence.operation_code < 0.9,
            "a mapped letter costs confidence"
        );

        // `s: 1,38 7`: digits joined across a space, lower confidence.
        let f =
            extract("¡Yapeaste!\ns: 1,38 7\nLucía Va*\n11 ene. 2026 | 02:15 p. m\nDestino Yape\n");
        assert_eq!(
            at(&f),
            (Some(138_700), None, Some("2026-01-11"), Some("14:15"))
        );
        assert!(f.confidence.amount <= 0.5);

        // Midnight and noon on the 12 h clock; `p. m` without the last dot.
        for (line, time) in [
            ("14 may. 2026 - 12:33 a. m.", "00:33"),
            ("14 may. 2026 - 12:05 p. m", "12:05"),
            ("07 oct. 2026 - 08:15 pm", "20:15"),
            ("28 Ago 2026 | 03:20 AM", "03:20"),
        ] {
            assert_eq!(extract(line).time.as_deref(), Some(time), "{line}");
        }

        // Thousands comma, whole amounts, `sep`/`set`.
        assert_eq!(
            extract("¡Yapeaste!\nS/ 1,250.00\n").amount,
            Some(Cents(125_000))
        );
        assert_eq!(extract("¡Yapeaste!\nS/ 35\n").amount, Some(Cents(3500)));
        assert_eq!(
            extract("01 sep. 2026 | 10:00 a. m.").date.as_deref(),
            Some("2026-09-01")
        );
    }

    #[test]
    fn operation_code_labels() {
        for label in [
            "Nro. de operación",
            "Código de operación:",
            "N° de operación",
            "Nº de operación",
            "Número de operación",
            "NRO. DE OPERACIÓN",
        ] {
            let f = extract(&format!("¡Yapeaste!\n{label} 04718822\n"));
            assert_eq!(f.operation_code.as_deref(), Some("04718822"), "{label}");
            let f = extract(&format!("¡Plineaste!\n{label}\n04718822\n"));
            assert_eq!(
                f.operation_code.as_deref(),
                Some("04718822"),
                "{label} / next line"
            );
        }
        // Bare digits without a label: read, but weak.
        let f = extract(
            "¡Plineaste!\n2,652.90\nCésar Huamán Vargas\n17/07/2026 09:56 PM\n36066994\nPlin\n",
        );
        assert_eq!(f.operation_code.as_deref(), Some("36066994"));
        assert!(f.confidence.operation_code < 0.8);
        // A label with an unreadable code gives nothing (not the phone digits).
        let f = extract("¡Yapeaste!\nNro. de celular 987 654 321\nNro. de operación ?? ?\n");
        assert_eq!(f.operation_code, None);
    }

    #[test]
    fn decoys_and_misreads() {
        // The ad's S/150 is never the amount; neither are the phone digits, the security code,
        // the status-bar clock or the message line.
        let f = extract(
            "12:24\n¡Yapeaste!\nRosa Q.\n27 set. 2026 | 09:38 p. m.\nadelanto pedido 41042\n\
             CÓDIGO DE SEGURIDAD\n574\nNro. de celular *** *** 789\nYapea S/150 y gana\n",
        );
        assert_eq!(f.amount, None);
        assert_eq!(f.time.as_deref(), Some("21:38"));
        // `S/ 295` read as `1295`: the app writes 1,295 with a comma, so the 1 is the `S/`.
        let f = extract("¡Yapeaste!\n1295\nLuis Gu*\n27 nov. 2026 | 08:51 p. m.\n");
        assert_eq!(f.amount, Some(Cents(29500)));
        assert!(f.confidence.amount < 0.5);
        // Two different amounts above the date: low confidence.
        let f = extract("¡Yapeaste!\n“478\n215\n02 ene. 2026 - 01:30 a. m.\n");
        assert!(f.amount.is_some() && f.confidence.amount < 0.5);
        // Impossible dates are dropped.
        assert_eq!(extract("31 set. 2026 | 09:38 p. m.").date, None);
        assert_eq!(extract("07/08/7075 07:13 PM").date, None);
        assert_eq!(
            extract("29 feb. 2028 - 10:00 a. m.").date.as_deref(),
            Some("2028-02-29")
        );
    }

    #[test]
    fn amount_lines() {
        for yes in [
            "S/ 23.50",
            "“478",
            "s: 1,387",
            "s: 1,38 7",
            "1295",
            "s, 506",
            ":244",
            "- 4,307.50",
            "$, 386.90",
            "\"332.50",
            "s/ 154.00",
            "S/. 12.50",
            "130.00",
            "54",
            "S/ 35",
        ] {
            assert!(is_amount_line(yes), "{yes}");
        }
        for no in [
            "Yapea S/150 y gana",
            "27 set. 2026 | 09:38 p. m.",
            "07/10/2026 08:15 AM",
            "*** *** 789",
            "Nro. de operación 04718822",
            "04718822",
            "22:14",
            "4G 87%",
            "20.209",
            "2 4 48",
            "2026",
            "adelanto pedido 41042",
            "271 - Plin",
            "",
        ] {
            assert!(!is_amount_line(no), "{no}");
        }
    }

    #[test]
    fn crop_pass_lines() {
        for (line, cents) in [
            ("23.50", Some(2350)),
            ("S/23.50", Some(2350)),
            ("/ 478", Some(47800)),
            ("1,387", Some(138_700)),
            ("1,38 7", Some(138_700)),
            ("415,42", Some(41542)),
            (" 2,652.90.", Some(265_290)),
            ("35", Some(3500)),
            ("1295", None),
            ("", None),
            ("..", None),
            ("12a5", None),
            ("0", None),
            ("04718822", None),
            ("1.2.3", None),
        ] {
            assert_eq!(parse_amount_line(line).map(|c| c.0), cents, "{line:?}");
        }
    }

    #[test]
    fn merging_the_crop_pass_and_the_rerun() {
        let page = extract(YAPE);
        let agreed = merge_amount(page.clone(), Some(Cents(2350)));
        assert!(agreed.confidence.amount >= 0.9);
        let disagreed = merge_amount(page.clone(), Some(Cents(2850)));
        assert_eq!(disagreed.amount, Some(Cents(2850)), "the crop pass wins");
        assert_eq!(disagreed.confidence.amount, AMOUNT_DISAGREED);
        assert_eq!(merge_amount(page.clone(), None), page);
        let crop_only = merge_amount(ReceiptFields::empty(), Some(Cents(100)));
        assert_eq!(
            (crop_only.amount, crop_only.confidence.amount),
            (Some(Cents(100)), AMOUNT_CROP_ONLY)
        );

        let mut primary = page.clone();
        primary.operation_code = None;
        primary.confidence.operation_code = 0.0;
        primary.date = None;
        primary.confidence.date = 0.0;
        assert_eq!(
            missing_key_fields(&primary),
            vec![Field::OperationCode, Field::Date]
        );
        let mut fallback = page.clone();
        fallback.counterparty = Some("Rosa Quispe N.".into());
        let filled = fill_missing(primary, fallback);
        assert_eq!(filled.operation_code, page.operation_code);
        assert_eq!(filled.date, page.date);
        assert!(missing_key_fields(&filled).is_empty());
        assert_eq!(filled.counterparty, page.counterparty, "primary kept");
        assert_eq!(filled.confidence.counterparty, RERUN_DISAGREED);
        assert_eq!(filled.confidence.amount, page.confidence.amount);
        assert_eq!(
            missing_key_fields(&ReceiptFields::empty()),
            vec![Field::Amount, Field::OperationCode, Field::Date]
        );
    }

    /// 2026-09-27 21:38 in Peru is 2026-09-28 02:38 UTC.
    const PAID_AT_MS: i64 = 1_790_563_080_000;

    fn good() -> ReceiptFields {
        let mut f = extract(YAPE);
        f = merge_amount(f, Some(Cents(2350)));
        f
    }

    fn expected(total: i64) -> Expected<'static> {
        Expected {
            total: Cents(total),
            window_start_utc_ms: PAID_AT_MS - 10 * 60_000,
            window_end_utc_ms: PAID_AT_MS + 10 * 60_000,
            merchant_name: None,
        }
    }

    fn reasons(d: Decision) -> Vec<String> {
        match d {
            Decision::Accept => Vec::new(),
            Decision::ManualReview { reasons } => reasons,
        }
    }

    #[test]
    fn peru_time_is_utc_minus_five() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let day = days_from_civil(2026, 9, 27) * DAY_MS - PERU_OFFSET_MS;
        assert_eq!(day + (21 * 60 + 38) * 60_000, PAID_AT_MS);
    }

    #[test]
    fn reconcile_tolerance_edges() {
        let rules = ReconcileRules::default();
        let f = good();
        assert_eq!(reconcile(&f, &expected(2350), &rules), Decision::Accept);
        assert_eq!(
            reconcile(&f, &expected(2300), &rules),
            Decision::Accept,
            "0.50 under"
        );
        assert_eq!(
            reconcile(&f, &expected(2400), &rules),
            Decision::Accept,
            "0.50 over"
        );
        for total in [2299, 2401] {
            let r = reasons(reconcile(&f, &expected(total), &rules));
            assert!(r.len() == 1 && r[0].contains("differs"), "{total}: {r:?}");
        }
        let exact = ReconcileRules {
            tolerance: Cents(0),
            ..ReconcileRules::default()
        };
        assert_ne!(reconcile(&f, &expected(2351), &exact), Decision::Accept);
    }

    #[test]
    fn reconcile_needs_confident_key_fields() {
        let rules = ReconcileRules::default();
        // Page pass only: the amount is never confident enough on its own.
        let r = reasons(reconcile(&extract(YAPE), &expected(2350), &rules));
        assert!(r.len() == 1 && r[0].contains("low confidence"), "{r:?}");
        for missing in [Field::Amount, Field::OperationCode, Field::Date] {
            let mut f = good();
            match missing {
                Field::Amount => f.amount = None,
                Field::OperationCode => f.operation_code = None,
                _ => f.date = None,
            }
            let r = reasons(reconcile(&f, &expected(2350), &rules));
            assert!(
                r.iter().any(|r| r.contains("not found")),
                "{missing:?}: {r:?}"
            );
        }
        let mut f = good();
        f.confidence.operation_code = 0.79;
        assert_ne!(reconcile(&f, &expected(2350), &rules), Decision::Accept);
        f.confidence.operation_code = 0.8;
        assert_eq!(reconcile(&f, &expected(2350), &rules), Decision::Accept);
    }

    #[test]
    fn reconcile_window() {
        let rules = ReconcileRules::default();
        let f = good();
        // Paid before the order was created.
        let mut e = expected(2350);
        e.window_start_utc_ms = PAID_AT_MS + 60_000;
        e.window_end_utc_ms = PAID_AT_MS + 3_600_000;
        let r = reasons(reconcile(&f, &e, &rules));
        assert!(r.len() == 1 && r[0].contains("outside"), "{r:?}");
        // The shown minute covers 21:38:00–21:38:59, so an order created at 21:38:30 fits.
        e.window_start_utc_ms = PAID_AT_MS + 30_000;
        assert_eq!(reconcile(&f, &e, &rules), Decision::Accept);
        // Another day entirely.
        let mut other_day = f.clone();
        other_day.date = Some("2026-09-26".into());
        assert_ne!(
            reconcile(&other_day, &expected(2350), &rules),
            Decision::Accept
        );

        // Missing or unsure time: the whole Peru day must overlap the window.
        let mut no_time = f.clone();
        no_time.time = None;
        no_time.confidence.time = 0.0;
        let mut e = expected(2350);
        e.window_start_utc_ms = PAID_AT_MS + 2 * 3_600_000; // 23:38 Peru, same day
        e.window_end_utc_ms = PAID_AT_MS + 3 * 3_600_000; // 00:38 next day
        assert_eq!(reconcile(&no_time, &e, &rules), Decision::Accept);
        assert_ne!(
            reconcile(&f, &e, &rules),
            Decision::Accept,
            "21:38 is before"
        );
        e.window_start_utc_ms = PAID_AT_MS + 2 * 3_600_000 + 23 * 60_000; // 00:01 next day
        assert_ne!(reconcile(&no_time, &e, &rules), Decision::Accept);
        let mut unsure = f.clone();
        unsure.confidence.time = 0.4;
        e.window_start_utc_ms = PAID_AT_MS + 3_600_000;
        assert_eq!(reconcile(&unsure, &e, &rules), Decision::Accept);
    }

    #[test]
    fn reconcile_merchant_name() {
        let rules = ReconcileRules::default();
        let f = good(); // "Rosa Quispe M."
        for (merchant, ok) in [
            ("Rosa Quispe M.", true),
            ("ROSA QUISPE M", true),
            ("Rosa Qu*", true),
            ("Rosa Quispe Mamani", true),
            ("Juan Pérez", false),
        ] {
            let e = Expected {
                merchant_name: Some(merchant),
                ..expected(2350)
            };
            assert_eq!(
                reconcile(&f, &e, &rules) == Decision::Accept,
                ok,
                "{merchant}"
            );
        }
        assert!(names_match("Ana Lo* C", "Ana López Castro"));
        assert!(names_match("Luis FlI*", "Luis Flores"));
        assert!(names_match("Néstor Flores M.", "NESTOR FL*"));
        assert!(!names_match("Ana Lo* C", "Rosa Quispe"));
        assert!(!names_match("Ana Lo* C", "Ana Quispe"));
        assert!(!names_match("Luis Gu*", "Lucía Gutiérrez"));
    }

    #[test]
    fn serde_shapes() {
        let f = good();
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["wallet"], "yape");
        assert_eq!(json["amount"], 2350);
        assert_eq!(json["operation_code"], "04718822");
        let back: ReceiptFields = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
        assert_eq!(
            serde_json::to_value(Decision::Accept).unwrap(),
            serde_json::json!({"decision": "ACCEPT"})
        );
        assert_eq!(
            serde_json::to_value(Decision::ManualReview {
                reasons: vec!["x".into()]
            })
            .unwrap(),
            serde_json::json!({"decision": "MANUAL_REVIEW", "reasons": ["x"]})
        );
        assert_eq!(
            serde_json::to_value(Field::OperationCode).unwrap(),
            "operation_code"
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        // xorshift64*: deterministic, no dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let alphabet: Vec<char> =
            "0123456789 .,:/|-*S$“\"s\nOoIl¡!ñáéíóúaAmpMdeNroperacióngtsbyYPLI°º\u{0}\u{FFFD}"
                .chars()
                .collect();
        for round in 0..300 {
            let len = (next() % 400) as usize;
            let text: String = if round % 3 == 0 {
                let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            let f = extract(&text);
            let _ = (is_amount_line(&text), parse_amount_line(&text));
            let c = &f.confidence;
            for v in [c.amount, c.operation_code, c.date, c.time, c.counterparty] {
                assert!((0.0..=1.0).contains(&v), "{text:?}");
            }
            let _ = reconcile(&f, &expected(1), &ReconcileRules::default());
        }
        // Huge inputs: capped, still fast and total.
        let huge = format!("{YAPE}{}", "9".repeat(5_000_000));
        assert_eq!(extract(&huge).operation_code.as_deref(), Some("04718822"));
        let lines = "¡Yapeaste!\nS/ 1\n".repeat(200_000);
        let _ = extract(&lines);
        let _ = extract(&"ñ".repeat(100_000));
        let _ = parse_amount_line(&"1,".repeat(100_000));
        // Extreme values in reconcile.
        let mut f = good();
        f.amount = Some(Cents(i64::MIN));
        f.date = Some("9999-12-31".into());
        let _ = reconcile(&f, &expected(i64::MAX), &ReconcileRules::default());
        f.date = Some("2026-02-30".into());
        assert_ne!(
            reconcile(&f, &expected(0), &ReconcileRules::default()),
            Decision::Accept
        );
    }
}
