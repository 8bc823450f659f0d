//! Domain metrics recorded by activities: channel deliveries per strategy, circuit-breaker
//! state, receipt OCR latency and outcome, route-solver quality.
//!
//! They go through the Temporal SDK's meter, so a worker serves them on the same Prometheus
//! endpoint as the SDK's own `temporal_*` metrics (`worker.metrics_addr`). Until a worker
//! installs a meter (tests, tools without metrics) recording is a no-op.
//!
//! Names and labels are documented in `docs/operations.md` ("Metrics"); keep them stable.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use temporalio_common::telemetry::metrics::{
    CoreMeter, Counter, Gauge, HistogramDuration, HistogramF64, MetricAttributes, MetricKeyValue,
    MetricParameters, NewAttributes,
};

struct Instruments {
    meter: Arc<dyn CoreMeter>,
    channel_sends: Counter,
    channel_send_latency: HistogramDuration,
    breaker_state: Gauge,
    ocr_reads: Counter,
    ocr_latency: HistogramDuration,
    route_solves: Counter,
    route_solve_latency: HistogramDuration,
    route_cost_ratio: HistogramF64,
    route_unassigned: Counter,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

fn params(name: &'static str, description: &'static str) -> MetricParameters {
    MetricParameters::builder()
        .name(name)
        .description(description)
        .build()
}

/// Makes activities record into `meter` (the worker's Prometheus meter). The first call wins:
/// one process serves one metrics endpoint.
pub fn install(meter: Arc<dyn CoreMeter>) {
    let _ = INSTRUMENTS.get_or_init(|| Instruments {
        channel_sends: meter.counter(params(
            "zengine_channel_sends",
            "Outbound provider calls by strategy and outcome (sent, retryable, rejected, circuit_open)",
        )),
        channel_send_latency: meter.histogram_duration(params(
            "zengine_channel_send_latency",
            "Time of one outbound provider call by strategy",
        )),
        breaker_state: meter.gauge(params(
            "zengine_channel_circuit_state",
            "Circuit breaker per tenant and strategy: 0 closed, 1 half-open, 2 open",
        )),
        ocr_reads: meter.counter(params(
            "zengine_ocr_reads",
            "Receipt OCR reads by outcome (read, unreadable, engine_error)",
        )),
        ocr_latency: meter.histogram_duration(params(
            "zengine_ocr_latency",
            "Time to read one receipt image",
        )),
        route_solves: meter.counter(params(
            "zengine_route_solves",
            "Route optimisations by feasibility and stop reason",
        )),
        route_solve_latency: meter.histogram_duration(params(
            "zengine_route_solve_latency",
            "Wall time of the route search",
        )),
        route_cost_ratio: meter.histogram_f64(params(
            "zengine_route_cost_ratio",
            "Solution cost divided by the nearest-neighbour cost of the same plan (lower is better)",
        )),
        route_unassigned: meter.counter(params(
            "zengine_route_unassigned_orders",
            "Orders a route optimisation could not assign, by reason",
        )),
        meter,
    });
}

fn with(labels: &[(&'static str, &str)], record: impl FnOnce(&Instruments, &MetricAttributes)) {
    if let Some(i) = INSTRUMENTS.get() {
        let attributes = i.meter.new_attributes(NewAttributes::from(
            labels
                .iter()
                .map(|(k, v)| MetricKeyValue::new(*k, v.to_string())),
        ));
        record(i, &attributes);
    }
}

/// One outbound provider call (or a call the breaker refused: `circuit_open`).
pub fn channel_send(strategy: &str, outcome: &'static str, elapsed: Option<Duration>) {
    with(&[("strategy", strategy), ("outcome", outcome)], |i, a| {
        i.channel_sends.add(1, a);
    });
    if let Some(elapsed) = elapsed {
        with(&[("strategy", strategy)], |i, a| {
            i.channel_send_latency.record(elapsed, a)
        });
    }
}

/// The breaker state after a provider call: 0 closed, 1 half-open, 2 open.
pub fn breaker_state(tenant: &str, strategy: &str, state: u64) {
    with(&[("tenant", tenant), ("strategy", strategy)], |i, a| {
        i.breaker_state.record(state, a)
    });
}

/// One receipt read.
pub fn ocr_read(outcome: &'static str, elapsed: Duration) {
    with(&[("outcome", outcome)], |i, a| {
        i.ocr_reads.add(1, a);
        i.ocr_latency.record(elapsed, a);
    });
}

/// One finished route search. `cost_ratio` is the solution's cost over the nearest-neighbour
/// construction's (None when that is zero, e.g. every order unassigned).
pub fn route_solved(
    feasible: bool,
    stop_reason: &str,
    elapsed: Duration,
    cost_ratio: Option<f64>,
    unassigned_reasons: &[String],
) {
    let feasible = if feasible { "true" } else { "false" };
    with(
        &[("feasible", feasible), ("stop_reason", stop_reason)],
        |i, a| {
            i.route_solves.add(1, a);
            i.route_solve_latency.record(elapsed, a);
        },
    );
    if let Some(ratio) = cost_ratio {
        with(&[], |i, a| i.route_cost_ratio.record(ratio, a));
    }
    for reason in unassigned_reasons {
        with(&[("reason", reason)], |i, a| i.route_unassigned.add(1, a));
    }
}
