//! Travel assistance: catalogues, providers, assistance events, the providers working on them,
//! notes, phone consultations and the MOK assistance log.
//!
//! The database is the source of truth for an event's status; the event's workflow mirrors it
//! and runs the timers. Every write checks the state machine of `zengine_domain::assistance`
//! inside its transaction (compare-and-set), and every write is idempotent: status changes by a
//! change id derived in the workflow, provider steps by their target state, notes and
//! consultations by an id derived from the caller's idempotency key, log rows by
//! (tenant, event id, step).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use zengine_domain::TenantId;
use zengine_domain::assistance::{
    AssistanceSettings, EventFields, EventProvider, EventStatus, MokAction, MokEvent, MokStep,
    ProviderOutcome, ProviderStatus, ProviderWrite, StatusOutcome, StatusWrite, TrackingOutcome,
    TransitionError, event_provider_id, on_assign, on_resolve, on_start,
};

mod rows;
mod steps;

use super::events::record_in;
use super::{Database, NewEvent, now_millis};
use rows::*;
use steps::*;

/// The catalogues of `GET /v1/masters/{catalogue}`.
pub const CATALOGUES: [&str; 5] = [
    "categories",
    "event-statuses",
    "eventprovider-statuses",
    "voucher-statuses",
    "countries",
];

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterItem {
    pub code: String,
    pub name: String,
}

/// An assistance provider of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// The provider's code (partners such as MOK name providers by it).
    pub provider_id: String,
    pub name: String,
    pub category: String,
    pub country: String,
    pub city: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub active: bool,
}

/// Filters of [`AssistanceRepo::search_providers`].
#[derive(Debug, Clone, Default)]
pub struct ProviderSearch<'a> {
    pub category: Option<&'a str>,
    pub city: Option<&'a str>,
    /// Words matched against name, city and code, ignoring case and accents.
    pub text: Option<&'a str>,
    pub limit: i64,
}

/// An assistance event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistanceEvent {
    pub event_id: String,
    pub status: EventStatus,
    #[serde(flatten)]
    pub fields: EventFields,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One accepted status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChangeRecord {
    pub change_id: String,
    pub from: EventStatus,
    pub to: EventStatus,
    pub source: String,
    pub reason: Option<String>,
    pub created_at: i64,
}

/// A note on an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub note_id: String,
    pub event_id: String,
    pub author: String,
    pub source: String,
    pub body: String,
    pub created_at: i64,
}

/// A note to add.
#[derive(Debug, Clone)]
pub struct NewNote<'a> {
    pub note_id: &'a str,
    pub event_id: &'a str,
    pub author: &'a str,
    pub source: &'a str,
    pub body: &'a str,
    /// Hash of the request that carried an idempotency key (a reused key with another body is
    /// refused).
    pub request_hash: Option<&'a str>,
}

/// A phone consultation about an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneConsultation {
    pub consultation_id: String,
    pub event_id: String,
    pub caller_phone: Option<String>,
    pub summary: String,
    pub duration_secs: Option<i64>,
    pub attachment: Option<Attachment>,
    pub created_at: i64,
}

/// A file kept in the file store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub key: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

/// A phone consultation to add.
#[derive(Debug, Clone)]
pub struct NewConsultation<'a> {
    pub consultation_id: &'a str,
    pub event_id: &'a str,
    pub caller_phone: Option<&'a str>,
    pub summary: &'a str,
    pub duration_secs: Option<i64>,
    pub attachment: Option<&'a Attachment>,
    pub request_hash: Option<&'a str>,
}

/// One row of the assistance log (a step of the MOK state machine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub event_id: String,
    pub step: String,
    pub assistance_id: Option<String>,
    /// `OK` or `FAILED`.
    pub outcome: String,
    pub detail: serde_json::Value,
    pub created_at: i64,
}

/// A log row to write.
#[derive(Debug, Clone)]
pub struct LogWrite<'a> {
    pub event_id: &'a str,
    pub step: &'a str,
    pub assistance_id: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: &'a serde_json::Value,
}

/// Why an assistance write was refused.
#[derive(Debug, thiserror::Error)]
pub enum AssistanceError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("provider `{0}` does not exist or is not active")]
    UnknownProvider(String),
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("this idempotency key was already used for a different request")]
    KeyReused,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AssistanceError {
    fn from(e: sqlx::Error) -> Self {
        Self::Other(e.into())
    }
}

/// An id derived from an idempotency key: `{prefix}_` and 24 hex digits.
pub fn id_for_key(prefix: &str, tenant: &TenantId, key: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}\n{prefix}\n{key}"));
    format!("{prefix}_{}", &hex::encode(digest)[..24])
}

/// Lowercase, accent-free text for searching (SQLite's `lower()` only folds ASCII).
pub fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' | 'ã' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' | 'õ' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

const EVENT_COLUMNS: &str = "event_id, status, category, country, city, beneficiary_name, \
     beneficiary_phone, voucher_code, description, address, created_at, updated_at";

const PROVIDER_COLUMNS: &str = "provider_id, name, category, country, city, phone, email, active";

const EVENT_PROVIDER_COLUMNS: &str = "event_provider_id, event_id, provider_id, status, source, \
     resolution, assigned_at, started_at, resolved_at";

const CONSULTATION_COLUMNS: &str = "consultation_id, event_id, caller_phone, summary, \
     duration_secs, attachment_key, attachment_content_type, attachment_size, attachment_sha256, \
     created_at";

/// Assistance queries.
pub struct AssistanceRepo<'a> {
    pub(super) db: &'a Database,
}

/// The tenant's assistance writes run one at a time: a status change, a provider step and a MOK
/// action read the event and its providers, then write (two providers resolving at once both
/// saw the other active, and the event stayed IN_PROGRESS for good). Human-speed traffic.
const ASSISTANCE_LOCK: &str = "assistance";

impl AssistanceRepo<'_> {
    /// A catalogue's entries in display order; `None` for an unknown catalogue.
    pub async fn catalogue(&self, catalogue: &str) -> anyhow::Result<Option<Vec<MasterItem>>> {
        if !CATALOGUES.contains(&catalogue) {
            return Ok(None);
        }
        let rows = sqlx::query(
            "select code, name from master_item where catalogue = $1 order by sort_order, code",
        )
        .bind(catalogue)
        .fetch_all(self.db.pool())
        .await
        .context("Failed to read a catalogue")?;
        Ok(Some(
            rows.into_iter()
                .map(|r| MasterItem {
                    code: r.get(0),
                    name: r.get(1),
                })
                .collect(),
        ))
    }

    /// Creates or replaces a provider.
    pub async fn upsert_provider(
        &self,
        tenant_id: &TenantId,
        provider: &Provider,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        let now = now_millis();
        // `{city}|{name} {code}`: the city prefix serves the exact city filter, the rest the
        // text search.
        let search = format!(
            "{}|{}",
            fold(provider.city.trim()),
            fold(&format!("{} {}", provider.name, provider.provider_id))
        );
        sqlx::query(
            "insert into provider (tenant_id, provider_id, name, category, country, city, phone,
                 email, active, search_text, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
             on conflict (tenant_id, provider_id) do update set
                 name = excluded.name, category = excluded.category, country = excluded.country,
                 city = excluded.city, phone = excluded.phone, email = excluded.email,
                 active = excluded.active, search_text = excluded.search_text,
                 updated_at = excluded.updated_at",
        )
        .bind(tenant_id.as_str())
        .bind(&provider.provider_id)
        .bind(&provider.name)
        .bind(&provider.category)
        .bind(&provider.country)
        .bind(&provider.city)
        .bind(provider.phone.as_deref())
        .bind(provider.email.as_deref())
        .bind(i64::from(provider.active))
        .bind(search)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to upsert provider")?;
        tx.commit().await?;
        Ok(())
    }

    /// Active providers matching every given filter (category exact, city ignoring case and
    /// accents, every word of `text` somewhere in name, city or code), by name.
    pub async fn search_providers(
        &self,
        tenant_id: &TenantId,
        search: &ProviderSearch<'_>,
    ) -> anyhow::Result<Vec<Provider>> {
        let mut sql =
            format!("select {PROVIDER_COLUMNS} from provider where tenant_id = $1 and active = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(category) = search.category {
            binds.push(category.to_owned());
            sql.push_str(&format!(" and category = ${}", binds.len() + 1));
        }
        if let Some(city) = search.city {
            // search_text begins with the folded city and a `|` (see `upsert_provider`).
            binds.push(escape_like(&fold(city.trim())));
            sql.push_str(&format!(
                " and search_text like ${} || '|%' escape '\\'",
                binds.len() + 1
            ));
        }
        for word in search.text.unwrap_or("").split_whitespace().take(8) {
            binds.push(escape_like(&fold(word)));
            sql.push_str(&format!(
                " and search_text like '%' || ${} || '%' escape '\\'",
                binds.len() + 1
            ));
        }
        sql.push_str(&format!(
            " order by name, provider_id limit ${}",
            binds.len() + 2
        ));
        let mut tx = self.db.begin_for(tenant_id).await?;
        let mut query = sqlx::query(&sql).bind(tenant_id.as_str());
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query
            .bind(search.limit)
            .fetch_all(&mut *tx)
            .await
            .context("Failed to search providers")?;
        tx.commit().await?;
        Ok(rows.into_iter().map(provider_of).collect())
    }

    /// A provider, active or not.
    pub async fn provider(
        &self,
        tenant_id: &TenantId,
        provider_id: &str,
    ) -> anyhow::Result<Option<Provider>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let provider = fetch_provider(&mut tx, tenant_id, provider_id).await?;
        tx.commit().await?;
        Ok(provider)
    }

    /// Creates a DRAFT event, or returns the existing one with this id (then `false`); with a
    /// `request_hash`, an existing event created by another request is [`AssistanceError::KeyReused`].
    pub async fn create_draft(
        &self,
        tenant_id: &TenantId,
        event_id: &str,
        fields: &EventFields,
        request_hash: Option<&str>,
    ) -> Result<(AssistanceEvent, bool), AssistanceError> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        check_fields(&mut tx, fields).await?;
        let now = now_millis();
        let done = sqlx::query(
            "insert into assistance_event (tenant_id, event_id, status, category, country, city,
                 beneficiary_name, beneficiary_phone, voucher_code, description, address,
                 request_hash, created_at, updated_at)
             values ($1, $2, 'DRAFT', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
             on conflict (tenant_id, event_id) do nothing",
        )
        .bind(tenant_id.as_str())
        .bind(event_id)
        .bind(fields.category.as_deref())
        .bind(fields.country.as_deref())
        .bind(fields.city.as_deref())
        .bind(fields.beneficiary_name.as_deref())
        .bind(fields.beneficiary_phone.as_deref())
        .bind(fields.voucher_code.as_deref())
        .bind(fields.description.as_deref())
        .bind(fields.address.as_deref())
        .bind(request_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("Failed to create the draft")?;
        let created = done.rows_affected() == 1;
        if !created {
            let stored: Option<String> = sqlx::query_scalar(
                "select request_hash from assistance_event where tenant_id = $1 and event_id = $2",
            )
            .bind(tenant_id.as_str())
            .bind(event_id)
            .fetch_one(&mut *tx)
            .await?;
            if stored.as_deref() != request_hash {
                return Err(AssistanceError::KeyReused);
            }
        }
        let event = fetch_event(&mut tx, tenant_id, event_id)
            .await?
            .context("event vanished after insert")?;
        tx.commit().await?;
        Ok((event, created))
    }

    /// Replaces the fields of a DRAFT event (compare-and-set on the status).
    pub async fn update_draft(
        &self,
        tenant_id: &TenantId,
        event_id: &str,
        fields: &EventFields,
    ) -> Result<AssistanceEvent, AssistanceError> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        check_fields(&mut tx, fields).await?;
        let done = sqlx::query(
            "update assistance_event set category = $1, country = $2, city = $3,
                 beneficiary_name = $4, beneficiary_phone = $5, voucher_code = $6,
                 description = $7, address = $8, updated_at = $9
             where tenant_id = $10 and event_id = $11 and status = 'DRAFT'",
        )
        .bind(fields.category.as_deref())
        .bind(fields.country.as_deref())
        .bind(fields.city.as_deref())
        .bind(fields.beneficiary_name.as_deref())
        .bind(fields.beneficiary_phone.as_deref())
        .bind(fields.voucher_code.as_deref())
        .bind(fields.description.as_deref())
        .bind(fields.address.as_deref())
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(event_id)
        .execute(&mut *tx)
        .await
        .context("Failed to update the draft")?;
        let event = fetch_event(&mut tx, tenant_id, event_id)
            .await?
            .ok_or_else(|| AssistanceError::NotFound(format!("assistance event `{event_id}`")))?;
        if done.rows_affected() == 0 {
            return Err(AssistanceError::Transition(TransitionError::NotAllowed {
                from: event.status,
                to: EventStatus::Draft,
            }));
        }
        tx.commit().await?;
        Ok(event)
    }

    pub async fn event(
        &self,
        tenant_id: &TenantId,
        event_id: &str,
    ) -> anyhow::Result<Option<AssistanceEvent>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let event = fetch_event(&mut tx, tenant_id, event_id).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Applies a status change once per `change_id`: checks the manual rules (and, to leave
    /// DRAFT, the required fields), moves the event, releases its providers when it is
    /// cancelled, and records the change and an `Assistance.StatusChanged` event.
    pub async fn change_status(
        &self,
        tenant_id: &TenantId,
        write: &StatusWrite,
    ) -> Result<StatusOutcome, AssistanceError> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        if let Some(done) = fetch_change(&mut tx, tenant_id, &write.change_id).await? {
            tx.commit().await?;
            return Ok(StatusOutcome {
                from: done.from,
                to: done.to,
                cancelled_providers: Vec::new(),
                applied: false,
            });
        }
        let event = fetch_event(&mut tx, tenant_id, &write.event_id)
            .await?
            .ok_or_else(|| {
                AssistanceError::NotFound(format!("assistance event `{}`", write.event_id))
            })?;
        event.status.check_manual(write.to)?;
        if event.status == EventStatus::Draft && write.to == EventStatus::Open {
            event.fields.check_open()?;
        }
        if event.status == EventStatus::Open && write.to == EventStatus::Resolved {
            let providers = fetch_event_providers(&mut tx, tenant_id, &write.event_id).await?;
            if !providers.is_empty() {
                return Err(TransitionError::NotManual {
                    to: write.to,
                    how: "an event providers worked on is resolved by its providers",
                }
                .into());
            }
        }
        let mut cancelled = Vec::new();
        if write.to == EventStatus::Cancelled {
            let now = now_millis();
            for p in fetch_event_providers(&mut tx, tenant_id, &write.event_id).await? {
                if p.status.is_active() {
                    sqlx::query(
                        "update event_provider set status = 'CANCELLED', updated_at = $1
                         where tenant_id = $2 and event_provider_id = $3",
                    )
                    .bind(now)
                    .bind(tenant_id.as_str())
                    .bind(&p.event_provider_id)
                    .execute(&mut *tx)
                    .await?;
                    cancelled.push(p.event_provider_id);
                }
            }
        }
        move_event(
            &mut tx,
            tenant_id,
            &event,
            write.to,
            &write.change_id,
            &write.source,
            write.reason.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(StatusOutcome {
            from: event.status,
            to: write.to,
            cancelled_providers: cancelled,
            applied: true,
        })
    }

    /// Assigns a provider (ASSIGNED); an OPEN event becomes PROVIDER_ASSIGNED. Assigning the
    /// same provider again returns its current row with `applied: false`.
    pub async fn assign_provider(
        &self,
        tenant_id: &TenantId,
        write: &ProviderWrite,
    ) -> Result<ProviderOutcome, AssistanceError> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        let outcome = assign_in(&mut tx, tenant_id, write).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The provider starts (ASSIGNED → STARTED); the event becomes IN_PROGRESS. A provider
    /// already STARTED is returned with `applied: false`.
    pub async fn start_provider(
        &self,
        tenant_id: &TenantId,
        write: &ProviderWrite,
    ) -> Result<ProviderOutcome, AssistanceError> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        let outcome = start_in(&mut tx, tenant_id, write).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The provider resolves its part (STARTED → RESOLVED); the event is RESOLVED when no
    /// other provider is active. A provider already RESOLVED is returned with `applied: false`.
    pub async fn resolve_provider(
        &self,
        tenant_id: &TenantId,
        write: &ProviderWrite,
    ) -> Result<ProviderOutcome, AssistanceError> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        let outcome = resolve_in(&mut tx, tenant_id, write).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The `TrackingMok` step: applies a MOK event's action and writes its log row in one
    /// transaction, so the effect and the log happen together, once. When the log row exists
    /// already (a retry after a commit, or a replay) the stored outcome is returned with
    /// `false`.
    pub async fn track_mok(
        &self,
        tenant_id: &TenantId,
        event: &MokEvent,
        change_id: &str,
    ) -> Result<(TrackingOutcome, bool), AssistanceError> {
        let step = MokStep::TrackingMok.as_str();
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        if let Some(entry) = fetch_log(&mut tx, tenant_id, &event.event_id, step).await? {
            tx.commit().await?;
            let outcome = serde_json::from_value(entry.detail["outcome"].clone())
                .context("stored TrackingMok outcome")?;
            return Ok((outcome, false));
        }
        let assistance_id = event
            .assistance_id
            .clone()
            .ok_or_else(|| AssistanceError::Invalid(vec!["assistance_id is required".into()]))?;
        let provider_write = || ProviderWrite {
            change_id: change_id.to_owned(),
            event_id: assistance_id.clone(),
            provider_id: event.provider.clone().unwrap_or_default(),
            source: "mok".into(),
            note: event.note.clone(),
        };
        let provider_outcome = match event.action {
            MokAction::EventProviderCreate => {
                Some(assign_in(&mut tx, tenant_id, &provider_write()).await?)
            }
            MokAction::EventProviderStart => {
                Some(start_in(&mut tx, tenant_id, &provider_write()).await?)
            }
            MokAction::EventProviderResolve => {
                Some(resolve_in(&mut tx, tenant_id, &provider_write()).await?)
            }
            MokAction::NoteRegister => None,
        };
        let outcome = match provider_outcome {
            Some(p) => TrackingOutcome {
                action: event.action,
                assistance_id: assistance_id.clone(),
                event_status: p.event_status,
                event_provider: Some(p.provider),
                note_id: None,
                applied: p.applied,
            },
            None => {
                let note_id = id_for_key("not", tenant_id, &format!("mok/{}", event.event_id));
                let (_, created) = add_note_in(
                    &mut tx,
                    tenant_id,
                    &NewNote {
                        note_id: &note_id,
                        event_id: &assistance_id,
                        author: "MOK",
                        source: "mok",
                        body: event.note.as_deref().unwrap_or_default(),
                        request_hash: None,
                    },
                )
                .await?;
                let status = fetch_event(&mut tx, tenant_id, &assistance_id)
                    .await?
                    .context("event vanished")?
                    .status;
                TrackingOutcome {
                    action: event.action,
                    assistance_id: assistance_id.clone(),
                    event_status: status,
                    event_provider: None,
                    note_id: Some(note_id),
                    applied: created,
                }
            }
        };
        log_in(
            &mut tx,
            tenant_id,
            &LogWrite {
                event_id: &event.event_id,
                step,
                assistance_id: Some(&assistance_id),
                outcome: "OK",
                detail: &serde_json::json!({ "outcome": outcome }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((outcome, true))
    }

    /// The providers of an event, in assignment order.
    pub async fn event_providers(
        &self,
        tenant_id: &TenantId,
        event_id: &str,
    ) -> anyhow::Result<Vec<EventProvider>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let providers = fetch_event_providers(&mut tx, tenant_id, event_id).await?;
        tx.commit().await?;
        Ok(providers)
    }

    /// The status changes of an event, oldest first.
    pub async fn status_changes(
        &self,
        tenant_id: &TenantId,
        event_id: &str,
    ) -> anyhow::Result<Vec<StatusChangeRecord>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select change_id, from_status, to_status, source, reason, created_at
             from assistance_status_change where tenant_id = $1 and event_id = $2
             order by created_at, change_id",
        )
        .bind(tenant_id.as_str())
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list status changes")?;
        tx.commit().await?;
        rows.into_iter().map(change_of).collect()
    }

    /// Adds a note (the event must exist); the same `note_id` again returns the stored note
    /// with `false`, or [`AssistanceError::KeyReused`] when it came from another request.
    pub async fn add_note(
        &self,
        tenant_id: &TenantId,
        note: &NewNote<'_>,
    ) -> Result<(Note, bool), AssistanceError> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        let result = add_note_in(&mut tx, tenant_id, note).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// The notes of an event, oldest first.
    pub async fn notes(&self, tenant_id: &TenantId, event_id: &str) -> anyhow::Result<Vec<Note>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(
            "select note_id, event_id, author, source, body, created_at from assistance_note
             where tenant_id = $1 and event_id = $2 order by created_at, note_id",
        )
        .bind(tenant_id.as_str())
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list notes")?;
        tx.commit().await?;
        Ok(rows.into_iter().map(note_of).collect())
    }

    /// Records a phone consultation (the event must exist), idempotent like [`Self::add_note`].
    pub async fn add_consultation(
        &self,
        tenant_id: &TenantId,
        c: &NewConsultation<'_>,
    ) -> Result<(PhoneConsultation, bool), AssistanceError> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        if fetch_event(&mut tx, tenant_id, c.event_id).await?.is_none() {
            return Err(AssistanceError::NotFound(format!(
                "assistance event `{}`",
                c.event_id
            )));
        }
        let done = sqlx::query(
            "insert into phone_consultation (tenant_id, consultation_id, event_id, caller_phone,
                 summary, duration_secs, attachment_key, attachment_content_type, attachment_size,
                 attachment_sha256, request_hash, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             on conflict (tenant_id, consultation_id) do nothing",
        )
        .bind(tenant_id.as_str())
        .bind(c.consultation_id)
        .bind(c.event_id)
        .bind(c.caller_phone)
        .bind(c.summary)
        .bind(c.duration_secs)
        .bind(c.attachment.map(|a| a.key.as_str()))
        .bind(c.attachment.map(|a| a.content_type.as_str()))
        .bind(c.attachment.map(|a| a.size))
        .bind(c.attachment.map(|a| a.sha256.as_str()))
        .bind(c.request_hash)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .context("Failed to record the phone consultation")?;
        let created = done.rows_affected() == 1;
        if !created {
            let stored: Option<String> = sqlx::query_scalar(
                "select request_hash from phone_consultation
                 where tenant_id = $1 and consultation_id = $2",
            )
            .bind(tenant_id.as_str())
            .bind(c.consultation_id)
            .fetch_one(&mut *tx)
            .await?;
            if stored.as_deref() != c.request_hash {
                return Err(AssistanceError::KeyReused);
            }
        }
        let consultation = fetch_consultation(&mut tx, tenant_id, c.consultation_id)
            .await?
            .context("consultation vanished after insert")?;
        tx.commit().await?;
        Ok((consultation, created))
    }

    pub async fn consultation(
        &self,
        tenant_id: &TenantId,
        consultation_id: &str,
    ) -> anyhow::Result<Option<PhoneConsultation>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let c = fetch_consultation(&mut tx, tenant_id, consultation_id).await?;
        tx.commit().await?;
        Ok(c)
    }

    /// The phone consultations of an event, oldest first.
    pub async fn consultations(
        &self,
        tenant_id: &TenantId,
        event_id: &str,
    ) -> anyhow::Result<Vec<PhoneConsultation>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(&format!(
            "select {CONSULTATION_COLUMNS} from phone_consultation
             where tenant_id = $1 and event_id = $2 order by created_at, consultation_id"
        ))
        .bind(tenant_id.as_str())
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list phone consultations")?;
        tx.commit().await?;
        Ok(rows.into_iter().map(consultation_of).collect())
    }

    /// Writes a log row unless one exists for (tenant, event id, step); returns whether it was
    /// new. The first write wins: a replayed or retried step never rewrites history.
    pub async fn log_step(
        &self,
        tenant_id: &TenantId,
        entry: &LogWrite<'_>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_serialised(tenant_id, ASSISTANCE_LOCK).await?;
        let new = log_in(&mut tx, tenant_id, entry).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// The log row of a step, if written.
    pub async fn log_entry(
        &self,
        tenant_id: &TenantId,
        event_id: &str,
        step: &str,
    ) -> anyhow::Result<Option<LogEntry>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let entry = fetch_log(&mut tx, tenant_id, event_id, step).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// The log of a tracking event, in step order.
    pub async fn log(&self, tenant_id: &TenantId, event_id: &str) -> anyhow::Result<Vec<LogEntry>> {
        self.log_where(tenant_id, "event_id", event_id).await
    }

    /// Every log row about an assistance event, oldest first.
    pub async fn log_for_assistance(
        &self,
        tenant_id: &TenantId,
        assistance_id: &str,
    ) -> anyhow::Result<Vec<LogEntry>> {
        self.log_where(tenant_id, "assistance_id", assistance_id)
            .await
    }

    async fn log_where(
        &self,
        tenant_id: &TenantId,
        column: &str,
        value: &str,
    ) -> anyhow::Result<Vec<LogEntry>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(&format!(
            "select event_id, step, assistance_id, outcome, detail, created_at from assistance_log
             where tenant_id = $1 and {column} = $2 order by created_at, event_id"
        ))
        .bind(tenant_id.as_str())
        .bind(value)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to read the assistance log")?;
        tx.commit().await?;
        rows.into_iter().map(log_of).collect()
    }

    /// The tenant's assistance rules.
    pub async fn settings(&self, tenant_id: &TenantId) -> anyhow::Result<AssistanceSettings> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let raw: Option<String> =
            sqlx::query_scalar("select assistance_settings from tenant where tenant_id = $1")
                .bind(tenant_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to read assistance settings")?;
        tx.commit().await?;
        match raw {
            Some(raw) => {
                serde_json::from_str(&raw).context("stored assistance_settings is not valid")
            }
            None => anyhow::bail!("tenant `{tenant_id}` does not exist"),
        }
    }

    /// Replaces the tenant's assistance rules (rejected when [`AssistanceSettings::problems`]
    /// finds any).
    pub async fn set_settings(
        &self,
        tenant_id: &TenantId,
        settings: &AssistanceSettings,
    ) -> anyhow::Result<()> {
        let problems = settings.problems();
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        let mut tx = self.db.begin_for(tenant_id).await?;
        sqlx::query(
            "update tenant set assistance_settings = $1, updated_at = $2 where tenant_id = $3",
        )
        .bind(serde_json::to_string(settings)?)
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .execute(&mut *tx)
        .await
        .context("Failed to write assistance settings")?;
        tx.commit().await?;
        Ok(())
    }
}

/// Escapes `%`, `_` and `\` for a `like … escape '\'` pattern.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_folds_case_and_accents() {
        assert_eq!(fold("Clínica San Pablo CUSCO"), "clinica san pablo cusco");
        assert_eq!(fold("Ñuñoa"), "nunoa");
    }

    #[test]
    fn like_patterns_escape_their_wildcards() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let tenant = TenantId::parse("demo").unwrap();
        assert_eq!(
            id_for_key("ase", &tenant, "k1"),
            id_for_key("ase", &tenant, "k1")
        );
        assert_ne!(
            id_for_key("ase", &tenant, "k1"),
            id_for_key("not", &tenant, "k1")
        );
        assert_ne!(event_provider_id("e1", "p1"), event_provider_id("e1", "p2"));
        assert!(event_provider_id("e1", "p1").starts_with("evp_"));
    }
}
