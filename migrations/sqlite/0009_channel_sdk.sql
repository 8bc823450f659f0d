-- connector SDK: circuit breakers and health per (tenant, strategy), and a sequence on domain
-- events so consumers can page through them (`GET /v1/events?after=`).

-- one circuit breaker per (tenant, strategy); survives restarts, shared by every worker
create table channel_breaker (
    tenant_id  text not null references tenant (tenant_id),
    strategy   text not null,
    -- CLOSED, OPEN, HALF_OPEN
    state      text not null,
    -- consecutive failures showing an outage while CLOSED
    failures   bigint not null default 0,
    -- consecutive openings (the open time doubles)
    opened     bigint not null default 0,
    -- OPEN: closed for sends until then; HALF_OPEN: the trial's deadline (epoch ms)
    until_ms   bigint not null default 0,
    updated_at bigint not null,
    primary key (tenant_id, strategy)
);

-- the last health check of each account; `version` grows at every status change
create table channel_health (
    tenant_id  text not null references tenant (tenant_id),
    strategy   text not null,
    -- UP, DOWN
    status     text not null,
    detail     text not null default '',
    version    bigint not null,
    checked_at bigint not null,
    changed_at bigint not null,
    primary key (tenant_id, strategy)
);

-- SQLite: the rowid is the sequence (monotonic here: events are never deleted)
alter table domain_event add column seq integer;
update domain_event set seq = rowid;
create trigger domain_event_seq after insert on domain_event
begin
    update domain_event set seq = new.rowid where rowid = new.rowid;
end;
create index domain_event_tenant_seq on domain_event (tenant_id, seq);
