//! Visibility queries restricted to one tenant.
//!
//! Every query sent to Temporal starts with `TenantId = '<tenant>'` and ANDs everything else
//! after it. A caller's free query is never sent as written: [`parse_free_query`] reads it into
//! an [`Expr`] tree over a small subset of Temporal's visibility language, and the tree is
//! rendered back ([`Expr`]'s `Display`) fully parenthesised, with our own quoting. An earlier
//! version checked the raw text instead (quotes closed, parentheses balanced) and was fooled by
//! SQL comments, which Temporal's parser drops: `WorkflowId = 'x' /* ' */ ) OR ( …` looked
//! balanced to the count and closed the tenant's parenthesis for Temporal. This tokenizer knows
//! no comments, so it refuses them, and whatever it accepts is re-quoted by us.
//!
//! The subset (keywords in any case; spaces, tabs and newlines between tokens):
//!
//! - names: search attributes, `[A-Za-z_][A-Za-z0-9_]*`. `TenantId` is refused: every query is
//!   already restricted to the caller's tenant.
//! - predicates: `name = v` (also `!=`, `<>`, `<`, `<=`, `>`, `>=`), `name [NOT] IN (v, …)`,
//!   `name [NOT] BETWEEN v AND v`, `name [NOT] STARTS_WITH 'text'`, `name IS [NOT] NULL`.
//! - `NOT e`, `e AND e`, `e OR e`, `(e)`; `NOT` binds tighter than `AND`, `AND` than `OR`.
//! - values: strings in single or double quotes (the quote doubled stands for itself:
//!   `'it''s'`; no backslashes or control characters), integers and decimals (`-12`, `3.5`),
//!   `true`, `false`.
//!
//! Anything else (comments `/*`, `--`, `#`, `;`, `ORDER BY`, backticks, other characters,
//! input after the expression) is [`OpsError::Invalid`] naming the byte offset, counted from 0:
//! "`query` at 17: unexpected `/*`". A query is at most [`MAX_QUERY_BYTES`] long and nests at
//! most [`MAX_DEPTH`] levels, so neither the parser nor the renderer can exhaust the stack.
//!
//! Lists also check each returned workflow's `TenantId` (see [`super::Operations::list`]); the
//! query is the boundary, that check is the second lock.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use zengine_domain::TenantId;

use super::OpsError;

/// Longest free visibility query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;

/// Deepest nesting of a free query: parentheses, and `AND`/`OR`/`NOT` nodes of its tree.
pub const MAX_DEPTH: usize = 32;

/// The search attribute that holds the tenant; the server sets it, callers may not name it.
const TENANT_ATTRIBUTE: &str = "TenantId";

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
    /// A free visibility query in the subset this module documents, ANDed with the rest.
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

/// A parsed free query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Two or more operands.
    And(Vec<Expr>),
    /// Two or more operands.
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Predicate(Predicate),
}

/// `name <test>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    /// A search attribute name (`[A-Za-z_][A-Za-z0-9_]*`, not a keyword, not `TenantId`).
    pub name: String,
    pub test: Test,
}

/// What a predicate asks of its attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    Compare(CmpOp, Value),
    In {
        negated: bool,
        values: Vec<Value>,
    },
    Between {
        negated: bool,
        low: Value,
        high: Value,
    },
    StartsWith {
        negated: bool,
        prefix: String,
    },
    IsNull {
        negated: bool,
    },
}

/// A comparison operator (`<>` is read as `!=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Any text without backslashes or control characters.
    Str(String),
    /// `-?[0-9]+(\.[0-9]+)?`, kept as written.
    Num(String),
    Bool(bool),
}

impl Expr {
    /// Levels of the tree: 1 for a predicate.
    pub fn depth(&self) -> usize {
        match self {
            Expr::And(items) | Expr::Or(items) => {
                1 + items.iter().map(Expr::depth).max().unwrap_or(0)
            }
            Expr::Not(inner) => 1 + inner.depth(),
            Expr::Predicate(_) => 1,
        }
    }
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// Every node in its own parentheses, so the text's nesting is the tree's and nothing depends
/// on Temporal's precedence rules.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[Expr], op: &str| {
            f.write_str("(")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(")")
        };
        match self {
            Expr::And(items) => list(f, items, "AND"),
            Expr::Or(items) => list(f, items, "OR"),
            Expr::Not(inner) => write!(f, "(NOT {inner})"),
            Expr::Predicate(p) => write!(f, "({p})"),
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negated: bool| if negated { "NOT " } else { "" };
        write!(f, "{} ", self.name)?;
        match &self.test {
            Test::Compare(op, value) => write!(f, "{} {value}", op.as_str()),
            Test::In { negated, values } => {
                write!(f, "{}IN (", not(*negated))?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str(")")
            }
            Test::Between { negated, low, high } => {
                write!(f, "{}BETWEEN {low} AND {high}", not(*negated))
            }
            Test::StartsWith { negated, prefix } => {
                write!(f, "{}STARTS_WITH {}", not(*negated), Quoted(prefix))
            }
            Test::IsNull { negated } => write!(f, "IS {}NULL", not(*negated)),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(text) => write!(f, "{}", Quoted(text)),
            Value::Num(number) => f.write_str(number),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A string literal in single quotes, a quote inside doubled. The parser let no backslash or
/// control character into a value, so whatever escape rules the reader applies, the literal
/// ends where we end it.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'", self.0.replace('\'', "''"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
    In,
    Between,
    StartsWith,
    Is,
    Null,
    True,
    False,
}

const KEYWORDS: &[(&str, Keyword)] = &[
    ("AND", Keyword::And),
    ("OR", Keyword::Or),
    ("NOT", Keyword::Not),
    ("IN", Keyword::In),
    ("BETWEEN", Keyword::Between),
    ("STARTS_WITH", Keyword::StartsWith),
    ("IS", Keyword::Is),
    ("NULL", Keyword::Null),
    ("TRUE", Keyword::True),
    ("FALSE", Keyword::False),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Keyword(Keyword),
    Str(String),
    Num(String),
    Op(CmpOp),
    Open,
    Close,
    Comma,
}

/// A token and where it is in the query (byte offsets).
#[derive(Debug)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

/// "`query` at 17: …".
fn at(position: usize, message: impl fmt::Display) -> OpsError {
    invalid(format!("`query` at {position}: {message}"))
}

/// A short, printable excerpt of the query for an error message.
fn excerpt(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(24)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if text.chars().count() > 24 {
        shown.push('…');
    }
    format!("`{shown}`")
}

fn tokenize(query: &str) -> Result<Vec<Token>, OpsError> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let next = bytes.get(i + 1).copied();
        let tok = match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'=' => {
                i += 1;
                Tok::Op(CmpOp::Eq)
            }
            b'!' if next == Some(b'=') => {
                i += 2;
                Tok::Op(CmpOp::Ne)
            }
            b'<' if next == Some(b'>') => {
                i += 2;
                Tok::Op(CmpOp::Ne)
            }
            b'<' if next == Some(b'=') => {
                i += 2;
                Tok::Op(CmpOp::Le)
            }
            b'<' => {
                i += 1;
                Tok::Op(CmpOp::Lt)
            }
            b'>' if next == Some(b'=') => {
                i += 2;
                Tok::Op(CmpOp::Ge)
            }
            b'>' => {
                i += 1;
                Tok::Op(CmpOp::Gt)
            }
            quote @ (b'\'' | b'"') => {
                let (text, end) = string(query, start, quote)?;
                i = end;
                Tok::Str(text)
            }
            b'-' if next.is_some_and(|b| b.is_ascii_digit()) => {
                i = number_end(bytes, i + 1);
                Tok::Num(query[start..i].to_owned())
            }
            b'0'..=b'9' => {
                i = number_end(bytes, i);
                Tok::Num(query[start..i].to_owned())
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &query[start..i];
                match KEYWORDS.iter().find(|(k, _)| k.eq_ignore_ascii_case(word)) {
                    Some((_, keyword)) => Tok::Keyword(*keyword),
                    None => Tok::Name(word.to_owned()),
                }
            }
            _ => {
                // Two-character tokens Temporal would read as comments are named whole.
                let shown = match (bytes[i], next) {
                    (b'/', Some(b'*')) | (b'-', Some(b'-')) | (b'*', Some(b'/')) => {
                        &query[i..i + 2]
                    }
                    _ => {
                        let c = query[i..].chars().next().unwrap_or_default();
                        &query[i..i + c.len_utf8()]
                    }
                };
                return Err(at(start, format!("unexpected {}", excerpt(shown))));
            }
        };
        tokens.push(Token { tok, start, end: i });
    }
    Ok(tokens)
}

/// The end of `[0-9]+(\.[0-9]+)?` from `i` (which holds a digit).
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    i
}

/// The string literal opened by `quote` at `start`: its value and the offset after it.
fn string(query: &str, start: usize, quote: u8) -> Result<(String, usize), OpsError> {
    let quote = char::from(quote);
    let mut value = String::new();
    let mut chars = query[start + 1..].char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let position = start + 1 + offset;
        if c == quote {
            if chars.peek().is_some_and(|&(_, next)| next == quote) {
                chars.next();
                value.push(quote);
                continue;
            }
            return Ok((value, position + 1));
        }
        if c == '\\' {
            return Err(at(
                position,
                "backslashes are not supported in strings (write a quote twice to include it)",
            ));
        }
        if c.is_control() {
            return Err(at(position, "control character in a string"));
        }
        value.push(c);
    }
    Err(at(start, "unterminated string"))
}

struct Parser<'q> {
    query: &'q str,
    tokens: Vec<Token>,
    next: usize,
    /// Parentheses open around the current token.
    parens: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.next).map(|t| &t.tok)
    }

    /// Where the next token starts (the query's length at the end).
    fn position(&self) -> usize {
        self.tokens
            .get(self.next)
            .map_or(self.query.len(), |t| t.start)
    }

    fn unexpected(&self, wanted: &str) -> OpsError {
        match self.tokens.get(self.next) {
            Some(t) => at(
                t.start,
                format!(
                    "unexpected {}, expected {wanted}",
                    excerpt(&self.query[t.start..t.end])
                ),
            ),
            None => at(
                self.query.len(),
                format!("unexpected end, expected {wanted}"),
            ),
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, wanted: &str) -> Result<(), OpsError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    fn node(&self, start: usize, expr: Expr) -> Result<Expr, OpsError> {
        if expr.depth() > MAX_DEPTH {
            return Err(at(start, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(expr)
    }

    fn or(&mut self) -> Result<Expr, OpsError> {
        let start = self.position();
        let mut items = vec![self.and()?];
        while self.eat(&Tok::Keyword(Keyword::Or)) {
            items.push(self.and()?);
        }
        if items.len() == 1 {
            return Ok(items.remove(0));
        }
        self.node(start, Expr::Or(items))
    }

    fn and(&mut self) -> Result<Expr, OpsError> {
        let start = self.position();
        let mut items = vec![self.not()?];
        while self.eat(&Tok::Keyword(Keyword::And)) {
            items.push(self.not()?);
        }
        if items.len() == 1 {
            return Ok(items.remove(0));
        }
        self.node(start, Expr::And(items))
    }

    /// `NOT`s in a row are counted, not recursed into.
    fn not(&mut self) -> Result<Expr, OpsError> {
        let mut nots = Vec::new();
        while self.peek() == Some(&Tok::Keyword(Keyword::Not)) {
            nots.push(self.position());
            self.next += 1;
        }
        let mut expr = self.primary()?;
        for start in nots.into_iter().rev() {
            expr = self.node(start, Expr::Not(Box::new(expr)))?;
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, OpsError> {
        let start = self.position();
        match self.peek() {
            Some(Tok::Open) => {
                if self.parens == MAX_DEPTH {
                    return Err(at(
                        start,
                        format!("more than {MAX_DEPTH} nested parentheses"),
                    ));
                }
                self.next += 1;
                self.parens += 1;
                let inner = self.or()?;
                self.expect(&Tok::Close, "`)`")?;
                self.parens -= 1;
                Ok(inner)
            }
            Some(Tok::Name(_)) => self.predicate().map(Expr::Predicate),
            _ => Err(self.unexpected("a search attribute name, `NOT` or `(`")),
        }
    }

    fn predicate(&mut self) -> Result<Predicate, OpsError> {
        let start = self.position();
        let Some(Tok::Name(name)) = self.peek().cloned() else {
            return Err(self.unexpected("a search attribute name"));
        };
        if name.eq_ignore_ascii_case(TENANT_ATTRIBUTE) {
            return Err(at(
                start,
                format!(
                    "`{TENANT_ATTRIBUTE}` may not be queried: every list is already restricted to your tenant"
                ),
            ));
        }
        self.next += 1;
        let negated = self.eat(&Tok::Keyword(Keyword::Not));
        let test = match self.peek().cloned() {
            Some(Tok::Op(op)) if !negated => {
                self.next += 1;
                Test::Compare(op, self.value()?)
            }
            Some(Tok::Keyword(Keyword::In)) => {
                self.next += 1;
                self.expect(&Tok::Open, "`(`")?;
                let mut values = vec![self.value()?];
                while self.eat(&Tok::Comma) {
                    values.push(self.value()?);
                }
                self.expect(&Tok::Close, "`,` or `)`")?;
                Test::In { negated, values }
            }
            Some(Tok::Keyword(Keyword::Between)) => {
                self.next += 1;
                let low = self.value()?;
                self.expect(&Tok::Keyword(Keyword::And), "`AND`")?;
                let high = self.value()?;
                Test::Between { negated, low, high }
            }
            Some(Tok::Keyword(Keyword::StartsWith)) => {
                self.next += 1;
                match self.peek().cloned() {
                    Some(Tok::Str(prefix)) => {
                        self.next += 1;
                        Test::StartsWith { negated, prefix }
                    }
                    _ => return Err(self.unexpected("a string")),
                }
            }
            Some(Tok::Keyword(Keyword::Is)) if !negated => {
                self.next += 1;
                let negated = self.eat(&Tok::Keyword(Keyword::Not));
                self.expect(&Tok::Keyword(Keyword::Null), "`NULL`")?;
                Test::IsNull { negated }
            }
            _ if negated => return Err(self.unexpected("`IN`, `BETWEEN` or `STARTS_WITH`")),
            _ => {
                return Err(self.unexpected(
                    "a comparison (`=`, `!=`, `<`, `<=`, `>`, `>=`), `IN`, `BETWEEN`, \
                     `STARTS_WITH` or `IS`",
                ));
            }
        };
        Ok(Predicate { name, test })
    }

    fn value(&mut self) -> Result<Value, OpsError> {
        let value = match self.peek() {
            Some(Tok::Str(text)) => Value::Str(text.clone()),
            Some(Tok::Num(number)) => Value::Num(number.clone()),
            Some(Tok::Keyword(Keyword::True)) => Value::Bool(true),
            Some(Tok::Keyword(Keyword::False)) => Value::Bool(false),
            _ => return Err(self.unexpected("a string, a number, `true` or `false`")),
        };
        self.next += 1;
        Ok(value)
    }
}

/// Parses a free query in the subset the module documents.
pub fn parse_free_query(query: &str) -> Result<Expr, OpsError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(invalid(format!(
            "`query` is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    let mut parser = Parser {
        query,
        tokens: tokenize(query)?,
        next: 0,
        parens: 0,
    };
    let expr = parser.or()?;
    if parser.peek().is_some() {
        return Err(parser.unexpected("`AND`, `OR` or the end of the query"));
    }
    Ok(expr)
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
    // Positions in errors count from the start of the query as sent, so it is not trimmed.
    if let Some(query) = filter.query.as_deref().filter(|q| !q.trim().is_empty()) {
        // Rendered in parentheses: the raw text never reaches Temporal.
        parts.push(parse_free_query(query)?.to_string());
    }
    Ok(parts.join(" AND "))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The query of the report: comments hide a `)` and an `OR` from a quote count.
    const ATTACK: &str = "WorkflowId = 'x' /* ' */ ) OR ( WorkflowId != 'x' /* '  */";

    fn demo() -> TenantId {
        TenantId::parse("demo").unwrap()
    }

    fn render(query: &str) -> String {
        parse_free_query(query)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .to_string()
    }

    /// The error message of a refused query.
    fn refusal(query: &str) -> String {
        match parse_free_query(query) {
            Ok(expr) => panic!("`{query}` was accepted as {expr}"),
            Err(OpsError::Invalid(message)) => message,
            Err(other) => panic!("`{query}`: {other:?}"),
        }
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
             ((WorkflowId STARTS_WITH 'demo/order') OR (WorkflowType = 'Payment'))"
        );
        // A blank query adds nothing.
        let blank = ListFilter {
            query: Some("  ".into()),
            ..ListFilter::default()
        };
        assert_eq!(
            visibility_query(&demo(), &blank).unwrap(),
            "TenantId = 'demo'"
        );
    }

    #[test]
    fn the_reported_attack_is_refused_at_the_comment() {
        assert_eq!(refusal(ATTACK), "`query` at 17: unexpected `/*`");
        let filter = ListFilter {
            query: Some(ATTACK.into()),
            ..ListFilter::default()
        };
        assert!(matches!(
            visibility_query(&demo(), &filter),
            Err(OpsError::Invalid(_))
        ));
    }

    #[test]
    fn comments_separators_and_escapes_are_refused_with_their_position() {
        for (query, position, what) in [
            ("WorkflowId = 'x' -- ' ) OR ( WorkflowId != 'x'", 17, "`--`"),
            ("WorkflowId = 'x' # ' ) OR ( WorkflowId != 'x'", 17, "`#`"),
            ("WorkflowId = 'x'; WorkflowId != 'x'", 16, "`;`"),
            ("WorkflowId = 'x' */", 17, "`*/`"),
            ("WorkflowId = \u{2018}x\u{2019}", 13, "`\u{2018}`"),
            ("WorkflowId = \u{201C}x\u{201D}", 13, "`\u{201C}`"),
            ("WorkflowId = 'x' ) OR ( WorkflowId != 'x'", 17, "`)`"),
            ("x = 1) OR (TenantId = 'other'", 5, "`)`"),
            (") OR (x = 1", 0, "`)`"),
            ("WorkflowId = 'x' ORDER BY StartTime", 17, "`ORDER`"),
            ("WorkflowId = 'x' GROUP BY WorkflowType", 17, "`GROUP`"),
            ("`TenantId` = 'x'", 0, "```"),
            ("WorkflowId LIKE 'x%'", 11, "`LIKE`"),
            ("WorkflowId = 'x' AND", 20, "end"),
            ("()", 1, "`)`"),
            ("WorkflowId IN ()", 15, "`)`"),
            ("WorkflowId = WorkflowType", 13, "`WorkflowType`"),
            ("WorkflowId = 1.", 14, "`.`"),
            ("WorkflowId NOT = 'x'", 15, "`=`"),
            ("WorkflowId = 'x'\u{0}", 16, "`\u{FFFD}`"),
            ("WorkflowId\u{A0}= 'x'", 10, "`\u{A0}`"),
        ] {
            let message = refusal(query);
            assert!(
                message.starts_with(&format!("`query` at {position}: unexpected {what}")),
                "{query:?}: {message}"
            );
        }
        for (query, position, what) in [
            ("WorkflowId = 'it\\'s'", 16, "backslashes are not supported"),
            ("WorkflowId = 'x\n'", 15, "control character in a string"),
            ("WorkflowId = 'x", 13, "unterminated string"),
            (
                "WorkflowId = 'x' OR WorkflowId = \"y",
                33,
                "unterminated string",
            ),
        ] {
            let message = refusal(query);
            assert!(
                message.starts_with(&format!("`query` at {position}: {what}")),
                "{query:?}: {message}"
            );
        }
    }

    #[test]
    fn the_tenant_attribute_is_refused_in_any_case() {
        assert!(refusal("TenantId = 'other'").starts_with("`query` at 0: `TenantId` may not"));
        assert!(
            refusal("WorkflowType = 'a' OR tenantid = 'b'")
                .starts_with("`query` at 22: `TenantId` may not")
        );
        assert!(refusal("NOT (TENANTID IS NULL)").starts_with("`query` at 5: `TenantId` may not"));
        // As a value it is just text.
        assert_eq!(
            render("WorkflowId = 'TenantId'"),
            "(WorkflowId = 'TenantId')"
        );
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let parens = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(render(&parens(MAX_DEPTH)), "(a = 1)");
        assert_eq!(
            refusal(&parens(MAX_DEPTH + 1)),
            format!("`query` at {MAX_DEPTH}: more than {MAX_DEPTH} nested parentheses")
        );
        // Thousands of parentheses stop at the limit, not at the end of the stack.
        let huge = "(".repeat(MAX_QUERY_BYTES);
        assert!(refusal(&huge).contains("nested parentheses"));

        // The tree's own depth: a predicate is 1, each NOT adds one.
        let nots = |n: usize| format!("{}a = 1", "NOT ".repeat(n));
        let deepest = render(&nots(MAX_DEPTH - 1));
        assert_eq!(parse_free_query(&deepest).unwrap().depth(), MAX_DEPTH);
        assert_eq!(render(&deepest), deepest);
        assert_eq!(
            refusal(&nots(MAX_DEPTH)),
            format!("`query` at 0: nested deeper than {MAX_DEPTH} levels")
        );

        let long = format!("a = '{}'", "x".repeat(MAX_QUERY_BYTES));
        assert_eq!(
            refusal(&long),
            format!("`query` is longer than {MAX_QUERY_BYTES} bytes")
        );
    }

    #[test]
    fn legitimate_queries_render_fully_parenthesised() {
        for (query, rendered) in [
            (
                "WorkflowType = 'Conversation' AND ExecutionStatus = 'Running'",
                "((WorkflowType = 'Conversation') AND (ExecutionStatus = 'Running'))",
            ),
            (
                "StartTime > '2026-01-01T00:00:00Z'",
                "(StartTime > '2026-01-01T00:00:00Z')",
            ),
            (
                "WorkflowId STARTS_WITH 'demo/'",
                "(WorkflowId STARTS_WITH 'demo/')",
            ),
            (
                "CustomKeywordField IN ('a','b')",
                "(CustomKeywordField IN ('a', 'b'))",
            ),
            (
                "a = 1 OR b <> 2 AND NOT c >= -3.5",
                "((a = 1) OR ((b != 2) AND (NOT (c >= -3.5))))",
            ),
            (
                "(a = 1 OR b = 2) AND c = true",
                "(((a = 1) OR (b = 2)) AND (c = true))",
            ),
            (
                "a not in (1) and b not between 'x' and 'y' or c not starts_with \"p\"",
                "(((a NOT IN (1)) AND (b NOT BETWEEN 'x' AND 'y')) OR (c NOT STARTS_WITH 'p'))",
            ),
            (
                "CloseTime IS NULL AND\n\tStartTime IS NOT NULL",
                "((CloseTime IS NULL) AND (StartTime IS NOT NULL))",
            ),
            (
                "WorkflowId = \"it's\" OR WorkflowId = 'it''s' OR x = \"say \"\"hi\"\"\"",
                "((WorkflowId = 'it''s') OR (WorkflowId = 'it''s') OR (x = 'say \"hi\"'))",
            ),
            (
                "WorkflowId = 'a /* b */ -- c # d ; e ) OR ('",
                "(WorkflowId = 'a /* b */ -- c # d ; e ) OR (')",
            ),
            ("WorkflowId = 'señal ✓'", "(WorkflowId = 'señal ✓')"),
        ] {
            assert_eq!(render(query), rendered, "{query}");
            assert_eq!(render(rendered), rendered, "{rendered}");
        }
    }

    /// What a MySQL-style reader (Temporal's: comments, backslash escapes, doubled quotes)
    /// sees outside string literals, or `None` when a literal never ends.
    fn outside_literals(text: &str) -> Option<String> {
        let mut outside = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if !matches!(c, '\'' | '"' | '`') {
                outside.push(c);
                continue;
            }
            outside.push('_');
            loop {
                match chars.next()? {
                    '\\' => {
                        chars.next()?;
                    }
                    q if q == c && chars.peek() == Some(&c) => {
                        chars.next();
                    }
                    q if q == c => break,
                    _ => {}
                }
            }
        }
        Some(outside)
    }

    /// The rendered free query stays inside its own parentheses for that reader: no comment,
    /// and the `(` it starts with closes only at its very end.
    fn stays_wrapped(rendered: &str) -> Result<(), String> {
        let outside = outside_literals(rendered).ok_or("a literal never ends")?;
        for marker in ["/*", "*/", "--", "#", ";", "`"] {
            if outside.contains(marker) {
                return Err(format!("`{marker}` outside literals"));
            }
        }
        let mut depth = 0usize;
        for (i, c) in outside.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.checked_sub(1).ok_or("a `)` closes nothing")?,
                _ if depth == 0 => return Err(format!("`{c}` outside the wrapper")),
                _ => {}
            }
            if depth == 0 && i + 1 != outside.len() {
                return Err(format!("the wrapper closes at {i}"));
            }
        }
        Ok(())
    }

    #[test]
    fn the_renderer_keeps_hostile_text_inside_literals() {
        // The checker sees the reported attack for what it is.
        assert!(stays_wrapped(&format!("({ATTACK})")).is_err());
        for query in [
            "WorkflowId = 'x'' /* '' */ ) OR ( WorkflowId != ''x'",
            "WorkflowId = \"x' ) OR (WorkflowId != 'x\"",
            "WorkflowId IN ('--', '#', ';', '*/', '/*', ')', '(')",
        ] {
            let rendered = render(query);
            stays_wrapped(&rendered).unwrap_or_else(|e| panic!("{rendered}: {e}"));
        }
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_]{0,10}".prop_filter("keywords and TenantId are not names", |n| {
            !n.eq_ignore_ascii_case(TENANT_ATTRIBUTE)
                && !KEYWORDS.iter().any(|(k, _)| k.eq_ignore_ascii_case(n))
        })
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[^\\\\\\p{Cc}]{0,12}",
            // The characters an attacker reaches for, densely.
            "['\"`()/*#;\\- a-z]{0,12}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            text().prop_map(Value::Str),
            "-?[0-9]{1,6}(\\.[0-9]{1,3})?".prop_map(Value::Num),
            any::<bool>().prop_map(Value::Bool),
        ]
    }

    fn predicate() -> impl Strategy<Value = Expr> {
        let op = prop_oneof![
            Just(CmpOp::Eq),
            Just(CmpOp::Ne),
            Just(CmpOp::Lt),
            Just(CmpOp::Le),
            Just(CmpOp::Gt),
            Just(CmpOp::Ge),
        ];
        let test = prop_oneof![
            (op, value()).prop_map(|(op, v)| Test::Compare(op, v)),
            (any::<bool>(), prop::collection::vec(value(), 1..4))
                .prop_map(|(negated, values)| Test::In { negated, values }),
            (any::<bool>(), value(), value()).prop_map(|(negated, low, high)| Test::Between {
                negated,
                low,
                high
            }),
            (any::<bool>(), text())
                .prop_map(|(negated, prefix)| Test::StartsWith { negated, prefix }),
            any::<bool>().prop_map(|negated| Test::IsNull { negated }),
        ];
        (name(), test).prop_map(|(name, test)| Expr::Predicate(Predicate { name, test }))
    }

    fn expr() -> impl Strategy<Value = Expr> {
        predicate().prop_recursive(6, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    /// Pieces of queries, hostile ones included, to glue into token soups.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "(",
            ")",
            " ",
            "AND",
            "OR",
            "NOT",
            "not",
            "WorkflowId",
            "TenantId",
            "=",
            "!=",
            "<>",
            "<",
            ">=",
            "IN",
            "BETWEEN",
            "STARTS_WITH",
            "IS",
            "NULL",
            "'a'",
            "'it''s'",
            "\"x\"",
            "'",
            "\"",
            "1",
            "-2.5",
            "true",
            ",",
            "/*",
            "*/",
            "--",
            "#",
            ";",
            "\\",
            "`",
            "\u{2019}",
            "ORDER BY",
            "\n",
        ])
    }

    proptest! {
        #[test]
        fn rendering_a_tree_and_parsing_it_back_is_a_fixed_point(tree in expr()) {
            let rendered = tree.to_string();
            prop_assume!(rendered.len() <= MAX_QUERY_BYTES);
            let parsed = parse_free_query(&rendered)
                .map_err(|e| TestCaseError::fail(format!("{rendered}: {e}")))?;
            prop_assert_eq!(&parsed, &tree);
            prop_assert_eq!(parsed.to_string(), rendered.clone());
            prop_assert!(stays_wrapped(&rendered).is_ok(), "{}", rendered);
        }

        #[test]
        fn random_bytes_are_refused_or_rendered_stably(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            let query = String::from_utf8_lossy(&bytes);
            if let Ok(tree) = parse_free_query(&query) {
                let rendered = tree.to_string();
                prop_assert_eq!(parse_free_query(&rendered).ok(), Some(tree));
                prop_assert!(stays_wrapped(&rendered).is_ok(), "{}", rendered);
            }
        }

        #[test]
        fn token_soups_are_refused_or_rendered_stably(pieces in prop::collection::vec(piece(), 1..16), spaced in any::<bool>()) {
            let query = pieces.join(if spaced { " " } else { "" });
            if let Ok(tree) = parse_free_query(&query) {
                let rendered = tree.to_string();
                prop_assert_eq!(parse_free_query(&rendered).ok(), Some(tree));
                prop_assert!(stays_wrapped(&rendered).is_ok(), "{}", rendered);
            }
        }
    }
}
