-- what conversation flows need: the hosts a tenant lets http_request commands call, the domain
-- events consumers read (at-least-once, idempotent by event_id), and survey answers.

alter table tenant add column allowed_http_hosts text not null default '[]';

create table domain_event (
    -- deterministic id (e.g. workflow id + step) so a retried write records one event
    event_id    text primary key,
    tenant_id   text not null references tenant (tenant_id),
    event_type  text not null,
    -- what the event is about, e.g. a conversation workflow id
    subject     text not null,
    payload     text not null,
    occurred_at bigint not null
);

create index domain_event_tenant_type on domain_event (tenant_id, event_type, occurred_at);

create table survey_response (
    tenant_id       text not null references tenant (tenant_id),
    -- the conversation workflow id and turn that completed the survey
    survey_key      text not null,
    conversation_id text not null,
    rating          bigint not null check (rating between 1 and 5),
    comment         text,
    created_at      bigint not null,
    primary key (tenant_id, survey_key)
);
