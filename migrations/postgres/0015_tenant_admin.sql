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

grant select, insert, update, delete on suppressed_inbound to zengine_app;
alter table suppressed_inbound enable row level security;
create policy tenant_isolation on suppressed_inbound
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

-- the platform administrator lists every tenant: a transaction that sets app.platform_admin
-- to 'on' (Database::begin_platform, used only by the platform-admin endpoints) may read all
-- tenant rows (policies are permissive, so this adds to tenant_isolation). writes stay scoped
-- to app.tenant_id.
create policy platform_admin on tenant for select
    using (current_setting('app.platform_admin', true) = 'on');
