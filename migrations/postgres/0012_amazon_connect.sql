-- Amazon Connect chat: the bot participant of each contact (registered by the contact flow) and
-- its cached participant connection.
create table connect_participant (
    tenant_id             text not null references tenant (tenant_id),
    -- the chat's InitialContactId (stable across transfers): the conversation's contact key
    contact_id            text not null,
    -- from CreateParticipant (a bearer credential for this chat only; it dies with the chat)
    participant_token     text not null,
    -- from CreateParticipantConnection, reused until it expires
    connection_token      text,
    connection_expires_at bigint not null default 0,
    created_at            bigint not null,
    updated_at            bigint not null,
    primary key (tenant_id, contact_id)
);

grant select, insert, update, delete on connect_participant to zengine_app;
alter table connect_participant enable row level security;
create policy tenant_isolation on connect_participant
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
