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
