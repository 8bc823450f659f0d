-- reporting read models, fed from domain_event by the report projector (inline on read of
-- GET /v1/reports/{name}): one fact per projected event, keyed by the event id (a replayed
-- event is not counted twice), and the projector's cursor per tenant.
create table report_fact (
    tenant_id   text not null references tenant (tenant_id),
    event_id    text not null,
    -- conversations, handoffs, csat, orders, payments, routes, assistance
    report      text not null,
    -- utc date of the event, yyyy-mm-dd
    day         text not null,
    -- channel, status, outcome, driver, …
    dimension   text not null,
    -- conversation, order, driver, assistance event, …
    subject     text not null,
    -- rating, stops, …; 1 when the fact is a count
    value       double precision not null,
    -- distance in metres (routes); 0 otherwise
    value2      double precision not null default 0,
    occurred_at bigint not null,
    primary key (tenant_id, event_id)
);
create index report_fact_by_day on report_fact (tenant_id, report, day);

create table report_cursor (
    tenant_id  text primary key references tenant (tenant_id),
    -- domain_event.seq projected last
    after_seq  bigint not null,
    updated_at bigint not null
);

grant select, insert, update, delete on report_fact, report_cursor to zengine_app;
alter table report_fact enable row level security;
create policy tenant_isolation on report_fact
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
alter table report_cursor enable row level security;
create policy tenant_isolation on report_cursor
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
