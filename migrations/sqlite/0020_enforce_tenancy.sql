-- postgresql only (forced row-level security on every tenant table, policies on the channel
-- routing tables); sqlite has no roles and every query filters by tenant_id. kept so both
-- folders number their migrations alike.
select 1;
