-- payment verification: what the receipt said, why a payment needs a person, who decided, and the
-- uploaded receipt images themselves (kept in the database so every worker can read them).

-- MANUAL_REVIEW / REJECTED: human-readable reasons (JSON array)
alter table payment add column reasons text not null default '[]';
-- the operation code read from the receipt, kept even when it was rejected as a duplicate;
-- `operation_code` (unique per tenant) holds it only while the payment reserves it
alter table payment add column claimed_code text;
-- JSON of the extracted fields (amount, operation code, date, time, counterparty, confidence)
alter table payment add column extraction text;
-- where the image came from: `upload:<media_id>`, …
alter table payment add column media_ref text not null default '';
alter table payment add column reviewed_by text;
alter table payment add column reviewed_at bigint;

create index payment_order on payment (tenant_id, order_id, created_at);

create table media_upload (
    tenant_id    text not null references tenant (tenant_id),
    media_id     text not null,
    content_type text not null,
    sha256       text not null,
    size_bytes   bigint not null,
    content      blob not null,
    created_at   bigint not null,
    primary key (tenant_id, media_id)
);

-- per-tenant payment rules (JSON: tolerance_cents, review_timeout_secs, retention_days, …)
alter table tenant add column payment_settings text not null default '{}';
