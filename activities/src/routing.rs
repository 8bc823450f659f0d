//! Route optimisation as an activity: load the orders of a plan, build a haversine matrix, solve
//! with `zengine-solver` (heartbeating the best cost so far; a run its workflow cancels stops
//! early and keeps the best solution found, while a run cancelled by its worker's shutdown fails
//! as retryable so another worker solves it with the whole budget), and store routes per driver.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use zengine_domain::{Location, TenantId};
use zengine_solver::{
    Control, Matrix, NO_DEADLINE, Node, Problem, SolveOptions, Unservable, Vehicle, solve,
};

use zengine_storage::{Database, NewEvent};

pub mod matrix;

pub use matrix::{MatrixError, MatrixProvider, MatrixSettings, haversine_m};

/// The body of `POST /v1/routes`, stored with the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    pub depot: Location,
    pub order_ids: Vec<String>,
    pub drivers: Vec<Driver>,
    #[serde(default)]
    pub options: RouteOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Driver {
    pub id: String,
    /// Units (order item quantities) the driver's vehicle carries.
    pub capacity: i64,
    /// RFC 3339; the route must start no earlier.
    #[serde(default)]
    pub shift_start: Option<String>,
    /// RFC 3339; the driver must be back at the depot by then.
    #[serde(default)]
    pub shift_end: Option<String>,
    /// E.164 phone number: the driver is sent their stop list through the tenant's
    /// `options.notify_channel` once the routes are stored. No phone: no message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RouteOptions {
    pub time_limit_ms: u64,
    pub seed: u64,
    /// Minutes spent at each stop.
    pub service_minutes: i64,
    /// Average driving speed used for travel times.
    pub speed_kmh: f64,
    /// Channel the drivers' stop lists go out on (the tenant's account serving it).
    pub notify_channel: String,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self {
            time_limit_ms: 2_000,
            seed: 1,
            service_minutes: 5,
            speed_kmh: 25.0,
            notify_channel: "whatsapp".into(),
        }
    }
}

/// Input of [`RouteActivities::optimise`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptimiseRoutes {
    pub tenant_id: TenantId,
    pub plan_id: String,
}

/// What a finished optimisation returns (and stores as the plan result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSummary {
    pub distance_m: i64,
    pub routes: usize,
    pub assigned: usize,
    pub unassigned: usize,
    pub stopped_early: bool,
    /// One message per driver with a route and a phone, for the workflow to send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<DriverNotice>,
}

/// A driver's stop list, to be sent through `channel` to `phone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverNotice {
    pub driver_id: String,
    pub phone: String,
    pub channel: String,
    pub text: String,
}

/// Longest notice text (WhatsApp's text limit is 4,096 characters).
const MAX_NOTICE_CHARS: usize = 4_000;

fn notice_text(plan_id: &str, stops: &[Value]) -> String {
    let mut text = format!("Route {plan_id}: {} stops", stops.len());
    for stop in stops {
        let eta = stop["eta"]
            .as_str()
            .and_then(|t| t.get(11..16))
            .map(|hm| format!(" ~{hm} UTC"))
            .unwrap_or_default();
        let line = format!(
            "\n{}. {}{eta}",
            stop["seq"],
            stop["order_id"].as_str().unwrap_or("?")
        );
        if text.chars().count() + line.chars().count() > MAX_NOTICE_CHARS {
            text.push_str("\n…");
            break;
        }
        text.push_str(&line);
    }
    text
}

fn valid_phone(p: &str) -> bool {
    p.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

/// The solve was cancelled by this worker's shutdown (`crate::lifecycle`), not by its
/// workflow.
#[derive(Debug, thiserror::Error)]
#[error("the worker is shutting down before the solve used its time budget")]
struct WorkerShuttingDown;

fn rejected(message: String) -> ActivityError {
    ActivityError::application(ApplicationFailure::non_retryable(anyhow::anyhow!(message)))
}

fn seconds(rfc3339: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp())
        .map_err(|e| format!("`{rfc3339}` is not RFC 3339: {e}"))
}

/// A driver's shift as (start, end) epoch seconds, each optional.
pub type Shift = (Option<i64>, Option<i64>);

/// Each driver's shift as (start, end) epoch seconds, validated: ids unique, capacity at least
/// 1, times RFC 3339 and the end after the start. The error names the field
/// (``field `drivers[1].shift_end`: ...``).
pub fn driver_shifts(drivers: &[Driver]) -> Result<Vec<Shift>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut shifts = Vec::with_capacity(drivers.len());
    for (k, d) in drivers.iter().enumerate() {
        if d.id.trim().is_empty() || d.id.len() > 128 {
            return Err(format!("field `drivers[{k}].id`: 1 to 128 characters"));
        }
        if !seen.insert(d.id.as_str()) {
            return Err(format!(
                "field `drivers[{k}].id`: driver `{}` is listed twice",
                d.id
            ));
        }
        if d.capacity <= 0 {
            return Err(format!(
                "field `drivers[{k}].capacity`: driver `{}` needs a capacity of at least 1, got {}",
                d.id, d.capacity
            ));
        }
        if let Some(phone) = &d.phone
            && !valid_phone(phone)
        {
            return Err(format!(
                "field `drivers[{k}].phone`: `{phone}` is not an E.164 number (+ and 8 to 15 digits)"
            ));
        }
        let s = d
            .shift_start
            .as_deref()
            .map(seconds)
            .transpose()
            .map_err(|e| format!("field `drivers[{k}].shift_start`: {e}"))?;
        let e = d
            .shift_end
            .as_deref()
            .map(seconds)
            .transpose()
            .map_err(|e| format!("field `drivers[{k}].shift_end`: {e}"))?;
        if let (Some(s), Some(e)) = (s, e)
            && e <= s
        {
            return Err(format!(
                "field `drivers[{k}].shift_end`: driver `{}`'s shift ends before it starts",
                d.id
            ));
        }
        shifts.push((s, e));
    }
    Ok(shifts)
}

/// The plan's clock and fleet: times are seconds from the earliest shift start, each driver a
/// vehicle with their own capacity and shift (no start: the clock's origin; no end: none).
/// Returns the origin (if any driver has a shift start) and the vehicles.
pub fn fleet(
    drivers: &[Driver],
    window_origin: Option<i64>,
) -> Result<(Option<i64>, Vec<Vehicle>), String> {
    let shifts = driver_shifts(drivers)?;
    let origin = shifts
        .iter()
        .filter_map(|(s, _)| *s)
        .min()
        .or(window_origin);
    let vehicles = drivers
        .iter()
        .zip(&shifts)
        .map(|(d, &(s, e))| {
            let rel = |t: i64| t - origin.unwrap_or(t);
            Vehicle {
                capacity: d.capacity,
                start: s.map_or(0, rel),
                // A shift end before the clock's origin (only possible without a start) is
                // an empty shift: the driver cannot take any stop.
                end: e.map_or(NO_DEADLINE, |e| rel(e).max(0)),
            }
        })
        .collect();
    Ok((origin, vehicles))
}

pub struct RouteActivities {
    db: Database,
    matrix: MatrixSettings,
    http: reqwest::Client,
    /// Raised when the workers running this shut down (`crate::lifecycle`).
    drain: crate::lifecycle::Drain,
}

impl RouteActivities {
    /// Haversine matrices; see [`Self::with_matrix`].
    pub fn new(db: Database) -> Self {
        Self {
            db,
            matrix: MatrixSettings::default(),
            http: reqwest::Client::new(),
            drain: crate::lifecycle::Drain::default(),
        }
    }

    /// Uses the travel matrix provider of `[worker.routing]`.
    pub fn with_matrix(mut self, settings: MatrixSettings) -> Self {
        self.matrix = settings;
        self
    }

    /// The drain flag of the workers that run these activities: a solve cancelled once it is
    /// raised fails as retryable instead of keeping the routes found so far.
    pub fn with_drain(mut self, drain: crate::lifecycle::Drain) -> Self {
        self.drain = drain;
        self
    }
}

fn last_attempt(info: &temporalio_sdk::activities::ActivityInfo) -> bool {
    let max = info
        .retry_policy
        .as_ref()
        .map(|p| p.maximum_attempts())
        .filter(|m| *m > 0)
        .unwrap_or(3);
    info.attempt >= max
}

#[activities]
impl RouteActivities {
    /// Solves and stores the plan. Idempotent: a plan that is already stored is returned as is.
    #[activity(name = "OptimiseRoutes")]
    pub async fn optimise(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: OptimiseRoutes,
    ) -> Result<RouteSummary, ActivityError> {
        let routes = self.db.routes();
        let plan = routes
            .get(&input.tenant_id, &input.plan_id)
            .await?
            .ok_or_else(|| rejected(format!("route plan {} does not exist", input.plan_id)))?;
        if let Some(result) = plan.result {
            return serde_json::from_value(result["summary"].clone())
                .map_err(|e| rejected(e.to_string()));
        }
        let request: RouteRequest =
            serde_json::from_value(plan.request).map_err(|e| rejected(e.to_string()))?;
        match self.run(&ctx, &input, &request).await {
            Ok(summary) => Ok(summary),
            // The road matrix server is down or slow: retry (the plan stays RUNNING), unless
            // this was the last attempt.
            Err(e)
                if matches!(e.downcast_ref(), Some(MatrixError::Unavailable(_)))
                    && !last_attempt(ctx.info()) =>
            {
                tracing::warn!(plan_id = %input.plan_id, error.message = %e, "Road matrix unavailable; the attempt will be retried");
                Err(ActivityError::application(
                    ApplicationFailure::builder(e.to_string())
                        .type_name("MatrixUnavailable".to_owned())
                        .build(),
                ))
            }
            // This worker is going away mid-solve: another attempt solves with the whole
            // budget (the plan stays RUNNING).
            Err(e) if e.downcast_ref::<WorkerShuttingDown>().is_some() => {
                Err(ActivityError::application(
                    ApplicationFailure::builder(e.to_string())
                        .type_name("WorkerShuttingDown".to_owned())
                        .build(),
                ))
            }
            Err(e) => {
                let _ = routes
                    .fail(&input.tenant_id, &input.plan_id, &e.to_string())
                    .await;
                Err(rejected(e.to_string()))
            }
        }
    }
}

impl RouteActivities {
    async fn run(
        &self,
        ctx: &ActivityContext,
        input: &OptimiseRoutes,
        request: &RouteRequest,
    ) -> anyhow::Result<RouteSummary> {
        let mut orders = Vec::new();
        let mut unassigned: Vec<Value> = Vec::new();
        for (i, id) in request.order_ids.iter().enumerate() {
            let order = self
                .db
                .orders()
                .get(&input.tenant_id, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("order `{id}` does not exist"))?;
            match order.location {
                Some(location) => orders.push((i, location, order)),
                None => unassigned.push(json!({"order_id": id, "reason": "no_location", "detail": "the order has no location"})),
            }
        }
        // Times are seconds from the earliest shift start, else from the earliest window opening.
        let window_origin = orders
            .iter()
            .filter_map(|(_, _, o)| o.delivery_window.map(|w| w.start))
            .min();
        let (origin, vehicles) =
            fleet(&request.drivers, window_origin).map_err(anyhow::Error::msg)?;
        // Stops are clipped to the union of the shifts; each vehicle keeps its own.
        let shift = vehicles.iter().map(|v| v.end).max().unwrap_or(NO_DEADLINE);
        let mut kept = Vec::new();
        let mut locations = vec![request.depot];
        let mut nodes_time = vec![(0, shift, 0)];
        let mut demands = vec![0];
        for (i, location, order) in orders {
            let (ready, due) = match (order.delivery_window, origin) {
                (Some(w), Some(t0)) => ((w.start - t0).max(0), (w.end - t0).min(shift)),
                _ => (0, shift),
            };
            if due < ready {
                unassigned.push(json!({"order_id": request.order_ids[i], "reason": "time_window", "detail": "the delivery window lies outside every driver's shift"}));
                continue;
            }
            let service = order
                .service_minutes
                .unwrap_or(request.options.service_minutes)
                * 60;
            kept.push(i);
            locations.push(location);
            nodes_time.push((ready, due, service));
            demands.push(order.items.iter().map(|l| l.quantity).sum());
        }
        let n = locations.len();
        let (travel, matrix_source) = self
            .travel_matrix(ctx, &locations, request.options.speed_kmh)
            .await?;
        let (distance, duration) = (travel.metres, travel.seconds);
        let nodes: Vec<Node> = locations
            .iter()
            .zip(&demands)
            .zip(&nodes_time)
            .map(|((l, &demand), &(ready, due, service))| Node {
                // Equirectangular projection: only neighbourhood geometry uses it.
                x: l.lon * l.lat.to_radians().cos() * 111_320.0,
                y: l.lat * 110_540.0,
                demand,
                // Every stop's window is clipped to the shifts (NO_DEADLINE when none).
                ready,
                due,
                service,
            })
            .collect();
        let times = Matrix::new(n, duration)?;
        // Route lengths below are read from the same matrix the solver minimises.
        let metres = Matrix::new(n, distance)?;
        let capacity = vehicles.iter().map(|v| v.capacity).max().unwrap_or(1);
        let problem = Problem::new(
            input.plan_id.clone(),
            nodes,
            capacity,
            Some(request.drivers.len()),
            metres.clone(),
            times.clone(),
            1,
        )?
        .with_vehicles(vehicles.clone())?;
        let options = SolveOptions {
            time_limit: Duration::from_millis(request.options.time_limit_ms),
            seed: request.options.seed,
            progress_interval: Duration::from_millis(250),
            ..SolveOptions::default()
        };

        // The search runs on a blocking thread; progress flows back here to heartbeat.
        let stop = Arc::new(AtomicBool::new(false));
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let solver_stop = stop.clone();
        let mut solving = tokio::task::spawn_blocking(move || {
            let solution = solve(&problem, &options, |p| {
                let _ = progress_tx.send(p.clone());
                if solver_stop.load(Ordering::Relaxed) {
                    Control::Stop
                } else {
                    Control::Continue
                }
            });
            record_quality(&problem, &solution);
            solution
        });
        let solution = loop {
            tokio::select! {
                result = &mut solving => break result?,
                Some(p) = progress_rx.recv() => {
                    let details = json!({"best_cost_m": p.best_cost, "elapsed_ms": p.elapsed.as_millis() as u64, "iterations": p.iterations});
                    let _ = ctx.record_heartbeat(details.clone()).await;
                    let _ = self.db.routes().set_progress(&input.tenant_id, &input.plan_id, &details).await;
                }
                _ = ctx.cancelled(), if !stop.load(Ordering::Relaxed) => stop.store(true, Ordering::Relaxed),
            }
        };
        // Cancelled because this worker is shutting down (its grace period ran out), not by
        // the workflow: the routes found so far would be a plan cut short by a deploy. Fail
        // as retryable instead; another worker solves again with the whole time budget.
        if stop.load(Ordering::Relaxed) && self.drain.draining() {
            tracing::warn!(plan_id = %input.plan_id, "Route solve interrupted by a worker shutdown; another worker will solve it again");
            return Err(WorkerShuttingDown.into());
        }

        let drivers = &request.drivers;
        let mut assignments = Vec::new();
        let mut routes_json = Vec::new();
        let mut notices = Vec::new();
        // One route per driver (heterogeneous fleet): unused drivers get no assignment.
        for ((route, driver), vehicle) in solution.routes.iter().zip(drivers).zip(&vehicles) {
            if route.is_empty() {
                continue;
            }
            // Service starts: leave at the shift start, travel, wait for the window to open.
            let (mut clock, mut at) = (vehicle.start, 0);
            let stops: Vec<Value> = route
                .iter()
                .enumerate()
                .map(|(seq, &c)| {
                    let (ready, _, service) = nodes_time[c];
                    clock = (clock + times.get(at, c)).max(ready);
                    let arrival = clock;
                    clock += service;
                    at = c;
                    let eta = origin
                        .and_then(|t0| chrono::DateTime::from_timestamp(t0 + arrival, 0))
                        .map(|t| t.to_rfc3339());
                    json!({"seq": seq + 1, "order_id": request.order_ids[kept[c - 1]], "location": locations[c], "demand": demands[c], "service_start_s": arrival, "eta": eta})
                })
                .collect();
            // Depot → stops → depot.
            let legs = std::iter::once(0)
                .chain(route.iter().copied())
                .chain(std::iter::once(0));
            let length: i64 = legs
                .clone()
                .zip(legs.skip(1))
                .map(|(a, b)| metres.get(a, b))
                .sum();
            // Back at the depot: within the driver's own shift end.
            let return_s = clock + times.get(at, 0);
            let returns_at = origin
                .and_then(|t0| chrono::DateTime::from_timestamp(t0 + return_s, 0))
                .map(|t| t.to_rfc3339());
            if let Some(phone) = &driver.phone {
                notices.push(DriverNotice {
                    driver_id: driver.id.clone(),
                    phone: phone.clone(),
                    channel: request.options.notify_channel.clone(),
                    text: notice_text(&input.plan_id, &stops),
                });
            }
            routes_json.push(json!({"driver_id": driver.id, "distance_m": length, "stops": stops, "return_s": return_s, "returns_at": returns_at}));
            assignments.push((driver.id.clone(), Value::Array(stops), length));
        }
        unassigned.extend(solution.unassigned.iter().map(|u| {
            let reason = match u.reason {
                Unservable::DemandExceedsCapacity => "capacity",
                Unservable::WindowUnreachable => "time_window",
                Unservable::ReturnTooLate => "shift",
            };
            json!({"order_id": request.order_ids[kept[u.customer - 1]], "reason": reason, "detail": u.reason.to_string()})
        }));
        let summary = RouteSummary {
            distance_m: solution.cost,
            routes: assignments.len(),
            assigned: solution.routes.iter().map(Vec::len).sum(),
            unassigned: unassigned.len(),
            stopped_early: stop.load(Ordering::Relaxed),
            notices,
        };
        let result = json!({"summary": summary, "routes": routes_json, "unassigned": unassigned, "feasible": solution.feasible, "matrix": matrix_source});
        self.db
            .routes()
            .complete(
                &input.tenant_id,
                &input.plan_id,
                &result,
                &assignments,
                summary.stopped_early,
            )
            .await?;
        for (driver, stops, distance_m) in &assignments {
            // Drivers are told through this event until the channels work lands (issue #3).
            self.db
                .events()
                .record(NewEvent {
                    event_id: &format!("{}/{}/assigned", input.plan_id, driver),
                    tenant_id: &input.tenant_id,
                    event_type: zengine_domain::events::EventType::DriverRouteAssigned,
                    subject: driver,
                    payload: &json!({
                        "plan_id": input.plan_id,
                        "stops": stops.as_array().map_or(0, Vec::len),
                        "distance_m": distance_m,
                    }),
                })
                .await?;
        }
        Ok(summary)
    }
}

impl RouteActivities {
    /// The plan's distance and time matrix, and where it came from (`haversine`, `osrm` or
    /// `haversine_fallback`).
    async fn travel_matrix(
        &self,
        ctx: &ActivityContext,
        points: &[Location],
        speed_kmh: f64,
    ) -> anyhow::Result<(matrix::TravelMatrix, &'static str)> {
        if self.matrix.matrix == MatrixProvider::Haversine {
            return Ok((matrix::haversine(points, speed_kmh), "haversine"));
        }
        match matrix::osrm(&self.http, &self.matrix, points).await {
            Ok(m) => Ok((m, "osrm")),
            Err(e)
                if self.matrix.osrm_fallback_to_haversine
                    && (matches!(e, MatrixError::Invalid(_)) || last_attempt(ctx.info())) =>
            {
                tracing::warn!(error.message = %e, "Road matrix failed; planning on haversine (worker.routing.osrm_fallback_to_haversine)");
                Ok((matrix::haversine(points, speed_kmh), "haversine_fallback"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Solver quality for the metrics: the solution against the nearest-neighbour construction
/// of the same plan (a cheap O(n²) baseline, off the search's clock).
fn record_quality(problem: &Problem, solution: &zengine_solver::Solution) {
    let baseline =
        zengine_solver::evaluate(problem, &zengine_solver::nearest_neighbour(problem), &[]);
    let ratio = (baseline.cost > 0).then(|| solution.cost as f64 / baseline.cost as f64);
    let reasons: Vec<String> = solution
        .unassigned
        .iter()
        .map(|u| u.reason.to_string())
        .collect();
    zengine_channels::meter::route_solved(
        solution.feasible,
        &format!("{:?}", solution.stop),
        solution.elapsed,
        ratio,
        &reasons,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_a_known_distance() {
        // Lima Plaza de Armas → Miraflores Parque Kennedy ≈ 8.9 km.
        let d = haversine_m(
            Location {
                lat: -12.0464,
                lon: -77.0428,
            },
            Location {
                lat: -12.1211,
                lon: -77.0297,
            },
        );
        assert!((8_000.0..9_500.0).contains(&d), "{d}");
    }

    #[test]
    fn each_driver_becomes_a_vehicle_with_their_own_capacity_and_shift() {
        let d = |id: &str, capacity: i64, s: Option<&str>, e: Option<&str>| Driver {
            id: id.into(),
            capacity,
            shift_start: s.map(Into::into),
            shift_end: e.map(Into::into),
            phone: None,
        };
        let (origin, vehicles) = fleet(
            &[
                d(
                    "a",
                    5,
                    Some("2026-11-25T08:00:00Z"),
                    Some("2026-11-25T16:00:00Z"),
                ),
                d(
                    "b",
                    12,
                    Some("2026-11-25T10:00:00Z"),
                    Some("2026-11-25T18:00:00Z"),
                ),
                d("c", 3, None, None),
            ],
            None,
        )
        .unwrap();
        assert_eq!(origin, Some(seconds("2026-11-25T08:00:00Z").unwrap()));
        assert_eq!(
            vehicles,
            vec![
                Vehicle {
                    capacity: 5,
                    start: 0,
                    end: 8 * 3600
                },
                Vehicle {
                    capacity: 12,
                    start: 2 * 3600,
                    end: 10 * 3600
                },
                Vehicle {
                    capacity: 3,
                    start: 0,
                    end: NO_DEADLINE
                },
            ]
        );
        // Disjoint shifts are fine now: each driver keeps their own.
        assert!(
            fleet(
                &[
                    d(
                        "a",
                        1,
                        Some("2026-11-25T08:00:00Z"),
                        Some("2026-11-25T09:00:00Z")
                    ),
                    d(
                        "b",
                        1,
                        Some("2026-11-25T10:00:00Z"),
                        Some("2026-11-25T11:00:00Z")
                    ),
                ],
                None
            )
            .is_ok()
        );
        let err = |drivers: &[Driver]| driver_shifts(drivers).unwrap_err();
        assert!(
            err(&[d(
                "a",
                1,
                Some("2026-11-25T10:00:00Z"),
                Some("2026-11-25T09:00:00Z")
            )])
            .starts_with("field `drivers[0].shift_end`:")
        );
        assert!(
            err(&[d("a", 1, None, None), d("b", 0, None, None)])
                .starts_with("field `drivers[1].capacity`:")
        );
        assert!(
            err(&[d("a", 1, None, None), d("a", 2, None, None)])
                .starts_with("field `drivers[1].id`:")
        );
        assert!(
            err(&[d("a", 1, Some("8am"), None)]).starts_with("field `drivers[0].shift_start`:")
        );
        let mut bad_phone = d("a", 1, None, None);
        bad_phone.phone = Some("51911222333".into());
        assert!(err(&[bad_phone]).starts_with("field `drivers[0].phone`:"));
    }
}
