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
