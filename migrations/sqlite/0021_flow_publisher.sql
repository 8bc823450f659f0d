-- Who published each flow version (the caller's subject; null for seeded and older versions).
alter table flow_version add column published_by text;
