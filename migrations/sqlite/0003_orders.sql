-- customers, orders with their items, and payments (every row belongs to a tenant).
-- amounts are integer cents of the order's currency: exact, never floating point.

create table customer (
    tenant_id   text not null references tenant (tenant_id),
    customer_id text not null,
    phone       text not null,
    name        text,
    -- free-form JSON object
    metadata    text not null default '{}',
    -- BOT or AGENT_HANDOFF: who answers this customer
    bot_mode    text not null default 'BOT',
    created_at  bigint not null,
    updated_at  bigint not null,
    primary key (tenant_id, customer_id),
    unique (tenant_id, phone)
);

create table sales_order (
    tenant_id    text not null references tenant (tenant_id),
    order_id     text not null,
    -- human-facing number, increasing per tenant
    order_number bigint not null,
    -- the caller's idempotency key: the same key never creates two orders
    client_key   text not null,
    -- hash of the request that created it (a reused key with another body is refused)
    request_hash text not null,
    customer_id  text not null,
    status       text not null,
    order_type   text not null,
    total_cents  bigint not null,
    currency     text not null,
    address      text,
    lat          double precision,
    lon          double precision,
    summary      text not null,
    -- JSON array of problems met while processing (e.g. payment errors)
    errors       text not null default '[]',
    created_at   bigint not null,
    updated_at   bigint not null,
    primary key (tenant_id, order_id),
    unique (tenant_id, client_key),
    unique (tenant_id, order_number),
    foreign key (tenant_id, customer_id) references customer (tenant_id, customer_id)
);

create index sales_order_status on sales_order (tenant_id, status, order_number);
create index sales_order_customer on sales_order (tenant_id, customer_id, order_number);

create table order_item (
    tenant_id        text not null,
    order_id         text not null,
    line_no          bigint not null,
    sku              text,
    name             text not null,
    quantity         bigint not null check (quantity > 0),
    unit_price_cents bigint not null check (unit_price_cents >= 0),
    line_total_cents bigint not null,
    primary key (tenant_id, order_id, line_no),
    foreign key (tenant_id, order_id) references sales_order (tenant_id, order_id)
);

create table payment (
    tenant_id      text not null references tenant (tenant_id),
    payment_id     text not null,
    order_id       text not null,
    -- the bank/wallet operation code: pays at most once per tenant
    operation_code text,
    amount_cents   bigint,
    sender         text,
    -- PENDING, ASSIGNED, MANUAL_REVIEW or REJECTED
    status         text not null,
    raw_ocr        text,
    created_at     bigint not null,
    updated_at     bigint not null,
    primary key (tenant_id, payment_id),
    unique (tenant_id, operation_code),
    foreign key (tenant_id, order_id) references sales_order (tenant_id, order_id)
);
