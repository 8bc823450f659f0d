-- channel connectors: which tenant owns which provider account, inbound deduplication, and the
-- outbound message log (delivery state, dead letters).

-- routing table, read before the tenant is known (a webhook names a phone number id, not a
-- tenant): no row-level security; it holds secret *references* (`env:NAME`, `file:/path`), never
-- secret values.
create table channel_account (
    strategy    text not null,
    -- the provider's id for the account: WhatsApp phone_number_id, …
    account_key text not null,
    tenant_id   text not null references tenant (tenant_id),
    -- JSON: api_base, api_version, access_token (secret reference), …
    settings    text not null default '{}',
    created_at  bigint not null,
    updated_at  bigint not null,
    primary key (strategy, account_key)
);
create unique index channel_account_tenant on channel_account (tenant_id, strategy);

-- one row per provider message id ever accepted: a redelivered webhook finds it
create table inbound_receipt (
    strategy            text not null,
    provider_message_id text not null,
    tenant_id           text not null,
    received_at         bigint not null,
    primary key (strategy, provider_message_id)
);

-- webhooks for accounts nobody owns (answered 200 so the provider stops retrying)
create table unroutable_webhook (
    id          text primary key,
    strategy    text not null,
    account_key text not null,
    received_at bigint not null
);

create table outbound_message (
    tenant_id           text not null references tenant (tenant_id),
    -- derived inside the workflow: the same logical send always has the same id
    client_message_id   text not null,
    strategy            text not null,
    recipient           text not null,
    provider_message_id text,
    -- PENDING, SENT, DELIVERED, READ, FAILED (provider said so), DEAD (gave up: dead letter)
    state               text not null,
    attempts            bigint not null default 0,
    last_error          text,
    -- JSON of the reply, for re-driving dead letters
    payload             text not null,
    created_at          bigint not null,
    updated_at          bigint not null,
    primary key (tenant_id, client_message_id)
);
create index outbound_message_provider on outbound_message (tenant_id, provider_message_id);
create index outbound_message_state on outbound_message (tenant_id, state, updated_at);

grant select, insert, update, delete on channel_account, inbound_receipt, unroutable_webhook,
    outbound_message to zengine_app;
alter table outbound_message enable row level security;
create policy tenant_isolation on outbound_message
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
