-- tenancy enforced, not assumed (docs/security.md, "Database roles"). zengine api and zengine
-- worker log in as a role that is only a member of zengine_app; the schema belongs to the
-- migration role. from here on the owner obeys the policies too (force), so a maintenance
-- session of the owner sees a tenant's rows only under that tenant's app.tenant_id.

-- the routing tables hold tenants' rows: they get the tenant policy like every other table.
alter table channel_account enable row level security;
create policy tenant_isolation on channel_account
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
-- a webhook names a provider account, not a tenant: a transaction that sets app.channel_strategy
-- and app.channel_account (ChannelRepo::route) may read that one account and nothing else.
create policy account_routing on channel_account for select
    using (strategy = current_setting('app.channel_strategy', true)
           and account_key = current_setting('app.channel_account', true));
-- the channel health schedule lists the tenants that have accounts (a platform transaction).
create policy platform_admin on channel_account for select
    using (current_setting('app.platform_admin', true) = 'on');

alter table inbound_receipt enable row level security;
create policy tenant_isolation on inbound_receipt
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));

-- the platform's own tables hold no tenant's rows: master_item (catalogues, read only) and
-- unroutable_webhook (webhooks for accounts no tenant owns), which the application only adds to
-- and counts.
revoke update, delete on unroutable_webhook from zengine_app;

alter table tenant force row level security;
alter table flow_version force row level security;
alter table idempotency_record force row level security;
alter table domain_event force row level security;
alter table survey_response force row level security;
alter table customer force row level security;
alter table sales_order force row level security;
alter table order_item force row level security;
alter table payment force row level security;
alter table tracking_event force row level security;
alter table route_plan force row level security;
alter table route_assignment force row level security;
alter table media_upload force row level security;
alter table channel_account force row level security;
alter table inbound_receipt force row level security;
alter table outbound_message force row level security;
alter table channel_breaker force row level security;
alter table channel_health force row level security;
alter table provider force row level security;
alter table assistance_event force row level security;
alter table event_provider force row level security;
alter table assistance_status_change force row level security;
alter table assistance_note force row level security;
alter table phone_consultation force row level security;
alter table assistance_log force row level security;
alter table api_key force row level security;
alter table connect_participant force row level security;
alter table suppressed_inbound force row level security;
alter table report_fact force row level security;
alter table report_cursor force row level security;
alter table chatwoot_settings force row level security;
alter table chatwoot_conversation force row level security;
alter table chatwoot_message force row level security;
