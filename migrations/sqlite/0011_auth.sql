-- api keys of partner integrations (orders, routes, tracking). only the sha-256 of the key's
-- high-entropy secret is stored; the key itself is shown once, when it is created.
create table api_key (
    -- public part of the key (`zk_<key_id>_<secret>`), also the row's id
    key_id          text primary key,
    tenant_id       text not null references tenant (tenant_id),
    name            text not null,
    -- viewer or operator (admins authenticate with a jwt or the bootstrap admin token)
    role            text not null,
    -- hex sha-256 of the secret part
    secret_hash     text not null,
    -- token bucket of this key; null: the configured default
    rate_per_minute bigint,
    burst           bigint,
    created_by      text not null,
    created_at      bigint not null,
    revoked_at      bigint
);
create index api_key_tenant on api_key (tenant_id, created_at);
