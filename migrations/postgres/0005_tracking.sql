-- tracking events of orders (driver app / dispatch): an append-only timeline per order.
create table tracking_event (
    tenant_id   text not null references tenant (tenant_id),
    -- the sender's id: the same event twice is stored once
    event_id    text not null,
    order_id    text not null,
    status      text not null,
    lat         double precision,
    lon         double precision,
    -- when it happened (sender's clock, epoch ms); events must not go back in time per order
    occurred_at bigint not null,
    received_at bigint not null,
    primary key (tenant_id, event_id),
    foreign key (tenant_id, order_id) references sales_order (tenant_id, order_id)
);

create index tracking_event_order on tracking_event (tenant_id, order_id, occurred_at);

grant select, insert, update, delete on tracking_event to zengine_app;
alter table tracking_event enable row level security;
create policy tenant_isolation on tracking_event
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
