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
