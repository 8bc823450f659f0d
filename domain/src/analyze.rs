//! `ai.analyze`: a deterministic, local text analysis for flows — intent by tenant keyword
//! lists, sentiment from a small Spanish/English lexicon, and entities (numbers, e-mails, phone
//! numbers, dates). No model and no network: the same text always gives the same answer, and a
//! flow can branch on it with a condition (`analysis.intent == 'order'`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The analysis of one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The intent with the most keyword hits (ties: the first listed), or `None`.
    pub intent: Option<String>,
    /// Share of the text's words that matched the chosen intent's keywords (0–1).
    pub confidence: f64,
    /// `positive`, `neutral` or `negative`.
    pub sentiment: String,
    pub entities: Entities,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entities {
    /// Numbers as JSON numbers (integers stay integers: `3`, not `3.0`).
    pub numbers: Vec<Value>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub dates: Vec<String>,
}

const POSITIVE: &[&str] = &[
    "gracias",
    "excelente",
    "bueno",
    "buena",
    "genial",
    "perfecto",
    "feliz",
    "encanta",
    "rapido",
    "amable",
    "super",
    "good",
    "great",
    "thanks",
    "excellent",
    "love",
    "perfect",
    "happy",
];
const NEGATIVE: &[&str] = &[
    "malo",
    "mala",
    "pesimo",
    "horrible",
    "tarde",
    "demora",
    "queja",
    "reclamo",
    "frio",
    "nunca",
    "molesto",
    "enojado",
    "devolucion",
    "bad",
    "terrible",
    "late",
    "angry",
    "worst",
    "refund",
];

/// Lowercases and strips Spanish accents so `Pésimo` matches `pesimo`.
fn fold(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'ä' => 'a',
            'é' | 'è' | 'ë' => 'e',
            'í' | 'ì' | 'ï' => 'i',
            'ó' | 'ò' | 'ö' => 'o',
            'ú' | 'ù' | 'ü' => 'u',
            other => other,
        })
        .collect()
}

fn words(folded: &str) -> Vec<&str> {
    folded
        .split(|c: char| !(c.is_alphanumeric() || c == 'ñ'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Analyses `text`. `intents` is a JSON object `{"intent": ["keyword", "two words", ...]}`.
pub fn analyze(text: &str, intents: &Value) -> Analysis {
    let folded = fold(text);
    let tokens = words(&folded);
    let mut best: Option<(String, usize)> = None;
    if let Some(map) = intents.as_object() {
        for (intent, keywords) in map {
            let hits = keywords
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(fold)
                .filter(|k| {
                    if k.contains(' ') {
                        folded.contains(k.as_str())
                    } else {
                        tokens.contains(&k.as_str())
                    }
                })
                .count();
            if hits > 0 && best.as_ref().is_none_or(|(_, b)| hits > *b) {
                best = Some((intent.clone(), hits));
            }
        }
    }
    let score: i32 = tokens
        .iter()
        .map(|t| i32::from(POSITIVE.contains(t)) - i32::from(NEGATIVE.contains(t)))
        .sum();
    let sentiment = match score {
        s if s > 0 => "positive",
        s if s < 0 => "negative",
        _ => "neutral",
    };
    let mut entities = Entities::default();
    for raw in text.split_whitespace() {
        let token = raw.trim_matches(|c: char| ",;!?()\"'".contains(c));
        let token = token.strip_suffix('.').unwrap_or(token);
        if token.contains('@')
            && token
                .split_once('@')
                .is_some_and(|(u, d)| !u.is_empty() && d.contains('.'))
        {
            entities.emails.push(token.to_lowercase());
            continue;
        }
        let digits = token.chars().filter(char::is_ascii_digit).count();
        if (token.contains('/') || token.matches('-').count() == 2) && (6..=8).contains(&digits) {
            entities.dates.push(token.to_owned());
        } else if digits >= 7
            && token
                .chars()
                .all(|c| c.is_ascii_digit() || "+-".contains(c))
        {
            entities.phones.push(token.to_owned());
        } else if let Ok(n) = token
            .replace(',', ".")
            .trim_start_matches("S/")
            .parse::<f64>()
            && n.is_finite()
        {
            entities
                .numbers
                .push(if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Value::from(n as i64)
                } else {
                    Value::from(n)
                });
        }
    }
    let confidence = match &best {
        Some((_, hits)) if !tokens.is_empty() => (*hits as f64 / tokens.len() as f64).min(1.0),
        _ => 0.0,
    };
    Analysis {
        intent: best.map(|(i, _)| i),
        confidence: (confidence * 100.0).round() / 100.0,
        sentiment: sentiment.to_owned(),
        entities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intents_sentiment_and_entities() {
        let intents = json!({"order": ["pedido", "quiero", "comprar"], "complaint": ["reclamo", "queja", "llegó frío"]});
        let a = analyze(
            "Quiero hacer un pedido de 2 pizzas, mi correo es Ana@Example.com",
            &intents,
        );
        assert_eq!(a.intent.as_deref(), Some("order"));
        assert!(a.confidence > 0.0);
        assert_eq!(a.entities.numbers, vec![json!(2)]);
        assert_eq!(a.entities.emails, vec!["ana@example.com".to_owned()]);

        let b = analyze(
            "Pésimo, el pedido LLEGÓ FRÍO y tarde. Quiero hacer un reclamo: 987654321 el 25/11/2026",
            &intents,
        );
        assert_eq!(
            b.intent.as_deref(),
            Some("complaint"),
            "multi-word keywords and accents: {b:?}"
        );
        assert_eq!(b.sentiment, "negative");
        assert_eq!(b.entities.phones, vec!["987654321".to_owned()]);
        assert_eq!(b.entities.dates, vec!["25/11/2026".to_owned()]);

        let c = analyze("¡Gracias, excelente atención!", &json!({}));
        assert_eq!(
            (c.intent, c.sentiment.as_str(), c.confidence),
            (None, "positive", 0.0)
        );
        assert_eq!(analyze("", &intents).sentiment, "neutral");
    }
}
