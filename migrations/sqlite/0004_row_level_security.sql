-- sqlite has no row-level security (the embedded default serves one machine); every query
-- filters by tenant_id. kept so both folders number their migrations alike.
select 1;
