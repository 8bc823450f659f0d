//! The steps of assistance writes, each run inside the caller's transaction: the state machine
//! checked, the row changed with a compare-and-set, the domain event recorded, and the event's
//! status moved when a provider step moves it.

use super::*;

/// Field formats, and category / country codes known to the catalogues.
pub(super) async fn check_fields(
    conn: &mut sqlx::AnyConnection,
    fields: &EventFields,
) -> Result<(), AssistanceError> {
    let mut problems = fields.problems();
    for (name, catalogue, value) in [
        ("category", "categories", &fields.category),
        ("country", "countries", &fields.country),
    ] {
        if let Some(code) = value {
            let known: Option<String> = sqlx::query_scalar(
                "select code from master_item where catalogue = $1 and code = $2",
            )
            .bind(catalogue)
            .bind(code)
            .fetch_optional(&mut *conn)
            .await?;
            if known.is_none() && !problems.iter().any(|p| p.contains(&format!("`{name}`"))) {
                problems.push(format!(
                    "field `{name}`: `{code}` is not in GET /v1/masters/{catalogue}"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AssistanceError::Invalid(problems))
    }
}

/// Moves the event and records the change and its domain event.
pub(super) async fn move_event(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    event: &AssistanceEvent,
    to: EventStatus,
    change_id: &str,
    source: &str,
    reason: Option<&str>,
) -> Result<(), AssistanceError> {
    let now = now_millis();
    let moved = sqlx::query(
        "update assistance_event set status = $1, updated_at = $2
         where tenant_id = $3 and event_id = $4 and status = $5",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(tenant_id.as_str())
    .bind(&event.event_id)
    .bind(event.status.as_str())
    .execute(&mut *conn)
    .await
    .context("Failed to move the assistance event")?;
    if moved.rows_affected() != 1 {
        // Another writer moved it between our read and this write (PostgreSQL read committed).
        return Err(anyhow::anyhow!("the assistance event changed concurrently; retry").into());
    }
    sqlx::query(
        "insert into assistance_status_change (tenant_id, change_id, event_id, from_status,
             to_status, source, reason, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant_id.as_str())
    .bind(change_id)
    .bind(&event.event_id)
    .bind(event.status.as_str())
    .bind(to.as_str())
    .bind(source)
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("Failed to record the status change")?;
    record_in(
        conn,
        NewEvent {
            event_id: change_id,
            tenant_id,
            event_type: zengine_domain::events::EventType::AssistanceStatusChanged,
            subject: &event.event_id,
            payload: &serde_json::json!({
                "from": event.status, "to": to, "source": source, "reason": reason,
            }),
        },
    )
    .await?;
    Ok(())
}

pub(super) async fn assign_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    write: &ProviderWrite,
) -> Result<ProviderOutcome, AssistanceError> {
    let event = fetch_event(conn, tenant_id, &write.event_id)
        .await?
        .ok_or_else(|| {
            AssistanceError::NotFound(format!("assistance event `{}`", write.event_id))
        })?;
    let id = event_provider_id(&write.event_id, &write.provider_id);
    if let Some(existing) = fetch_event_provider(conn, tenant_id, &id).await? {
        return Ok(unchanged(existing, &event));
    }
    let next = on_assign(event.status)?;
    if !fetch_provider(conn, tenant_id, &write.provider_id)
        .await?
        .is_some_and(|p| p.active)
    {
        return Err(AssistanceError::UnknownProvider(write.provider_id.clone()));
    }
    let now = now_millis();
    sqlx::query(
        "insert into event_provider (tenant_id, event_provider_id, event_id, provider_id, status,
             source, assigned_at, updated_at)
         values ($1, $2, $3, $4, 'ASSIGNED', $5, $6, $6)",
    )
    .bind(tenant_id.as_str())
    .bind(&id)
    .bind(&write.event_id)
    .bind(&write.provider_id)
    .bind(&write.source)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("Failed to assign the provider")?;
    provider_moved(
        conn,
        tenant_id,
        write,
        &event,
        &id,
        next,
        ProviderMove::Assigned,
    )
    .await
}

/// A provider step that finds the provider already where it would move it (a retry or a
/// duplicate): nothing written, `applied: false`.
fn unchanged(provider: EventProvider, event: &AssistanceEvent) -> ProviderOutcome {
    ProviderOutcome {
        provider,
        event_status: event.status,
        applied: false,
    }
}

/// What happened to a provider's row, for [`provider_moved`].
#[derive(Clone, Copy)]
pub(super) enum ProviderMove {
    Assigned,
    Started,
    Resolved,
}

/// After a provider's row was written: its domain event, the event status change it causes
/// (when `next` differs), and the outcome with the row as stored now.
pub(super) async fn provider_moved(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    write: &ProviderWrite,
    event: &AssistanceEvent,
    event_provider_id: &str,
    next: EventStatus,
    how: ProviderMove,
) -> Result<ProviderOutcome, AssistanceError> {
    use zengine_domain::events::EventType;
    let (what, event_type) = match how {
        ProviderMove::Assigned => ("assigned", EventType::AssistanceProviderAssigned),
        ProviderMove::Started => ("started", EventType::AssistanceProviderStarted),
        ProviderMove::Resolved => ("resolved", EventType::AssistanceProviderResolved),
    };
    record_in(
        conn,
        NewEvent {
            event_id: &format!("{event_provider_id}/{what}"),
            tenant_id,
            event_type,
            subject: &write.event_id,
            payload: &serde_json::json!({
                "event_provider_id": event_provider_id,
                "provider_id": write.provider_id, "source": write.source,
            }),
        },
    )
    .await?;
    if next != event.status {
        move_event(
            conn,
            tenant_id,
            event,
            next,
            &write.change_id,
            &write.source,
            Some(&format!("provider {} {what}", write.provider_id)),
        )
        .await?;
    }
    let provider = fetch_event_provider(conn, tenant_id, event_provider_id)
        .await?
        .context("event provider vanished after its write")?;
    Ok(ProviderOutcome {
        provider,
        event_status: next,
        applied: true,
    })
}

/// The event and the provider's row for a start / resolve.
pub(super) async fn provider_step_context(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    write: &ProviderWrite,
) -> Result<(AssistanceEvent, EventProvider), AssistanceError> {
    let event = fetch_event(conn, tenant_id, &write.event_id)
        .await?
        .ok_or_else(|| {
            AssistanceError::NotFound(format!("assistance event `{}`", write.event_id))
        })?;
    let id = event_provider_id(&write.event_id, &write.provider_id);
    let provider = fetch_event_provider(conn, tenant_id, &id)
        .await?
        .ok_or_else(|| {
            AssistanceError::NotFound(format!(
                "provider `{}` on assistance event `{}`",
                write.provider_id, write.event_id
            ))
        })?;
    Ok((event, provider))
}

pub(super) async fn start_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    write: &ProviderWrite,
) -> Result<ProviderOutcome, AssistanceError> {
    let (event, provider) = provider_step_context(conn, tenant_id, write).await?;
    if provider.status == ProviderStatus::Started {
        return Ok(unchanged(provider, &event));
    }
    let next = on_start(event.status, provider.status)?;
    let now = now_millis();
    sqlx::query(
        "update event_provider set status = 'STARTED', started_at = $1, updated_at = $1
         where tenant_id = $2 and event_provider_id = $3 and status = 'ASSIGNED'",
    )
    .bind(now)
    .bind(tenant_id.as_str())
    .bind(&provider.event_provider_id)
    .execute(&mut *conn)
    .await
    .context("Failed to start the provider")?;
    let id = provider.event_provider_id;
    provider_moved(
        conn,
        tenant_id,
        write,
        &event,
        &id,
        next,
        ProviderMove::Started,
    )
    .await
}

pub(super) async fn resolve_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    write: &ProviderWrite,
) -> Result<ProviderOutcome, AssistanceError> {
    let (event, provider) = provider_step_context(conn, tenant_id, write).await?;
    if provider.status == ProviderStatus::Resolved {
        return Ok(unchanged(provider, &event));
    }
    let others_active = fetch_event_providers(conn, tenant_id, &write.event_id)
        .await?
        .iter()
        .any(|p| p.event_provider_id != provider.event_provider_id && p.status.is_active());
    let next = on_resolve(event.status, provider.status, others_active)?;
    let now = now_millis();
    sqlx::query(
        "update event_provider set status = 'RESOLVED', resolution = $1, resolved_at = $2,
             updated_at = $2
         where tenant_id = $3 and event_provider_id = $4 and status = 'STARTED'",
    )
    .bind(write.note.as_deref())
    .bind(now)
    .bind(tenant_id.as_str())
    .bind(&provider.event_provider_id)
    .execute(&mut *conn)
    .await
    .context("Failed to resolve the provider")?;
    let id = provider.event_provider_id;
    provider_moved(
        conn,
        tenant_id,
        write,
        &event,
        &id,
        next,
        ProviderMove::Resolved,
    )
    .await
}

pub(super) async fn add_note_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    note: &NewNote<'_>,
) -> Result<(Note, bool), AssistanceError> {
    if fetch_event(conn, tenant_id, note.event_id).await?.is_none() {
        return Err(AssistanceError::NotFound(format!(
            "assistance event `{}`",
            note.event_id
        )));
    }
    let done = sqlx::query(
        "insert into assistance_note (tenant_id, note_id, event_id, author, source, body,
             request_hash, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (tenant_id, note_id) do nothing",
    )
    .bind(tenant_id.as_str())
    .bind(note.note_id)
    .bind(note.event_id)
    .bind(note.author)
    .bind(note.source)
    .bind(note.body)
    .bind(note.request_hash)
    .bind(now_millis())
    .execute(&mut *conn)
    .await
    .context("Failed to add the note")?;
    let created = done.rows_affected() == 1;
    let row = sqlx::query(
        "select note_id, event_id, author, source, body, created_at, request_hash
         from assistance_note where tenant_id = $1 and note_id = $2",
    )
    .bind(tenant_id.as_str())
    .bind(note.note_id)
    .fetch_one(&mut *conn)
    .await?;
    let stored_hash: Option<String> = row.get(6);
    if !created && stored_hash.as_deref() != note.request_hash {
        return Err(AssistanceError::KeyReused);
    }
    Ok((note_of(row), created))
}

pub(super) async fn log_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    entry: &LogWrite<'_>,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "insert into assistance_log (tenant_id, event_id, step, assistance_id, outcome, detail,
             created_at)
         values ($1, $2, $3, $4, $5, $6, $7) on conflict (tenant_id, event_id, step) do nothing",
    )
    .bind(tenant_id.as_str())
    .bind(entry.event_id)
    .bind(entry.step)
    .bind(entry.assistance_id)
    .bind(entry.outcome)
    .bind(entry.detail.to_string())
    .bind(now_millis())
    .execute(conn)
    .await
    .context("Failed to write the assistance log")?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn fetch_log(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    event_id: &str,
    step: &str,
) -> anyhow::Result<Option<LogEntry>> {
    sqlx::query(
        "select event_id, step, assistance_id, outcome, detail, created_at from assistance_log
         where tenant_id = $1 and event_id = $2 and step = $3",
    )
    .bind(tenant_id.as_str())
    .bind(event_id)
    .bind(step)
    .fetch_optional(conn)
    .await
    .context("Failed to read the assistance log")?
    .map(log_of)
    .transpose()
}
