//! Travel assistance (Bigtree): assistance events, the providers working on them, MOK tracking
//! events and the rules that move them.
//!
//! An assistance event goes DRAFT → OPEN → PROVIDER_ASSIGNED → IN_PROGRESS → RESOLVED → CLOSED
//! (or CANCELLED). Some moves are made by operators (`POST …/statuses`), others only happen as a
//! consequence of what a provider does (assigned, started, resolved); [`EventStatus::check_manual`]
//! and the provider functions below say which, and why not. Everything here is pure: the
//! repositories apply the same rules inside their transactions and the workflows inside their
//! update validators.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::phone::E164;

/// Where an assistance event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventStatus {
    /// Being written; fields may still change (`PUT …/draft/{id}`).
    Draft,
    /// Complete and waiting for a provider.
    Open,
    /// At least one provider is assigned, none has started.
    ProviderAssigned,
    /// A provider is working on it.
    InProgress,
    /// Every provider finished (or an operator solved it without one).
    Resolved,
    /// Done; nothing changes any more.
    Closed,
    /// Abandoned; nothing changes any more.
    Cancelled,
}

/// Why a status change is refused. `NotManual` and `Incomplete` are the caller's mistake (422);
/// the others depend on the current state (409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("an assistance event in {from} cannot become {to}")]
    NotAllowed { from: EventStatus, to: EventStatus },
    #[error("{to} is not set by hand: {how}")]
    NotManual { to: EventStatus, how: &'static str },
    #[error("the draft cannot be opened: missing {}", .0.join(", "))]
    Incomplete(Vec<String>),
    #[error("providers can only be {action} while the event is {allowed}; it is {status}")]
    EventNotActive {
        action: &'static str,
        allowed: &'static str,
        status: EventStatus,
    },
    #[error("a provider in {from} cannot become {to}")]
    Provider {
        from: ProviderStatus,
        to: ProviderStatus,
    },
}

impl TransitionError {
    /// `true` for refusals caused by the request itself rather than by the event's state.
    pub fn is_request_error(&self) -> bool {
        matches!(self, Self::NotManual { .. } | Self::Incomplete(_))
    }
}

impl EventStatus {
    /// Every status, in lifecycle order (the `event-statuses` catalogue has the same codes).
    pub const ALL: [EventStatus; 7] = [
        Self::Draft,
        Self::Open,
        Self::ProviderAssigned,
        Self::InProgress,
        Self::Resolved,
        Self::Closed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Open => "OPEN",
            Self::ProviderAssigned => "PROVIDER_ASSIGNED",
            Self::InProgress => "IN_PROGRESS",
            Self::Resolved => "RESOLVED",
            Self::Closed => "CLOSED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// CLOSED and CANCELLED do not change any more; the event's workflow ends there.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Cancelled)
    }

    /// Whether any rule at all (manual or provider-driven) moves `self` to `to`.
    pub fn can_become(self, to: EventStatus) -> bool {
        use EventStatus::*;
        matches!(
            (self, to),
            (Draft, Open | Cancelled)
                | (Open, ProviderAssigned | Resolved | Cancelled)
                | (ProviderAssigned, InProgress | Cancelled)
                | (InProgress, Resolved | Cancelled)
                | (Resolved, Closed | Open)
        )
    }

    /// Checks a change an operator asks for (`POST …/statuses`). PROVIDER_ASSIGNED and
    /// IN_PROGRESS follow from provider actions; RESOLVED by hand only when no provider was
    /// involved (an event solved by phone); a resolved event may be reopened (back to OPEN).
    pub fn check_manual(self, to: EventStatus) -> Result<(), TransitionError> {
        use EventStatus::*;
        match to {
            ProviderAssigned => Err(TransitionError::NotManual {
                to,
                how: "assign a provider (POST /v1/assistances/events/{id}/providers)",
            }),
            InProgress => Err(TransitionError::NotManual {
                to,
                how: "a provider starts (POST …/providers/{event_provider_id}/start)",
            }),
            Draft => Err(TransitionError::NotManual {
                to,
                how: "events are drafts only until they are opened",
            }),
            Resolved if self != Open => {
                if self.can_become(to) {
                    Err(TransitionError::NotManual {
                        to,
                        how: "the event is resolved when its last active provider resolves",
                    })
                } else {
                    Err(TransitionError::NotAllowed { from: self, to })
                }
            }
            _ if self.can_become(to) => Ok(()),
            _ => Err(TransitionError::NotAllowed { from: self, to }),
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not an assistance event status ({})",
                    Self::ALL.map(EventStatus::as_str).join(", ")
                )
            })
    }
}

/// Where one provider's work on an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProviderStatus {
    /// Assigned, not started yet (the start SLA runs).
    Assigned,
    /// Working on it.
    Started,
    /// Finished its part.
    Resolved,
    /// Released (the event was cancelled).
    Cancelled,
}

impl ProviderStatus {
    /// Every status (the `eventprovider-statuses` catalogue has the same codes).
    pub const ALL: [ProviderStatus; 4] = [
        Self::Assigned,
        Self::Started,
        Self::Resolved,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "ASSIGNED",
            Self::Started => "STARTED",
            Self::Resolved => "RESOLVED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// ASSIGNED or STARTED: still has work to do.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Assigned | Self::Started)
    }

    pub fn can_become(self, to: ProviderStatus) -> bool {
        use ProviderStatus::*;
        matches!(
            (self, to),
            (Assigned, Started | Cancelled) | (Started, Resolved | Cancelled)
        )
    }
}

impl fmt::Display for ProviderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a provider status"))
    }
}

/// A provider is assigned to an event in `event`: the event's next status.
pub fn on_assign(event: EventStatus) -> Result<EventStatus, TransitionError> {
    match event {
        EventStatus::Open => Ok(EventStatus::ProviderAssigned),
        EventStatus::ProviderAssigned | EventStatus::InProgress => Ok(event),
        status => Err(TransitionError::EventNotActive {
            action: "assigned",
            allowed: "OPEN, PROVIDER_ASSIGNED or IN_PROGRESS",
            status,
        }),
    }
}

/// A provider in `provider` starts on an event in `event`: the event's next status.
pub fn on_start(
    event: EventStatus,
    provider: ProviderStatus,
) -> Result<EventStatus, TransitionError> {
    if !matches!(
        event,
        EventStatus::ProviderAssigned | EventStatus::InProgress
    ) {
        return Err(TransitionError::EventNotActive {
            action: "started",
            allowed: "PROVIDER_ASSIGNED or IN_PROGRESS",
            status: event,
        });
    }
    if !provider.can_become(ProviderStatus::Started) {
        return Err(TransitionError::Provider {
            from: provider,
            to: ProviderStatus::Started,
        });
    }
    Ok(EventStatus::InProgress)
}

/// A provider in `provider` resolves its part of an event in `event`; `others_active` tells
/// whether any other provider of the event is still ASSIGNED or STARTED. The event is RESOLVED
/// when the last active provider resolves.
pub fn on_resolve(
    event: EventStatus,
    provider: ProviderStatus,
    others_active: bool,
) -> Result<EventStatus, TransitionError> {
    if event != EventStatus::InProgress {
        return Err(TransitionError::EventNotActive {
            action: "resolved",
            allowed: "IN_PROGRESS",
            status: event,
        });
    }
    if !provider.can_become(ProviderStatus::Resolved) {
        return Err(TransitionError::Provider {
            from: provider,
            to: ProviderStatus::Resolved,
        });
    }
    Ok(if others_active {
        EventStatus::InProgress
    } else {
        EventStatus::Resolved
    })
}

/// The editable fields of an assistance event (all optional while it is a draft).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct EventFields {
    /// Category code (`GET /v1/masters/categories`): MEDICAL, DENTAL, LEGAL, …
    pub category: Option<String>,
    /// ISO 3166-1 alpha-2 country code where the beneficiary is (`GET /v1/masters/countries`).
    pub country: Option<String>,
    pub city: Option<String>,
    /// The traveller who needs assistance.
    pub beneficiary_name: Option<String>,
    /// E.164.
    pub beneficiary_phone: Option<String>,
    /// The travel-insurance voucher the event is covered by.
    pub voucher_code: Option<String>,
    /// What happened.
    pub description: Option<String>,
    /// Where the beneficiary can be found.
    pub address: Option<String>,
}

/// Fields an event needs before it can leave DRAFT.
pub const REQUIRED_TO_OPEN: [&str; 5] = [
    "category",
    "country",
    "city",
    "beneficiary_name",
    "description",
];

impl EventFields {
    /// Field-level problems (lengths, formats), each naming its field. Codes are checked
    /// against the catalogues by the repository, which holds them.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |name: &str, value: &Option<String>, max: usize| {
            if let Some(v) = value {
                if v.trim().is_empty() {
                    problems.push(format!("field `{name}`: must not be blank"));
                } else if v.chars().count() > max {
                    problems.push(format!("field `{name}`: at most {max} characters"));
                } else if v.chars().any(|c| c.is_control() && c != '\n') {
                    problems.push(format!(
                        "field `{name}`: control characters are not allowed"
                    ));
                }
            }
        };
        check("category", &self.category, 32);
        check("country", &self.country, 2);
        check("city", &self.city, 100);
        check("beneficiary_name", &self.beneficiary_name, 200);
        check("beneficiary_phone", &self.beneficiary_phone, 16);
        check("voucher_code", &self.voucher_code, 64);
        check("description", &self.description, 4000);
        check("address", &self.address, 500);
        if let Some(country) = &self.country
            && !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()))
        {
            problems.push("field `country`: an ISO 3166-1 alpha-2 code such as PE".to_owned());
        }
        if let Some(phone) = &self.beneficiary_phone
            && let Err(e) = E164::parse(phone.clone())
        {
            problems.push(format!("field `beneficiary_phone`: {e}"));
        }
        problems
    }

    /// The required fields that are still missing or blank.
    pub fn missing_to_open(&self) -> Vec<String> {
        let value = |name: &str| match name {
            "category" => &self.category,
            "country" => &self.country,
            "city" => &self.city,
            "beneficiary_name" => &self.beneficiary_name,
            _ => &self.description,
        };
        REQUIRED_TO_OPEN
            .iter()
            .filter(|name| value(name).as_deref().is_none_or(|v| v.trim().is_empty()))
            .map(|name| (*name).to_owned())
            .collect()
    }

    /// Checks a draft may be opened.
    pub fn check_open(&self) -> Result<(), TransitionError> {
        let missing = self.missing_to_open();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(TransitionError::Incomplete(missing))
        }
    }
}

/// A tenant's assistance rules (`tenant.assistance_settings`, JSON; missing keys take the
/// defaults). They travel in the workflow inputs, so a running workflow keeps the rules it
/// started with and tests can use short timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssistanceSettings {
    /// A provider that has not started this many seconds after its assignment is escalated.
    pub provider_start_sla_secs: u64,
    /// Operators paged by SMS on escalations and on MOK failures.
    pub operator_recipients: Vec<E164>,
    /// Who the MOK `SnsNotification` step texts about each tracking event.
    pub mok_recipients: Vec<E164>,
    /// `AWS.SNS.SMS.SMSType` of every message: `Transactional` or `Promotional`.
    pub sms_type: String,
    /// `AWS.SNS.SMS.SenderID` (alphanumeric sender, where the country allows it).
    pub sender_id: Option<String>,
}

impl Default for AssistanceSettings {
    fn default() -> Self {
        Self {
            provider_start_sla_secs: 30 * 60,
            operator_recipients: Vec::new(),
            mok_recipients: Vec::new(),
            sms_type: "Transactional".to_owned(),
            sender_id: None,
        }
    }
}

impl AssistanceSettings {
    /// Problems with the rules, each naming its setting.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.provider_start_sla_secs == 0 {
            problems.push("provider_start_sla_secs must be at least 1".to_owned());
        }
        if !matches!(self.sms_type.as_str(), "Transactional" | "Promotional") {
            problems.push("sms_type must be Transactional or Promotional".to_owned());
        }
        if let Some(sender) = &self.sender_id
            && !(1..=11).contains(&sender.len())
        {
            problems.push("sender_id must be 1 to 11 characters".to_owned());
        }
        problems
    }
}

/// The `source_code` the MOK state machine handles; any other source is succeeded as ignored.
pub const MOK_SOURCE_CODE: &str = "MOK";

/// What a MOK tracking event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MokAction {
    /// A provider is assigned to the assistance event.
    EventProviderCreate,
    /// The provider started working.
    EventProviderStart,
    /// The provider finished its part.
    EventProviderResolve,
    /// A note on the assistance event.
    NoteRegister,
}

impl MokAction {
    pub const ALL: [MokAction; 4] = [
        Self::EventProviderCreate,
        Self::EventProviderStart,
        Self::EventProviderResolve,
        Self::NoteRegister,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventProviderCreate => "EVENT_PROVIDER_CREATE",
            Self::EventProviderStart => "EVENT_PROVIDER_START",
            Self::EventProviderResolve => "EVENT_PROVIDER_RESOLVE",
            Self::NoteRegister => "NOTE_REGISTER",
        }
    }

    /// The actions about a provider need the `provider` field.
    pub fn needs_provider(self) -> bool {
        !matches!(self, Self::NoteRegister)
    }
}

impl fmt::Display for MokAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MokAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a MOK action ({})",
                    Self::ALL.map(MokAction::as_str).join(", ")
                )
            })
    }
}

/// A MOK tracking event as the partner posts it (`POST /v1/mok/events`), before validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MokEventRequest {
    pub event_id: Option<String>,
    pub source_code: Option<String>,
    pub action: Option<String>,
    /// The assistance event concerned.
    pub assistance_id: Option<String>,
    /// The provider's code (`GET /v1/providers/search`).
    pub provider: Option<String>,
    pub note: Option<String>,
    /// When it happened at the partner (RFC 3339), kept in the log as given.
    pub occurred_at: Option<String>,
}

/// A validated MOK tracking event: the input of the MOK workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MokEvent {
    pub event_id: String,
    pub source_code: String,
    pub action: MokAction,
    pub assistance_id: Option<String>,
    pub provider: Option<String>,
    pub note: Option<String>,
    pub occurred_at: Option<String>,
}

/// Longest MOK note kept; SMS texts carry a shorter excerpt.
pub const MAX_NOTE_CHARS: usize = 2000;

fn token_ok(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl MokEventRequest {
    /// Validates every field; `Err` lists each problem naming its field. The action is checked
    /// for every source (an unknown action never starts a workflow); the fields the tracking
    /// step needs are required only for MOK events, which are the ones tracked.
    pub fn validate(self) -> Result<MokEvent, Vec<String>> {
        let mut problems = Vec::new();
        let mut required = |name: &str, value: &Option<String>| {
            if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                problems.push(format!("field `{name}`: is required"));
                false
            } else {
                true
            }
        };
        let has_id = required("event_id", &self.event_id);
        let has_source = required("source_code", &self.source_code);
        let has_action = required("action", &self.action);
        let is_mok = self.source_code.as_deref() == Some(MOK_SOURCE_CODE);
        if has_id && !token_ok(self.event_id.as_deref().unwrap_or(""), 128) {
            problems.push("field `event_id`: 1 to 128 of letters, digits and `-_.:`".to_owned());
        }
        if has_source && self.source_code.as_ref().is_some_and(|s| !token_ok(s, 32)) {
            problems.push("field `source_code`: 1 to 32 of letters, digits and `-_.:`".to_owned());
        }
        let action = if has_action {
            match self.action.as_deref().unwrap_or("").parse::<MokAction>() {
                Ok(a) => Some(a),
                Err(e) => {
                    problems.push(format!("field `action`: {e}"));
                    None
                }
            }
        } else {
            None
        };
        if is_mok {
            if self.assistance_id.as_deref().is_none_or(|v| v.is_empty()) {
                problems.push("field `assistance_id`: is required for MOK events".to_owned());
            } else if !token_ok(self.assistance_id.as_deref().unwrap_or(""), 64) {
                problems.push("field `assistance_id`: not an assistance event id".to_owned());
            }
            if let Some(action) = action {
                if action.needs_provider() {
                    match self.provider.as_deref() {
                        None | Some("") => {
                            problems.push(format!("field `provider`: is required for {action}"))
                        }
                        Some(p) if !token_ok(p, 64) => problems.push(
                            "field `provider`: 1 to 64 of letters, digits and `-_.:`".to_owned(),
                        ),
                        Some(_) => {}
                    }
                }
                if action == MokAction::NoteRegister
                    && self.note.as_deref().is_none_or(|n| n.trim().is_empty())
                {
                    problems.push("field `note`: is required for NOTE_REGISTER".to_owned());
                }
            }
        }
        if let Some(note) = &self.note
            && note.chars().count() > MAX_NOTE_CHARS
        {
            problems.push(format!("field `note`: at most {MAX_NOTE_CHARS} characters"));
        }
        if let Some(at) = &self.occurred_at
            && (at.is_empty() || at.len() > 64)
        {
            problems.push("field `occurred_at`: an RFC 3339 timestamp".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(MokEvent {
            event_id: self.event_id.unwrap_or_default(),
            source_code: self.source_code.unwrap_or_default(),
            action: action.expect("validated"),
            assistance_id: self.assistance_id,
            provider: self.provider,
            note: self.note,
            occurred_at: self.occurred_at,
        })
    }
}

impl MokEvent {
    /// The Choice state: only MOK events are tracked.
    pub fn is_mok(&self) -> bool {
        self.source_code == MOK_SOURCE_CODE
    }

    /// The SMS the `SnsNotification` step sends about this event (at most ~300 characters, far
    /// under SNS's 1600-byte limit).
    pub fn sms_text(&self) -> String {
        let assistance = self.assistance_id.as_deref().unwrap_or("-");
        let provider = self.provider.as_deref().unwrap_or("-");
        let head = match self.action {
            MokAction::EventProviderCreate => {
                format!("Asistencia {assistance}: proveedor {provider} asignado.")
            }
            MokAction::EventProviderStart => {
                format!("Asistencia {assistance}: el proveedor {provider} inició la atención.")
            }
            MokAction::EventProviderResolve => {
                format!("Asistencia {assistance}: el proveedor {provider} resolvió la atención.")
            }
            MokAction::NoteRegister => format!("Asistencia {assistance}: nueva nota."),
        };
        match self
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(note) => format!("{head} {}", excerpt(note, 160)),
            None => head,
        }
    }
}

/// The first `max` characters of `text`, with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The named states of the MOK state machine (the original Step Functions definition). Each
/// writes one assistance-log row keyed (tenant, event id, step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MokStep {
    /// `Choice`: is `source_code` MOK?
    Choice,
    /// `TrackingMok`: the action, written to the database.
    TrackingMok,
    /// `SnsNotification`: the SMS to the configured recipients.
    SnsNotification,
    /// `Success`: the tracked event is done.
    Success,
    /// `Ignored`: the Choice's default branch (not a MOK event), succeeded without effect.
    Ignored,
    /// `Error`: a step failed for good; the cause is recorded and operators are notified.
    Error,
}

impl MokStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Choice => "Choice",
            Self::TrackingMok => "TrackingMok",
            Self::SnsNotification => "SnsNotification",
            Self::Success => "Success",
            Self::Ignored => "Ignored",
            Self::Error => "Error",
        }
    }
}

impl fmt::Display for MokStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventStatus::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in EventStatus::ALL {
            assert_eq!(s.as_str().parse::<EventStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in ProviderStatus::ALL {
            assert_eq!(s.as_str().parse::<ProviderStatus>(), Ok(s));
        }
        assert!("open".parse::<EventStatus>().is_err());
    }

    #[test]
    fn the_lifecycle_moves_forward_and_final_states_stay_put() {
        let path = [Draft, Open, ProviderAssigned, InProgress, Resolved, Closed];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{} → {}", pair[0], pair[1]);
            assert!(!pair[1].can_become(pair[0]), "{} → {}", pair[1], pair[0]);
        }
        for from in [Closed, Cancelled] {
            for to in EventStatus::ALL {
                assert!(!from.can_become(to), "{from} → {to}");
            }
        }
        for from in [Draft, Open, ProviderAssigned, InProgress] {
            assert!(from.can_become(Cancelled));
        }
        assert!(!Resolved.can_become(Cancelled));
        assert!(!Draft.can_become(ProviderAssigned));
    }

    #[test]
    fn operators_cannot_set_the_provider_driven_statuses() {
        assert!(matches!(
            Open.check_manual(ProviderAssigned),
            Err(TransitionError::NotManual { .. })
        ));
        assert!(matches!(
            ProviderAssigned.check_manual(InProgress),
            Err(TransitionError::NotManual { .. })
        ));
        // RESOLVED by hand only for an event no provider worked on.
        assert!(Open.check_manual(Resolved).is_ok());
        let err = InProgress.check_manual(Resolved).unwrap_err();
        assert!(err.is_request_error(), "{err}");
        // A move no rule allows is a conflict with the current state, not a bad request.
        let err = Open.check_manual(Closed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an assistance event in OPEN cannot become CLOSED"
        );
        assert!(!err.is_request_error());
        assert!(Draft.check_manual(Resolved).is_err());
        assert!(Resolved.check_manual(Open).is_ok());
        assert!(Resolved.check_manual(Closed).is_ok());
        assert!(Closed.check_manual(Open).is_err());
    }

    #[test]
    fn provider_actions_move_the_event() {
        assert_eq!(on_assign(Open), Ok(ProviderAssigned));
        assert_eq!(on_assign(InProgress), Ok(InProgress));
        assert!(on_assign(Draft).is_err());
        assert!(on_assign(Resolved).is_err());
        assert_eq!(
            on_start(ProviderAssigned, ProviderStatus::Assigned),
            Ok(InProgress)
        );
        assert_eq!(
            on_start(InProgress, ProviderStatus::Started),
            Err(TransitionError::Provider {
                from: ProviderStatus::Started,
                to: ProviderStatus::Started
            })
        );
        assert!(on_start(Open, ProviderStatus::Assigned).is_err());
        assert_eq!(
            on_resolve(InProgress, ProviderStatus::Started, false),
            Ok(Resolved)
        );
        assert_eq!(
            on_resolve(InProgress, ProviderStatus::Started, true),
            Ok(InProgress)
        );
        assert!(on_resolve(InProgress, ProviderStatus::Assigned, false).is_err());
        assert!(on_resolve(ProviderAssigned, ProviderStatus::Started, false).is_err());
    }

    #[test]
    fn drafts_open_only_when_complete_and_fields_are_checked() {
        let mut fields = EventFields::default();
        assert_eq!(fields.missing_to_open().len(), REQUIRED_TO_OPEN.len());
        fields.category = Some("MEDICAL".into());
        fields.country = Some("PE".into());
        fields.city = Some("Cusco".into());
        fields.beneficiary_name = Some("Ana Quispe".into());
        fields.description = Some("   ".into());
        assert_eq!(fields.missing_to_open(), vec!["description".to_owned()]);
        assert_eq!(
            fields.check_open().unwrap_err().to_string(),
            "the draft cannot be opened: missing description"
        );
        assert!(
            fields
                .problems()
                .iter()
                .any(|p| p.contains("`description`"))
        );
        fields.description = Some("Fiebre alta".into());
        assert!(fields.check_open().is_ok());
        assert!(fields.problems().is_empty());
        fields.country = Some("Peru".into());
        fields.beneficiary_phone = Some("987654321".into());
        let problems = fields.problems();
        assert!(
            problems.iter().any(|p| p.contains("`country`")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("`beneficiary_phone`")),
            "{problems:?}"
        );
    }

    #[test]
    fn mok_events_validate_each_field() {
        let request = |action: &str| MokEventRequest {
            event_id: Some("mok-1".into()),
            source_code: Some("MOK".into()),
            action: Some(action.into()),
            assistance_id: Some("ase_1".into()),
            provider: Some("PRV-1".into()),
            note: None,
            occurred_at: None,
        };
        let event = request("EVENT_PROVIDER_START").validate().unwrap();
        assert_eq!(event.action, MokAction::EventProviderStart);
        assert!(event.is_mok());

        let problems = request("EVENT_PROVIDER_DELETE").validate().unwrap_err();
        assert!(problems[0].starts_with("field `action`: `EVENT_PROVIDER_DELETE` is not"));
        let problems = request("NOTE_REGISTER").validate().unwrap_err();
        assert_eq!(
            problems,
            vec!["field `note`: is required for NOTE_REGISTER"]
        );
        let problems = MokEventRequest {
            provider: None,
            ..request("EVENT_PROVIDER_CREATE")
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            problems,
            vec!["field `provider`: is required for EVENT_PROVIDER_CREATE"]
        );

        // Other sources need no tracking fields (they are ignored), but a known action.
        let other = MokEventRequest {
            source_code: Some("WEB".into()),
            assistance_id: None,
            provider: None,
            ..request("NOTE_REGISTER")
        };
        assert!(!other.clone().validate().unwrap().is_mok());
        let bad = MokEventRequest {
            action: Some("nope".into()),
            ..other
        };
        assert!(bad.validate().is_err());

        let problems = MokEventRequest::default().validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let problems = MokEventRequest {
            event_id: Some("a/b".into()),
            note: Some("x".repeat(MAX_NOTE_CHARS + 1)),
            ..request("NOTE_REGISTER")
        }
        .validate()
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn mok_sms_texts_name_the_event_and_cut_long_notes() {
        let event = MokEvent {
            event_id: "mok-1".into(),
            source_code: "MOK".into(),
            action: MokAction::EventProviderStart,
            assistance_id: Some("ase_1".into()),
            provider: Some("PRV-1".into()),
            note: Some("n".repeat(500)),
            occurred_at: None,
        };
        let text = event.sms_text();
        assert!(text.starts_with("Asistencia ase_1: el proveedor PRV-1 inició la atención."));
        assert!(text.chars().count() < 300, "{}", text.chars().count());
        assert!(text.ends_with('…'));
    }

    #[test]
    fn settings_are_checked_and_default_to_half_an_hour() {
        let settings = AssistanceSettings::default();
        assert_eq!(settings.provider_start_sla_secs, 1800);
        assert!(settings.problems().is_empty());
        let bad = AssistanceSettings {
            provider_start_sla_secs: 0,
            sms_type: "Loud".into(),
            ..settings
        };
        assert_eq!(bad.problems().len(), 2);
        let parsed: Result<AssistanceSettings, _> =
            serde_json::from_str(r#"{"operator_recipients": ["12345"]}"#);
        assert!(parsed.is_err(), "recipients must be E.164");
    }
}

// Writes and outcomes exchanged by the assistance workflows, their activities and the
// repository (stored in step logs, so a retried step returns the first result).

/// A provider working on an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventProvider {
    pub event_provider_id: String,
    pub event_id: String,
    pub provider_id: String,
    pub status: ProviderStatus,
    /// `api` or `mok`.
    pub source: String,
    pub resolution: Option<String>,
    pub assigned_at: i64,
    pub started_at: Option<i64>,
    pub resolved_at: Option<i64>,
}

/// A status change to apply (by an operator, or as a consequence of something else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusWrite {
    /// Derived by the caller (workflow id + sequence): a retried write finds its first result.
    pub change_id: String,
    pub event_id: String,
    pub to: EventStatus,
    pub source: String,
    pub reason: Option<String>,
}

/// What a status change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusOutcome {
    pub from: EventStatus,
    pub to: EventStatus,
    /// Providers released because the event was cancelled.
    pub cancelled_providers: Vec<String>,
    /// `false` when this change id had been applied already (a retry).
    pub applied: bool,
}

/// A provider action (assign, start, resolve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderWrite {
    /// Id of the event status change this action may cause.
    pub change_id: String,
    pub event_id: String,
    pub provider_id: String,
    /// `api` or `mok`.
    pub source: String,
    /// The resolution text (resolve only).
    pub note: Option<String>,
}

/// What a provider action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderOutcome {
    pub provider: EventProvider,
    pub event_status: EventStatus,
    /// `false` when the provider was already in the target state (a retry or a duplicate).
    pub applied: bool,
}

/// What the `TrackingMok` step did (stored in its log row, so a retry returns it unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingOutcome {
    pub action: MokAction,
    pub assistance_id: String,
    pub event_status: EventStatus,
    /// The provider's row after a provider action.
    pub event_provider: Option<EventProvider>,
    /// The note written by NOTE_REGISTER.
    pub note_id: Option<String>,
    /// `false` when the event was already in the requested state (nothing changed).
    pub applied: bool,
}

/// The id of `provider_id`'s work on `event_id` (the same for every caller, API or MOK).
pub fn event_provider_id(event_id: &str, provider_id: &str) -> String {
    let digest = Sha256::digest(format!("{event_id}\n{provider_id}"));
    format!("evp_{}", &hex::encode(digest)[..20])
}
