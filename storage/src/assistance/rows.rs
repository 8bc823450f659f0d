//! Reading assistance rows: one fetch per table and the mapping of a row to its type.

use super::*;

pub(super) async fn fetch_event(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    event_id: &str,
) -> anyhow::Result<Option<AssistanceEvent>> {
    sqlx::query(&format!(
        "select {EVENT_COLUMNS} from assistance_event where tenant_id = $1 and event_id = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(event_id)
    .fetch_optional(conn)
    .await
    .context("Failed to read the assistance event")?
    .map(event_of)
    .transpose()
}

pub(super) async fn fetch_provider(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    provider_id: &str,
) -> anyhow::Result<Option<Provider>> {
    Ok(sqlx::query(&format!(
        "select {PROVIDER_COLUMNS} from provider where tenant_id = $1 and provider_id = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(provider_id)
    .fetch_optional(conn)
    .await
    .context("Failed to read the provider")?
    .map(provider_of))
}

pub(super) async fn fetch_event_provider(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    event_provider_id: &str,
) -> anyhow::Result<Option<EventProvider>> {
    sqlx::query(&format!(
        "select {EVENT_PROVIDER_COLUMNS} from event_provider
         where tenant_id = $1 and event_provider_id = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(event_provider_id)
    .fetch_optional(conn)
    .await
    .context("Failed to read the event provider")?
    .map(event_provider_of)
    .transpose()
}

pub(super) async fn fetch_event_providers(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    event_id: &str,
) -> anyhow::Result<Vec<EventProvider>> {
    sqlx::query(&format!(
        "select {EVENT_PROVIDER_COLUMNS} from event_provider
         where tenant_id = $1 and event_id = $2 order by assigned_at, event_provider_id"
    ))
    .bind(tenant_id.as_str())
    .bind(event_id)
    .fetch_all(conn)
    .await
    .context("Failed to list the event's providers")?
    .into_iter()
    .map(event_provider_of)
    .collect()
}

pub(super) async fn fetch_change(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    change_id: &str,
) -> anyhow::Result<Option<StatusChangeRecord>> {
    sqlx::query(
        "select change_id, from_status, to_status, source, reason, created_at
         from assistance_status_change where tenant_id = $1 and change_id = $2",
    )
    .bind(tenant_id.as_str())
    .bind(change_id)
    .fetch_optional(conn)
    .await
    .context("Failed to read the status change")?
    .map(change_of)
    .transpose()
}

pub(super) async fn fetch_consultation(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    consultation_id: &str,
) -> anyhow::Result<Option<PhoneConsultation>> {
    Ok(sqlx::query(&format!(
        "select {CONSULTATION_COLUMNS} from phone_consultation
         where tenant_id = $1 and consultation_id = $2"
    ))
    .bind(tenant_id.as_str())
    .bind(consultation_id)
    .fetch_optional(conn)
    .await
    .context("Failed to read the phone consultation")?
    .map(consultation_of))
}

pub(super) fn status_of(raw: String) -> anyhow::Result<EventStatus> {
    raw.parse().map_err(anyhow::Error::msg)
}

pub(super) fn event_of(row: sqlx::any::AnyRow) -> anyhow::Result<AssistanceEvent> {
    Ok(AssistanceEvent {
        event_id: row.get(0),
        status: status_of(row.get(1))?,
        fields: EventFields {
            category: row.get(2),
            country: row.get(3),
            city: row.get(4),
            beneficiary_name: row.get(5),
            beneficiary_phone: row.get(6),
            voucher_code: row.get(7),
            description: row.get(8),
            address: row.get(9),
        },
        created_at: row.get(10),
        updated_at: row.get(11),
    })
}

pub(super) fn provider_of(row: sqlx::any::AnyRow) -> Provider {
    Provider {
        provider_id: row.get(0),
        name: row.get(1),
        category: row.get(2),
        country: row.get(3),
        city: row.get(4),
        phone: row.get(5),
        email: row.get(6),
        active: row.get::<i64, _>(7) == 1,
    }
}

pub(super) fn event_provider_of(row: sqlx::any::AnyRow) -> anyhow::Result<EventProvider> {
    let status: String = row.get(3);
    Ok(EventProvider {
        event_provider_id: row.get(0),
        event_id: row.get(1),
        provider_id: row.get(2),
        status: status.parse().map_err(anyhow::Error::msg)?,
        source: row.get(4),
        resolution: row.get(5),
        assigned_at: row.get(6),
        started_at: row.get(7),
        resolved_at: row.get(8),
    })
}

pub(super) fn change_of(row: sqlx::any::AnyRow) -> anyhow::Result<StatusChangeRecord> {
    Ok(StatusChangeRecord {
        change_id: row.get(0),
        from: status_of(row.get(1))?,
        to: status_of(row.get(2))?,
        source: row.get(3),
        reason: row.get(4),
        created_at: row.get(5),
    })
}

pub(super) fn note_of(row: sqlx::any::AnyRow) -> Note {
    Note {
        note_id: row.get(0),
        event_id: row.get(1),
        author: row.get(2),
        source: row.get(3),
        body: row.get(4),
        created_at: row.get(5),
    }
}

pub(super) fn consultation_of(row: sqlx::any::AnyRow) -> PhoneConsultation {
    let key: Option<String> = row.get(5);
    PhoneConsultation {
        consultation_id: row.get(0),
        event_id: row.get(1),
        caller_phone: row.get(2),
        summary: row.get(3),
        duration_secs: row.get(4),
        attachment: key.map(|key| Attachment {
            key,
            content_type: row.get::<Option<String>, _>(6).unwrap_or_default(),
            size: row.get::<Option<i64>, _>(7).unwrap_or_default(),
            sha256: row.get::<Option<String>, _>(8).unwrap_or_default(),
        }),
        created_at: row.get(9),
    }
}

pub(super) fn log_of(row: sqlx::any::AnyRow) -> anyhow::Result<LogEntry> {
    let detail: String = row.get(4);
    Ok(LogEntry {
        event_id: row.get(0),
        step: row.get(1),
        assistance_id: row.get(2),
        outcome: row.get(3),
        detail: serde_json::from_str(&detail).context("stored log detail is not JSON")?,
        created_at: row.get(5),
    })
}
