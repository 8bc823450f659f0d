-- tenants, their published conversation flows, and the idempotency records of the api.
-- timestamps are unix epoch milliseconds (bigint) on both backends.

create table tenant (
    tenant_id    text primary key,
    name         text not null,
    -- the flow that new conversations of this tenant run (latest published version)
    main_flow_id text not null,
    created_at   bigint not null,
    updated_at   bigint not null
);

create table flow_version (
    tenant_id    text not null references tenant (tenant_id),
    flow_id      text not null,
    version      bigint not null,
    definition   text not null,
    published_at bigint not null,
    primary key (tenant_id, flow_id, version)
);

create table idempotency_record (
    tenant_id       text not null references tenant (tenant_id),
    scope           text not null,
    idempotency_key text not null,
    request_hash    text not null,
    response_status bigint not null,
    response_body   text not null,
    created_at      bigint not null,
    expires_at      bigint not null,
    primary key (tenant_id, scope, idempotency_key)
);

create index idempotency_record_expires_at on idempotency_record (expires_at);
