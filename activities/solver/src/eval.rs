//! The independent evaluator: a deliberately plain re-simulation of every route, sharing no
//! code with the search's incremental (segment-based) evaluation, so that a bug in one is
//! caught by the other.

use serde::{Deserialize, Serialize};

use crate::model::{NodeIndex, Problem};

/// One way a set of routes breaks the problem's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields are named for what they hold.
pub enum Violation {
    /// A route carries more than the vehicle capacity.
    Capacity { route: usize, load: i64 },
    /// Service at `customer` would start after its due time.
    TimeWindow {
        route: usize,
        customer: NodeIndex,
        start: i64,
        due: i64,
    },
    /// The vehicle is back at the depot after it closes.
    DepotReturn {
        route: usize,
        arrival: i64,
        due: i64,
    },
    /// A customer is on no route.
    Missing { customer: NodeIndex },
    /// A customer is visited more than once.
    Duplicate { customer: NodeIndex },
    /// A route names the depot or a node that does not exist.
    InvalidNode { route: usize, node: NodeIndex },
    /// More non-empty routes than vehicles.
    Fleet { used: usize, limit: usize },
    /// A heterogeneous fleet has no vehicle with this route's index.
    NoVehicle { route: usize },
}

/// The result of re-scoring a solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Total distance in matrix units.
    pub cost: i64,
    /// Number of non-empty routes.
    pub vehicles: usize,
    /// Every rule broken, in route order, then missing/duplicate customers, then the fleet.
    pub violations: Vec<Violation>,
}

impl Evaluation {
    /// No violation at all.
    pub fn is_feasible(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Re-scores `routes` (customer indices, depot excluded) from scratch. Customers listed in
/// `excused` may be missing, but only if the problem itself says they cannot be served.
///
/// With a heterogeneous fleet ([`Problem::with_vehicles`]) `routes[k]` is driven by vehicle
/// `k`: its own capacity, departure no earlier than its shift start, back by its shift end.
pub fn evaluate(problem: &Problem, routes: &[Vec<NodeIndex>], excused: &[NodeIndex]) -> Evaluation {
    let n = problem.num_customers();
    let mut visits = vec![0usize; n + 1];
    let mut violations = Vec::new();
    let mut cost = 0i64;
    let mut vehicles = 0;
    for (r, route) in routes.iter().enumerate() {
        if route.is_empty() {
            continue;
        }
        vehicles += 1;
        let fleet = problem.vehicles().map_or(usize::MAX, <[_]>::len);
        if r >= fleet {
            violations.push(Violation::NoVehicle { route: r });
            continue;
        }
        let (start, due) = problem.vehicle_window(r);
        let capacity = problem.vehicle_capacity(r);
        let mut load = 0i64;
        let mut time = start;
        let mut prev = 0;
        for &c in route {
            if c == 0 || c > n {
                violations.push(Violation::InvalidNode { route: r, node: c });
                continue;
            }
            visits[c] += 1;
            let node = problem.node(c);
            load += node.demand;
            cost += problem.dist(prev, c);
            time = (time + problem.time(prev, c)).max(node.ready);
            if time > node.due {
                violations.push(Violation::TimeWindow {
                    route: r,
                    customer: c,
                    start: time,
                    due: node.due,
                });
            }
            time += node.service;
            prev = c;
        }
        cost += problem.dist(prev, 0);
        time += problem.time(prev, 0);
        if time > due {
            violations.push(Violation::DepotReturn {
                route: r,
                arrival: time,
                due,
            });
        }
        if load > capacity {
            violations.push(Violation::Capacity { route: r, load });
        }
    }
    for (c, &count) in visits.iter().enumerate().skip(1) {
        if count == 0 && !(excused.contains(&c) && problem.unservable(c).is_some()) {
            violations.push(Violation::Missing { customer: c });
        } else if count > 1 {
            violations.push(Violation::Duplicate { customer: c });
        }
    }
    if let Some(limit) = problem.fleet()
        && vehicles > limit
    {
        violations.push(Violation::Fleet {
            used: vehicles,
            limit,
        });
    }
    Evaluation {
        cost,
        vehicles,
        violations,
    }
}
