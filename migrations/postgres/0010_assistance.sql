-- travel assistance (bigtree): catalogues, providers, assistance events and the providers
-- working on them, status changes, notes, phone consultations, and the assistance log of the
-- mok tracking state machine.

-- catalogues: reference data shared by every tenant (no tenant_id), read through
-- GET /v1/masters/{catalogue}. the status catalogues list exactly the codes of the state
-- machines in zengine_domain::assistance.
create table master_item (
    -- categories, event-statuses, eventprovider-statuses, voucher-statuses, countries
    catalogue  text not null,
    code       text not null,
    name       text not null,
    sort_order bigint not null,
    primary key (catalogue, code)
);

insert into master_item (catalogue, code, name, sort_order) values
    ('categories', 'MEDICAL', 'Asistencia médica', 1),
    ('categories', 'DENTAL', 'Asistencia odontológica', 2),
    ('categories', 'PHARMACY', 'Medicamentos', 3),
    ('categories', 'TRANSPORT', 'Traslado', 4),
    ('categories', 'HOTEL', 'Hospedaje', 5),
    ('categories', 'LEGAL', 'Asistencia legal', 6),
    ('categories', 'BAGGAGE', 'Equipaje', 7),
    ('categories', 'REPATRIATION', 'Repatriación', 8),
    ('event-statuses', 'DRAFT', 'Borrador', 1),
    ('event-statuses', 'OPEN', 'Abierto', 2),
    ('event-statuses', 'PROVIDER_ASSIGNED', 'Proveedor asignado', 3),
    ('event-statuses', 'IN_PROGRESS', 'En atención', 4),
    ('event-statuses', 'RESOLVED', 'Resuelto', 5),
    ('event-statuses', 'CLOSED', 'Cerrado', 6),
    ('event-statuses', 'CANCELLED', 'Anulado', 7),
    ('eventprovider-statuses', 'ASSIGNED', 'Asignado', 1),
    ('eventprovider-statuses', 'STARTED', 'En atención', 2),
    ('eventprovider-statuses', 'RESOLVED', 'Resuelto', 3),
    ('eventprovider-statuses', 'CANCELLED', 'Anulado', 4),
    ('voucher-statuses', 'ACTIVE', 'Vigente', 1),
    ('voucher-statuses', 'EXPIRED', 'Vencido', 2),
    ('voucher-statuses', 'SUSPENDED', 'Suspendido', 3),
    ('voucher-statuses', 'CANCELLED', 'Anulado', 4),
    ('countries', 'AR', 'Argentina', 1),
    ('countries', 'BO', 'Bolivia', 2),
    ('countries', 'BR', 'Brasil', 3),
    ('countries', 'CA', 'Canadá', 4),
    ('countries', 'CL', 'Chile', 5),
    ('countries', 'CO', 'Colombia', 6),
    ('countries', 'CR', 'Costa Rica', 7),
    ('countries', 'DE', 'Alemania', 8),
    ('countries', 'DO', 'República Dominicana', 9),
    ('countries', 'EC', 'Ecuador', 10),
    ('countries', 'ES', 'España', 11),
    ('countries', 'FR', 'Francia', 12),
    ('countries', 'GB', 'Reino Unido', 13),
    ('countries', 'IT', 'Italia', 14),
    ('countries', 'MX', 'México', 15),
    ('countries', 'PA', 'Panamá', 16),
    ('countries', 'PE', 'Perú', 17),
    ('countries', 'PT', 'Portugal', 18),
    ('countries', 'PY', 'Paraguay', 19),
    ('countries', 'US', 'Estados Unidos', 20),
    ('countries', 'UY', 'Uruguay', 21);

-- the tenant's assistance providers (clinics, ambulances, lawyers, …), searched by category,
-- city and text (GET /v1/providers/search)
create table provider (
    tenant_id   text not null references tenant (tenant_id),
    -- the provider's code, as partners (mok) name it
    provider_id text not null,
    name        text not null,
    category    text not null,
    country     text not null,
    city        text not null,
    phone       text,
    email       text,
    -- 1 = can be assigned
    active      bigint not null default 1,
    -- lowercase, accent-free name, city and code, for text search (written by the repository:
    -- sqlite's lower() only folds ascii)
    search_text text not null,
    created_at  bigint not null,
    updated_at  bigint not null,
    primary key (tenant_id, provider_id)
);
create index provider_search on provider (tenant_id, category, city);

create table assistance_event (
    tenant_id         text not null references tenant (tenant_id),
    event_id          text not null,
    -- DRAFT, OPEN, PROVIDER_ASSIGNED, IN_PROGRESS, RESOLVED, CLOSED, CANCELLED
    status            text not null,
    category          text,
    country           text,
    city              text,
    beneficiary_name  text,
    beneficiary_phone text,
    voucher_code      text,
    description       text,
    address           text,
    -- sha-256 of the creating request when it carried an idempotency key (the id derives from
    -- the key): the same key with another body is refused
    request_hash      text,
    created_at        bigint not null,
    updated_at        bigint not null,
    primary key (tenant_id, event_id)
);
create index assistance_event_status on assistance_event (tenant_id, status, updated_at);

-- a provider working on an event; at most one row per (event, provider)
create table event_provider (
    tenant_id         text not null references tenant (tenant_id),
    event_provider_id text not null,
    event_id          text not null,
    provider_id       text not null,
    -- ASSIGNED, STARTED, RESOLVED, CANCELLED
    status            text not null,
    -- api or mok
    source            text not null,
    resolution        text,
    assigned_at       bigint not null,
    started_at        bigint,
    resolved_at       bigint,
    updated_at        bigint not null,
    primary key (tenant_id, event_provider_id),
    unique (tenant_id, event_id, provider_id)
);

-- every accepted status change of an event, keyed by an id derived in the workflow (or from
-- the mok event), so a retried write is recorded once
create table assistance_status_change (
    tenant_id   text not null references tenant (tenant_id),
    change_id   text not null,
    event_id    text not null,
    from_status text not null,
    to_status   text not null,
    -- operator, provider, mok, …
    source      text not null,
    reason      text,
    created_at  bigint not null,
    primary key (tenant_id, change_id)
);
create index assistance_status_change_event on assistance_status_change (tenant_id, event_id, created_at);

create table assistance_note (
    tenant_id    text not null references tenant (tenant_id),
    note_id      text not null,
    event_id     text not null,
    author       text not null,
    -- api or mok
    source       text not null,
    body         text not null,
    request_hash text,
    created_at   bigint not null,
    primary key (tenant_id, note_id)
);
create index assistance_note_event on assistance_note (tenant_id, event_id, created_at);

create table phone_consultation (
    tenant_id               text not null references tenant (tenant_id),
    consultation_id         text not null,
    event_id                text not null,
    caller_phone            text,
    summary                 text not null,
    duration_secs           bigint,
    -- the attachment in the file store (local folder or s3), if any
    attachment_key          text,
    attachment_content_type text,
    attachment_size         bigint,
    attachment_sha256       text,
    request_hash            text,
    created_at              bigint not null,
    primary key (tenant_id, consultation_id)
);
create index phone_consultation_event on phone_consultation (tenant_id, event_id, created_at);

-- the assistance log of the mok state machine: one row per (tracking event, step), written
-- once however often a step is retried or replayed
create table assistance_log (
    tenant_id     text not null references tenant (tenant_id),
    -- the partner's tracking event id
    event_id      text not null,
    -- Choice, TrackingMok, SnsNotification, Success, Ignored, Error
    step          text not null,
    -- the assistance event concerned, when known
    assistance_id text,
    -- OK, FAILED
    outcome       text not null,
    -- JSON: what the step did or why it failed
    detail        text not null,
    created_at    bigint not null,
    primary key (tenant_id, event_id, step)
);
create index assistance_log_assistance on assistance_log (tenant_id, assistance_id, created_at);

-- per-tenant assistance rules (JSON: provider_start_sla_secs, operator_recipients,
-- mok_recipients, sms_type, sender_id)
alter table tenant add column assistance_settings text not null default '{}';

grant select on master_item to zengine_app;
grant select, insert, update, delete on provider, assistance_event, event_provider,
    assistance_status_change, assistance_note, phone_consultation, assistance_log to zengine_app;

alter table provider enable row level security;
create policy tenant_isolation on provider
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table assistance_event enable row level security;
create policy tenant_isolation on assistance_event
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table event_provider enable row level security;
create policy tenant_isolation on event_provider
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table assistance_status_change enable row level security;
create policy tenant_isolation on assistance_status_change
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table assistance_note enable row level security;
create policy tenant_isolation on assistance_note
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table phone_consultation enable row level security;
create policy tenant_isolation on phone_consultation
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table assistance_log enable row level security;
create policy tenant_isolation on assistance_log
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
