-- tenant administration: suspension, per-tenant cors origins, and the inbound messages a
-- suspended tenant's webhooks answered but did not process.

-- active or suspended; a suspended tenant's api calls get 403 and its webhooks are not processed
alter table tenant add column status text not null default 'active';
alter table tenant add column suspended_at bigint;
-- JSON array of browser origins allowed to call the webchat endpoints for this tenant
alter table tenant add column cors_origins text not null default '[]';

create table suppressed_inbound (
    tenant_id   text not null references tenant (tenant_id),
    -- `<strategy>/<provider message id>` (webchat: `webchat/<idempotency key>`)
    id          text not null,
    strategy    text not null,
    received_at bigint not null,
    primary key (tenant_id, id)
);
