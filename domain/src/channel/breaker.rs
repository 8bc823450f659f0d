//! The circuit breaker of one (strategy, tenant): when a provider keeps failing, stop sending
//! to it for a while instead of flooding it with retries, then let one trial through.
//!
//! ```text
//!   CLOSED ──(failure_threshold consecutive retryable failures)──▶ OPEN (open_secs)
//!     ▲                                                             │ time passes
//!     │ trial succeeds                                              ▼
//!     └──────────────────────────────────────────────────────── HALF_OPEN (one trial)
//!                                  trial fails: OPEN again, twice as long (≤ max_open_secs)
//! ```
//!
//! Only failures that show an outage count (5xx, 429, timeouts); a provider refusing one
//! message (4xx) is up. The state lives in the database (`channel_breaker`), so it survives
//! worker restarts and is shared by every worker; transitions are compare-and-set updates.

use serde::{Deserialize, Serialize};

/// Breaker tuning, from an account's `circuit` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive retryable failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open the first time, in seconds.
    pub open_secs: u64,
    /// Upper bound of the open time as it doubles after failed trials.
    pub max_open_secs: u64,
    /// What a message meets while the circuit is open: `Wait` (the conversation keeps it and
    /// tries again when the circuit lets trials through) or `DeadLetter` (given up at once).
    pub on_open: OnOpen,
}

/// See [`BreakerSettings::on_open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOpen {
    Wait,
    DeadLetter,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_secs: 30,
            max_open_secs: 300,
            on_open: OnOpen::Wait,
        }
    }
}

/// How long a half-open trial may take before another one is allowed (its worker may have
/// died).
pub const TRIAL_TIMEOUT_MS: i64 = 30_000;

/// The stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The value of the `zengine_channel_circuit_state` gauge.
    pub fn gauge(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "CLOSED",
            BreakerState::Open => "OPEN",
            BreakerState::HalfOpen => "HALF_OPEN",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CLOSED" => Some(BreakerState::Closed),
            "OPEN" => Some(BreakerState::Open),
            "HALF_OPEN" => Some(BreakerState::HalfOpen),
            _ => None,
        }
    }
}

/// A breaker row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub state: BreakerState,
    /// Consecutive retryable failures while closed.
    pub failures: u32,
    /// How many times in a row the circuit opened (doubles the open time).
    pub opened: u32,
    /// Epoch ms: OPEN until then; HALF_OPEN: the trial's deadline.
    pub until_ms: i64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed,
            failures: 0,
            opened: 0,
            until_ms: 0,
        }
    }
}

/// What a send may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: send.
    Go,
    /// Send as the one trial of a half-open circuit (the caller must have won the
    /// compare-and-set to `HALF_OPEN`).
    Trial,
    /// Do not call the provider; try again in this many milliseconds.
    Wait(i64),
}

impl Breaker {
    /// What a send finds at `now`, and the state to move to first (OPEN → HALF_OPEN when the
    /// open time is over, or a trial that timed out).
    pub fn admit(&self, now: i64) -> (Admit, Option<Breaker>) {
        match self.state {
            BreakerState::Closed => (Admit::Go, None),
            BreakerState::Open | BreakerState::HalfOpen if now < self.until_ms => {
                (Admit::Wait(self.until_ms - now), None)
            }
            BreakerState::Open | BreakerState::HalfOpen => (
                Admit::Trial,
                Some(Breaker {
                    state: BreakerState::HalfOpen,
                    until_ms: now + TRIAL_TIMEOUT_MS,
                    ..*self
                }),
            ),
        }
    }

    /// The state after a successful send.
    pub fn on_success(&self) -> Breaker {
        Breaker::default()
    }

    /// The state after a send failed in a way that shows an outage.
    pub fn on_outage(&self, settings: &BreakerSettings, now: i64) -> Breaker {
        let open = |opened: u32| {
            let secs = settings
                .open_secs
                .saturating_mul(1u64 << opened.saturating_sub(1).min(16))
                .min(settings.max_open_secs.max(settings.open_secs));
            Breaker {
                state: BreakerState::Open,
                failures: 0,
                opened,
                until_ms: now + i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2),
            }
        };
        match self.state {
            BreakerState::HalfOpen | BreakerState::Open => open(self.opened.saturating_add(1)),
            BreakerState::Closed if self.failures + 1 >= settings.failure_threshold.max(1) => {
                open(1)
            }
            BreakerState::Closed => Breaker {
                failures: self.failures + 1,
                ..*self
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_threshold: 3,
            open_secs: 10,
            max_open_secs: 25,
            on_open: OnOpen::Wait,
        }
    }

    #[test]
    fn opens_after_the_threshold_and_lets_one_trial_through_later() {
        let s = settings();
        let mut b = Breaker::default();
        for _ in 0..2 {
            b = b.on_outage(&s, 0);
            assert_eq!(b.state, BreakerState::Closed);
            assert_eq!(b.admit(0).0, Admit::Go);
        }
        b = b.on_outage(&s, 1_000);
        assert_eq!(b.state, BreakerState::Open);
        assert_eq!(b.until_ms, 11_000);
        assert_eq!(b.admit(5_000).0, Admit::Wait(6_000));
        let (admit, next) = b.admit(11_000);
        assert_eq!(admit, Admit::Trial);
        let half = next.unwrap();
        assert_eq!(half.state, BreakerState::HalfOpen);
        // A second sender meanwhile waits for the trial.
        assert!(matches!(half.admit(11_001).0, Admit::Wait(_)));
        assert_eq!(half.on_success(), Breaker::default());
    }

    #[test]
    fn failed_trials_double_the_open_time_up_to_the_cap() {
        let s = settings();
        let open = Breaker::default()
            .on_outage(&s, 0)
            .on_outage(&s, 0)
            .on_outage(&s, 0);
        assert_eq!(open.until_ms, 10_000);
        let half = open.admit(10_000).1.unwrap();
        let again = half.on_outage(&s, 10_000);
        assert_eq!((again.state, again.until_ms), (BreakerState::Open, 30_000));
        let third = again.admit(30_000).1.unwrap().on_outage(&s, 30_000);
        assert_eq!(third.until_ms, 55_000, "capped at max_open_secs");
    }

    #[test]
    fn a_trial_that_never_reports_is_replaced() {
        let s = settings();
        let open = Breaker {
            state: BreakerState::Open,
            failures: 0,
            opened: 1,
            until_ms: 0,
        };
        let half = open.admit(0).1.unwrap();
        assert!(matches!(half.admit(TRIAL_TIMEOUT_MS - 1).0, Admit::Wait(_)));
        assert_eq!(half.admit(TRIAL_TIMEOUT_MS).0, Admit::Trial);
        let _ = s;
    }

    #[test]
    fn settings_parse_with_defaults() {
        let s: BreakerSettings =
            serde_json::from_value(serde_json::json!({"open_secs": 5})).expect("partial settings");
        assert_eq!(s.open_secs, 5);
        assert_eq!(s.failure_threshold, 5);
        assert_eq!(s.on_open, OnOpen::Wait);
        assert!(serde_json::from_value::<BreakerSettings>(serde_json::json!({"nope": 1})).is_err());
    }
}
