-- Temporal's own login: it creates and owns the databases temporal and temporal_visibility
-- (deploy/temporal/setup-postgres.sh). Change the password before exposing the database.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'temporal') then
        create role temporal login createdb password 'temporal';
    end if;
end
$$;
