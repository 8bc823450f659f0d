-- The flow studio's drafts: one unpublished working copy per tenant flow, saved as written
-- (not validated: a draft may be half done), with who saved it and when.
create table flow_draft (
    tenant_id  text not null references tenant (tenant_id),
    flow_id    text not null,
    definition text not null,
    saved_by   text not null,
    saved_at   bigint not null,
    primary key (tenant_id, flow_id)
);

grant select, insert, update, delete on flow_draft to zengine_app;
alter table flow_draft enable row level security;
alter table flow_draft force row level security;
create policy tenant_isolation on flow_draft
    using (tenant_id = current_setting('app.tenant_id', true))
    with check (tenant_id = current_setting('app.tenant_id', true));
