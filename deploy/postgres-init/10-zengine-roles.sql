-- The roles of the domain database (docs/security.md, "Database roles"), created once by the
-- database administrator; the official postgres image runs this file on its first start.
-- zengine_app: the group the migrations grant table privileges to and every policy applies to.
-- zengine_runtime: the login of `zengine api` and `zengine worker`, only a member of zengine_app
-- (not the owner, no BYPASSRLS): row-level security confines every query it runs.
-- Change the password (and DATABASE_URL) before exposing the database.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'zengine_app') then
        create role zengine_app nologin;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'zengine_runtime') then
        create role zengine_runtime login password 'zengine-runtime' in role zengine_app;
    end if;
end
$$;
