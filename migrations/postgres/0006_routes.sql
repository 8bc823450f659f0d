-- route optimisation runs and the routes they assign to drivers.
create table route_plan (
    tenant_id  text not null references tenant (tenant_id),
    plan_id    text not null,
    -- RUNNING, DONE or FAILED
    status     text not null,
    request    text not null,
    -- {best_cost, elapsed_ms, iterations} while running
    progress   text not null default '{}',
    -- {cost, routes: [{driver_id, stops: [{order_id, ...}]}], unassigned: [{order_id, reason}]}
    result     text,
    error      text,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (tenant_id, plan_id)
);

create table route_assignment (
    tenant_id  text not null,
    plan_id    text not null,
    driver_id  text not null,
    -- JSON array of stops in visiting order
    stops      text not null,
    distance_m bigint not null,
    created_at bigint not null,
    primary key (tenant_id, plan_id, driver_id),
    foreign key (tenant_id, plan_id) references route_plan (tenant_id, plan_id)
);

create index route_assignment_driver on route_assignment (tenant_id, driver_id, created_at);

grant select, insert, update, delete on route_plan, route_assignment to zengine_app;
alter table route_plan enable row level security;
create policy tenant_isolation on route_plan
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
alter table route_assignment enable row level security;
create policy tenant_isolation on route_assignment
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
