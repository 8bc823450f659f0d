-- row-level security on every tenant table. the application connects with (or switches to) the
-- non-owner role zengine_app and sets app.tenant_id in each transaction
-- (select set_config('app.tenant_id', $1, true)); it then sees and changes only that tenant's
-- rows, whatever sql it runs. owners (migrations, maintenance jobs) bypass rls as usual.

-- roles are cluster-wide: another database's migration may create it at the same moment.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'zengine_app') then
        create role zengine_app nologin;
    end if;
exception
    when duplicate_object or unique_violation then null;
end
$$;

grant usage on schema public to zengine_app;
grant select, insert, update, delete on
    tenant, flow_version, idempotency_record, domain_event, survey_response,
    customer, sales_order, order_item, payment
to zengine_app;

alter table tenant enable row level security;
create policy tenant_isolation on tenant
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table flow_version enable row level security;
create policy tenant_isolation on flow_version
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table idempotency_record enable row level security;
create policy tenant_isolation on idempotency_record
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table domain_event enable row level security;
create policy tenant_isolation on domain_event
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table survey_response enable row level security;
create policy tenant_isolation on survey_response
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table customer enable row level security;
create policy tenant_isolation on customer
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table sales_order enable row level security;
create policy tenant_isolation on sales_order
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table order_item enable row level security;
create policy tenant_isolation on order_item
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

alter table payment enable row level security;
create policy tenant_isolation on payment
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
