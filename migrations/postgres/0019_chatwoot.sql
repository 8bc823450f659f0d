-- the agent desk through chatwoot: per-tenant chatwoot configuration (secrets only as
-- references), the mirror of each handoff (zengine conversation <-> chatwoot conversation) and
-- the chatwoot messages zengine posted (idempotency of retried activities, echo detection).
create table chatwoot_settings (
    tenant_id          text primary key references tenant (tenant_id),
    -- https://chatwoot.example (no trailing slash)
    base_url           text not null,
    account_id         bigint not null,
    inbox_id           bigint not null,
    -- secret references (env:NAME, file:/path), never values
    api_token_ref      text not null,
    webhook_secret_ref text not null,
    updated_at         bigint not null
);

create table chatwoot_conversation (
    tenant_id                text not null references tenant (tenant_id),
    -- `<conversation workflow id>/effect-<n>`: one per handoff
    handoff_key              text not null,
    workflow_id              text not null,
    channel                  text not null,
    contact                  text not null,
    chatwoot_contact_id      bigint,
    -- contact_inbox source_id of the chatwoot contact in the inbox
    source_id                text,
    chatwoot_conversation_id bigint,
    created_at               bigint not null,
    updated_at               bigint not null,
    primary key (tenant_id, handoff_key)
);
create index chatwoot_conversation_by_id on chatwoot_conversation (tenant_id, chatwoot_conversation_id);

create table chatwoot_message (
    tenant_id           text not null references tenant (tenant_id),
    -- what zengine posted: `transcript/<handoff key>`, `note/<handoff key>`, `in/<message id>`
    message_key         text not null,
    chatwoot_message_id bigint not null,
    created_at          bigint not null,
    primary key (tenant_id, message_key)
);
create index chatwoot_message_by_id on chatwoot_message (tenant_id, chatwoot_message_id);

grant select, insert, update, delete on chatwoot_settings, chatwoot_conversation, chatwoot_message to zengine_app;
alter table chatwoot_settings enable row level security;
create policy tenant_isolation on chatwoot_settings
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
alter table chatwoot_conversation enable row level security;
create policy tenant_isolation on chatwoot_conversation
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
alter table chatwoot_message enable row level security;
create policy tenant_isolation on chatwoot_message
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
