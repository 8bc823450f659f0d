//! The expression language of conditions and `set_variable` nodes.
//!
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := not (("and" | "&&") not)*
//! not     := ("not" | "!") not | cmp
//! cmp     := sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "matches") sum)?
//! sum     := product (("+" | "-") product)*
//! product := atom (("*" | "/") atom)*
//! atom    := number | 'string' | "string" | true | false | null | variable(.field)* | "(" expr ")"
//!          | "-" atom
//! ```
//!
//! Values are JSON values. `contains` is a case-insensitive substring test on text (membership on
//! arrays); `matches` is a regular expression test; `+` adds numbers or concatenates text;
//! comparisons between a number and numeric text compare numbers. An unset variable is `null`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    List(Vec<Expr>),
    Var(Vec<String>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(Box<Expr>, Op, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Matches,
    Add,
    Sub,
    Mul,
    Div,
}

/// A syntax error with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Sym(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            b'[' => {
                out.push((start, Tok::LBracket));
                i += 1;
            }
            b']' => {
                out.push((start, Tok::RBracket));
                i += 1;
            }
            b',' => {
                out.push((start, Tok::Comma));
                i += 1;
            }
            b'\'' | b'"' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(ch) = src[i..].chars().next() else {
                        return Err(ExprError {
                            offset: start,
                            message: "unterminated string".into(),
                        });
                    };
                    i += ch.len_utf8();
                    if ch as u32 == quote as u32 {
                        break;
                    }
                    if ch == '\\' {
                        let Some(esc) = src[i..].chars().next() else {
                            return Err(ExprError {
                                offset: start,
                                message: "unterminated string".into(),
                            });
                        };
                        i += esc.len_utf8();
                        s.push(esc);
                    } else {
                        s.push(ch);
                    }
                }
                out.push((start, Tok::Str(s)));
            }
            b'0'..=b'9' => {
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                let n: f64 = src[start..i].parse().map_err(|_| ExprError {
                    offset: start,
                    message: format!("bad number `{}`", &src[start..i]),
                })?;
                out.push((start, Tok::Num(n)));
            }
            b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b'+' | b'-' | b'*' | b'/' => {
                let two = src.get(i..i + 2).unwrap_or("");
                let sym = match two {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    "&&" => "and",
                    "||" => "or",
                    _ => match c {
                        b'<' => "<",
                        b'>' => ">",
                        b'!' => "not",
                        b'+' => "+",
                        b'-' => "-",
                        b'*' => "*",
                        b'/' => "/",
                        _ => {
                            return Err(ExprError {
                                offset: start,
                                message: format!("unexpected `{}`", c as char),
                            });
                        }
                    },
                };
                i += if matches!(two, "==" | "!=" | "<=" | ">=" | "&&" | "||") {
                    2
                } else {
                    1
                };
                out.push((start, Tok::Sym(sym)));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                let word = &src[start..i];
                let tok = match word {
                    "and" => Tok::Sym("and"),
                    "or" => Tok::Sym("or"),
                    "not" => Tok::Sym("not"),
                    "contains" => Tok::Sym("contains"),
                    "matches" => Tok::Sym("matches"),
                    _ => Tok::Ident(word.to_owned()),
                };
                out.push((start, tok));
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(ExprError {
                    offset: start,
                    message: format!("unexpected `{ch}`"),
                });
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
}

impl Parser {
    fn peek_sym(&self) -> Option<&'static str> {
        match self.toks.get(self.pos) {
            Some((_, Tok::Sym(s))) => Some(s),
            _ => None,
        }
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.0).unwrap_or(self.len)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            offset: self.offset(),
            message: message.into(),
        })
    }

    fn binary(
        &mut self,
        ops: &[(&str, Op)],
        next: fn(&mut Self) -> Result<Expr, ExprError>,
        chain: bool,
    ) -> Result<Expr, ExprError> {
        let mut left = next(self)?;
        while let Some(sym) = self.peek_sym() {
            let Some((_, op)) = ops.iter().find(|(s, _)| *s == sym) else {
                break;
            };
            self.pos += 1;
            let right = next(self)?;
            left = Expr::Binary(Box::new(left), *op, Box::new(right));
            if !chain {
                break;
            }
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("or", Op::Or)], Self::and, true)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("and", Op::And)], Self::not, true)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.peek_sym() == Some("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ExprError> {
        self.binary(
            &[
                ("==", Op::Eq),
                ("!=", Op::Ne),
                ("<", Op::Lt),
                ("<=", Op::Le),
                (">", Op::Gt),
                (">=", Op::Ge),
                ("contains", Op::Contains),
                ("matches", Op::Matches),
            ],
            Self::sum,
            false,
        )
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("+", Op::Add), ("-", Op::Sub)], Self::product, true)
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("*", Op::Mul), ("/", Op::Div)], Self::atom, true)
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        let Some((_, tok)) = self.toks.get(self.pos).cloned() else {
            return self.err("expression ends too early");
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Literal(number(n))),
            Tok::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Tok::Ident(word) => Ok(match word.as_str() {
                "true" => Expr::Literal(Value::Bool(true)),
                "false" => Expr::Literal(Value::Bool(false)),
                "null" => Expr::Literal(Value::Null),
                _ => {
                    if word.split('.').any(str::is_empty) {
                        self.pos -= 1;
                        return self.err(format!("bad variable name `{word}`"));
                    }
                    Expr::Var(word.split('.').map(str::to_owned).collect())
                }
            }),
            Tok::LParen => {
                let inner = self.or()?;
                match self.toks.get(self.pos) {
                    Some((_, Tok::RParen)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => self.err("expected `)`"),
                }
            }
            Tok::LBracket => {
                let mut items = Vec::new();
                if matches!(self.toks.get(self.pos), Some((_, Tok::RBracket))) {
                    self.pos += 1;
                    return Ok(Expr::List(items));
                }
                loop {
                    items.push(self.or()?);
                    match self.toks.get(self.pos) {
                        Some((_, Tok::Comma)) => self.pos += 1,
                        Some((_, Tok::RBracket)) => {
                            self.pos += 1;
                            return Ok(Expr::List(items));
                        }
                        _ => return self.err("expected `,` or `]`"),
                    }
                }
            }
            Tok::Sym("-") => Ok(Expr::Neg(Box::new(self.atom()?))),
            Tok::Sym(s) => {
                self.pos -= 1;
                self.err(format!("unexpected `{s}`"))
            }
            Tok::RParen | Tok::RBracket | Tok::Comma => {
                self.pos -= 1;
                self.err("unexpected punctuation")
            }
        }
    }
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

impl Expr {
    /// Parses `src`; the error carries the offset of the problem.
    pub fn parse(src: &str) -> Result<Expr, ExprError> {
        let toks = lex(src)?;
        if toks.is_empty() {
            return Err(ExprError {
                offset: 0,
                message: "empty expression".into(),
            });
        }
        let mut parser = Parser {
            toks,
            pos: 0,
            len: src.len(),
        };
        let expr = parser.or()?;
        if parser.pos != parser.toks.len() {
            return parser.err("unexpected text after the expression");
        }
        // Regular expressions given as literals are checked now, not at run time.
        expr.check_regexes()?;
        Ok(expr)
    }

    fn check_regexes(&self) -> Result<(), ExprError> {
        match self {
            Expr::Binary(l, op, r) => {
                if let (Op::Matches, Expr::Literal(Value::String(pattern))) = (op, r.as_ref()) {
                    regex::Regex::new(pattern).map_err(|e| ExprError {
                        offset: 0,
                        message: format!("bad regular expression: {e}"),
                    })?;
                }
                l.check_regexes()?;
                r.check_regexes()
            }
            Expr::Not(e) | Expr::Neg(e) => e.check_regexes(),
            Expr::List(items) => items.iter().try_for_each(Expr::check_regexes),
            _ => Ok(()),
        }
    }

    /// Root names of every variable the expression reads.
    pub fn variables(&self, out: &mut Vec<String>) {
        match self {
            Expr::Var(path) => out.push(path[0].clone()),
            Expr::Binary(l, _, r) => {
                l.variables(out);
                r.variables(out);
            }
            Expr::Not(e) | Expr::Neg(e) => e.variables(out),
            Expr::List(items) => items.iter().for_each(|e| e.variables(out)),
            Expr::Literal(_) => {}
        }
    }

    /// Evaluates against `vars`. Never fails: type mismatches give `null`/`false`.
    pub fn eval(&self, vars: &BTreeMap<String, Value>) -> Value {
        match self {
            Expr::Literal(v) => v.clone(),
            Expr::List(items) => Value::Array(items.iter().map(|e| e.eval(vars)).collect()),
            Expr::Var(path) => lookup(vars, path),
            Expr::Not(e) => Value::Bool(!truthy(&e.eval(vars))),
            Expr::Neg(e) => as_number(&e.eval(vars))
                .map(|n| number(-n))
                .unwrap_or(Value::Null),
            Expr::Binary(l, Op::And, r) => {
                Value::Bool(truthy(&l.eval(vars)) && truthy(&r.eval(vars)))
            }
            Expr::Binary(l, Op::Or, r) => {
                Value::Bool(truthy(&l.eval(vars)) || truthy(&r.eval(vars)))
            }
            Expr::Binary(l, op, r) => apply(*op, l.eval(vars), r.eval(vars)),
        }
    }
}

/// Reads `a.b.c` from the variables (`null` when absent).
pub fn lookup(vars: &BTreeMap<String, Value>, path: &[String]) -> Value {
    let Some(mut value) = vars.get(&path[0]) else {
        return Value::Null;
    };
    for key in &path[1..] {
        value = match value {
            Value::Object(map) => match map.get(key) {
                Some(v) => v,
                None => return Value::Null,
            },
            Value::Array(items) => match key.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(v) => v,
                None => return Value::Null,
            },
            _ => return Value::Null,
        };
    }
    value.clone()
}

/// Whether a value counts as true in a condition.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().replace(',', ".").parse().ok(),
        Value::Bool(_) | Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Text form of a value, as templates show it.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn apply(op: Op, l: Value, r: Value) -> Value {
    use std::cmp::Ordering;
    let ordering = || -> Option<Ordering> {
        match (as_number(&l), as_number(&r)) {
            (Some(a), Some(b)) if !(l.is_string() && r.is_string()) => a.partial_cmp(&b),
            _ => match (&l, &r) {
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => None,
            },
        }
    };
    let equal = || match (as_number(&l), as_number(&r)) {
        (Some(a), Some(b)) if l.is_number() || r.is_number() => a == b,
        _ => l == r,
    };
    match op {
        Op::Eq => Value::Bool(equal()),
        Op::Ne => Value::Bool(!equal()),
        Op::Lt => Value::Bool(ordering() == Some(Ordering::Less)),
        Op::Le => Value::Bool(matches!(ordering(), Some(Ordering::Less | Ordering::Equal))),
        Op::Gt => Value::Bool(ordering() == Some(Ordering::Greater)),
        Op::Ge => Value::Bool(matches!(
            ordering(),
            Some(Ordering::Greater | Ordering::Equal)
        )),
        Op::Contains => Value::Bool(match &l {
            Value::Array(items) => items.iter().any(|i| i == &r || to_text(i) == to_text(&r)),
            Value::Object(map) => map.contains_key(&to_text(&r)),
            _ => to_text(&l)
                .to_lowercase()
                .contains(&to_text(&r).to_lowercase()),
        }),
        Op::Matches => {
            Value::Bool(regex::Regex::new(&to_text(&r)).is_ok_and(|re| re.is_match(&to_text(&l))))
        }
        Op::Add => match (&l, &r) {
            (Value::Number(_), Value::Number(_)) => {
                number(as_number(&l).unwrap_or(0.0) + as_number(&r).unwrap_or(0.0))
            }
            (Value::Array(a), _) => {
                let mut a = a.clone();
                a.push(r.clone());
                Value::Array(a)
            }
            _ => Value::String(format!("{}{}", to_text(&l), to_text(&r))),
        },
        Op::Sub | Op::Mul | Op::Div => match (as_number(&l), as_number(&r)) {
            (Some(a), Some(b)) => match op {
                Op::Sub => number(a - b),
                Op::Mul => number(a * b),
                _ if b == 0.0 => Value::Null,
                _ => number(a / b),
            },
            _ => Value::Null,
        },
        Op::And | Op::Or => unreachable!("handled with short-circuit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(src: &str, vars: Value) -> Value {
        let vars: BTreeMap<String, Value> = serde_json::from_value(vars).unwrap();
        Expr::parse(src).unwrap().eval(&vars)
    }

    #[test]
    fn comparisons_logic_and_arithmetic() {
        let vars = json!({"n": 3, "name": "Ana", "cart": {"total": "12.50", "items": ["pizza"]}});
        assert_eq!(eval("n > 2 and name == 'Ana'", vars.clone()), json!(true));
        assert_eq!(
            eval("n >= 4 || !(name != \"Ana\")", vars.clone()),
            json!(true)
        );
        assert_eq!(eval("cart.total > 10", vars.clone()), json!(true));
        assert_eq!(
            eval("cart.items contains 'pizza'", vars.clone()),
            json!(true)
        );
        assert_eq!(eval("name contains 'an'", vars.clone()), json!(true));
        assert_eq!(eval("name matches '^A.a$'", vars.clone()), json!(true));
        assert_eq!(eval("n * 2 + 1", vars.clone()), json!(7));
        assert_eq!(eval("'Hola ' + name", vars.clone()), json!("Hola Ana"));
        assert_eq!(eval("n / 0", vars.clone()), Value::Null);
        assert_eq!(eval("missing == null", vars.clone()), json!(true));
        assert_eq!(eval("-n + 1", vars.clone()), json!(-2));
        assert_eq!(
            eval("[] + 'a' + (name + ':' + n)", vars.clone()),
            json!(["a", "Ana:3"])
        );
        assert_eq!(eval("[1, n, [name]]", vars), json!([1, 3, ["Ana"]]));
    }

    #[test]
    fn syntax_errors_are_located() {
        for (src, offset) in [
            ("n >", 3),
            ("(n > 1", 6),
            ("n = 1", 2),
            ("'open", 0),
            ("n > 1 2", 6),
            ("", 0),
            ("a..b", 0),
        ] {
            let err = Expr::parse(src).unwrap_err();
            assert_eq!(err.offset, offset, "{src}: {err}");
        }
        assert!(
            Expr::parse("x matches '('")
                .unwrap_err()
                .message
                .contains("regular expression")
        );
    }

    #[test]
    fn variables_are_collected_by_root_name() {
        let mut out = Vec::new();
        Expr::parse("cart.total > limit and not vip")
            .unwrap()
            .variables(&mut out);
        assert_eq!(out, ["cart", "limit", "vip"]);
    }
}
