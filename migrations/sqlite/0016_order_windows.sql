-- delivery windows and service times of orders, used by route optimisation.
-- epoch seconds; both null when the order has no window (end >= start is checked by the API).
alter table sales_order add column window_start bigint;
alter table sales_order add column window_end bigint;
-- minutes spent at the stop; null means the plan's default (options.service_minutes)
alter table sales_order add column service_minutes bigint;
