//! Route optimisation as an activity: load the orders of a plan, build a haversine matrix, solve
//! with `zengine-solver` (heartbeating the best cost so far; a cancelled run stops early and keeps
//! the best solution found), and store routes per driver.

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
    Control, Matrix, NO_DEADLINE, Node, Problem, SolveOptions, Unservable, solve,
};

use crate::db::{Database, NewEvent};

/// The body of `POST /v1/routes`, stored with the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    pub depot: Location,
    pub order_ids: Vec<String>,
    pub drivers: Vec<Driver>,
    #[serde(default)]
    pub options: RouteOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteOptions {
    pub time_limit_ms: u64,
    pub seed: u64,
    /// Minutes spent at each stop.
    pub service_minutes: i64,
    /// Average driving speed used for travel times.
    pub speed_kmh: f64,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self {
            time_limit_ms: 2_000,
            seed: 1,
            service_minutes: 5,
            speed_kmh: 25.0,
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
}

fn rejected(message: String) -> ActivityError {
    ActivityError::application(ApplicationFailure::non_retryable(anyhow::anyhow!(message)))
}

/// Great-circle distance in metres.
pub fn haversine_m(a: Location, b: Location) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().asin()
}

fn seconds(rfc3339: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp())
        .map_err(|e| format!("`{rfc3339}` is not RFC 3339: {e}"))
}

/// The common shift of all drivers, as (start epoch s, length s). The solver plans one vehicle
/// type: the smallest capacity and the overlap of the shifts, so every route fits every driver.
pub fn common_shift(drivers: &[Driver]) -> Result<(Option<i64>, i64), String> {
    let mut start: Option<i64> = None;
    let mut end: Option<i64> = None;
    for d in drivers {
        let s = d.shift_start.as_deref().map(seconds).transpose()?;
        let e = d.shift_end.as_deref().map(seconds).transpose()?;
        if let (Some(s), Some(e)) = (s, e)
            && e <= s
        {
            return Err(format!("driver `{}`: shift ends before it starts", d.id));
        }
        start = match (start, s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        end = match (end, e) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    match (start, end) {
        (Some(s), Some(e)) if e <= s => Err("the drivers' shifts do not overlap".into()),
        (Some(s), Some(e)) => Ok((Some(s), e - s)),
        (s, _) => Ok((s, NO_DEADLINE)),
    }
}

pub struct RouteActivities {
    db: Database,
}

impl RouteActivities {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
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
        let (origin, shift) = common_shift(&request.drivers).map_err(anyhow::Error::msg)?;
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
        // Times are seconds from the common shift start, else from the earliest window opening.
        let origin = origin.or_else(|| {
            orders
                .iter()
                .filter_map(|(_, _, o)| o.delivery_window.map(|w| w.start))
                .min()
        });
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
                unassigned.push(json!({"order_id": request.order_ids[i], "reason": "time_window", "detail": "the delivery window lies outside the drivers' shift"}));
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
        let capacity = request
            .drivers
            .iter()
            .map(|d| d.capacity)
            .min()
            .unwrap_or(0);
        let n = locations.len();
        let mut distance = Vec::with_capacity(n * n);
        for &a in &locations {
            for &b in &locations {
                distance.push(haversine_m(a, b).round() as i64);
            }
        }
        let metres_per_second = request.options.speed_kmh / 3.6;
        let duration: Vec<i64> = distance
            .iter()
            .map(|&d| (d as f64 / metres_per_second).round() as i64)
            .collect();
        let nodes: Vec<Node> = locations
            .iter()
            .zip(&demands)
            .zip(&nodes_time)
            .map(|((l, &demand), &(ready, due, service))| Node {
                // Equirectangular projection: only neighbourhood geometry uses it.
                x: l.lon * l.lat.to_radians().cos() * 111_320.0,
                y: l.lat * 110_540.0,
                demand,
                // Every stop fits its window inside the common shift (NO_DEADLINE when none).
                ready,
                due,
                service,
            })
            .collect();
        let times = Matrix::new(n, duration)?;
        // Route lengths below are read from the same matrix the solver minimises.
        let metres = Matrix::new(n, distance)?;
        let problem = Problem::new(
            input.plan_id.clone(),
            nodes,
            capacity,
            Some(request.drivers.len()),
            metres.clone(),
            times.clone(),
            1,
        )?;
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

        let drivers = &request.drivers;
        let mut assignments = Vec::new();
        let mut routes_json = Vec::new();
        for (route, driver) in solution.routes.iter().zip(drivers) {
            // Service starts: travel, then wait for the window to open.
            let (mut clock, mut at) = (0, 0);
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
            routes_json.push(json!({"driver_id": driver.id, "distance_m": length, "stops": stops}));
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
        };
        let result = json!({"summary": summary, "routes": routes_json, "unassigned": unassigned, "feasible": solution.feasible});
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
                    event_type: "Driver.RouteAssigned",
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
    crate::meter::route_solved(
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
    fn shifts_overlap_or_are_refused() {
        let d = |s: &str, e: &str| Driver {
            id: "d".into(),
            capacity: 5,
            shift_start: Some(s.into()),
            shift_end: Some(e.into()),
        };
        let (start, len) = common_shift(&[
            d("2026-11-25T08:00:00Z", "2026-11-25T16:00:00Z"),
            d("2026-11-25T10:00:00Z", "2026-11-25T18:00:00Z"),
        ])
        .unwrap();
        assert_eq!((start.is_some(), len), (true, 6 * 3600));
        assert!(
            common_shift(&[d("2026-11-25T10:00:00Z", "2026-11-25T09:00:00Z")])
                .unwrap_err()
                .contains("ends before")
        );
        assert!(
            common_shift(&[
                d("2026-11-25T08:00:00Z", "2026-11-25T09:00:00Z"),
                d("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z")
            ])
            .unwrap_err()
            .contains("overlap")
        );
        assert_eq!(common_shift(&[]).unwrap(), (None, NO_DEADLINE));
    }
}
