//! The problem model: one depot, customers with demand and optional time windows, a
//! homogeneous fleet (or, with [`Problem::with_vehicles`], one capacity and shift per vehicle),
//! and integer distance/time matrices.
//!
//! Everything is integral so that costs add up exactly and the search never fights float
//! rounding. A convention that is not integral in its natural unit (DIMACS VRPTW truncates each
//! arc to one decimal) is expressed in scaled units: [`Problem::scale`] says how many units make
//! one instance unit (10 for DIMACS, 1 for TSPLIB `round(euclid)`).

use serde::{Deserialize, Serialize};

/// Index of a node in a [`Problem`]: 0 is the depot, `1..=n` are the customers in file order.
pub type NodeIndex = usize;

/// The `due` of a node without deadline; large enough for any horizon, small enough that sums
/// of a few of them cannot overflow.
pub const NO_DEADLINE: i64 = i64::MAX / 8;

/// A customer (or, at index 0, the depot) as the search sees it. All times are in matrix units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Planar coordinates, used for neighbourhood geometry only (costs come from the matrix).
    pub x: f64,
    /// See `x`.
    pub y: f64,
    /// Load taken from the vehicle (0 for the depot).
    pub demand: i64,
    /// Earliest service start. For the depot: the earliest departure.
    pub ready: i64,
    /// Latest service start. For the depot: the latest return.
    pub due: i64,
    /// Time spent at the customer once service starts.
    pub service: i64,
}

/// A square matrix in integer units, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    size: usize,
    data: Vec<i64>,
}

impl Matrix {
    /// Wraps a row-major `size × size` matrix.
    pub fn new(size: usize, data: Vec<i64>) -> Result<Self, ProblemError> {
        if data.len() != size * size {
            return Err(ProblemError::MatrixShape {
                expected: size * size,
                got: data.len(),
            });
        }
        if let Some(&v) = data.iter().find(|&&v| v < 0) {
            return Err(ProblemError::NegativeArc(v));
        }
        Ok(Self { size, data })
    }

    /// Builds a matrix from coordinates with an arc-cost convention.
    pub fn from_coordinates(points: &[(f64, f64)], convention: CostConvention) -> Self {
        let size = points.len();
        let mut data = Vec::with_capacity(size * size);
        for &(xi, yi) in points {
            for &(xj, yj) in points {
                let d = ((xi - xj).powi(2) + (yi - yj).powi(2)).sqrt();
                data.push(convention.arc(d));
            }
        }
        Self { size, data }
    }

    /// Number of rows (and columns).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The arc from `i` to `j`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> i64 {
        self.data[i * self.size + j]
    }
}

/// How a Euclidean distance becomes an integer arc cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CostConvention {
    /// TSPLIB `EUC_2D`: `round(euclid)`, scale 1.
    RoundEuclid,
    /// DIMACS VRPTW: `floor(10 * euclid) / 10`, stored in tenths (scale 10).
    TruncatedTenths,
}

impl CostConvention {
    /// Units per instance unit.
    pub fn scale(self) -> i64 {
        match self {
            CostConvention::RoundEuclid => 1,
            CostConvention::TruncatedTenths => 10,
        }
    }

    fn arc(self, euclid: f64) -> i64 {
        match self {
            CostConvention::RoundEuclid => (euclid + 0.5).floor() as i64,
            // The small epsilon keeps exact tenths (e.g. 5.0 computed as 4.9999999) from
            // losing a unit to float error.
            CostConvention::TruncatedTenths => (10.0 * euclid + 1e-9).floor() as i64,
        }
    }
}

/// One vehicle of a heterogeneous fleet (see [`Problem::with_vehicles`]). Times are in matrix
/// units on the same clock as the customers' windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vehicle {
    /// Load the vehicle carries.
    pub capacity: i64,
    /// Earliest departure from the depot (shift start).
    pub start: i64,
    /// Latest return to the depot (shift end); [`NO_DEADLINE`] for none.
    pub end: i64,
}

/// A validated routing problem. Construct with [`Problem::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Instance name, for reports.
    pub name: String,
    /// `nodes[0]` is the depot.
    nodes: Vec<Node>,
    capacity: i64,
    /// Maximum number of non-empty routes; `None` means unlimited.
    fleet: Option<usize>,
    distance: Matrix,
    duration: Matrix,
    /// Matrix units per instance unit (costs are printed as `units / scale`).
    scale: i64,
    /// Whether any time window or depot horizon constrains the schedule.
    has_time_windows: bool,
    /// One entry per vehicle when the fleet is heterogeneous; `None` for identical vehicles.
    #[serde(default)]
    vehicles: Option<Vec<Vehicle>>,
}

/// Why a problem was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProblemError {
    /// No nodes at all.
    #[error("the problem has no depot (no nodes at all)")]
    NoDepot,
    /// Capacity zero or negative.
    #[error("vehicle capacity must be positive, got {0}")]
    NonPositiveCapacity(i64),
    /// A fleet limit of zero.
    #[error("the fleet limit is zero: no vehicle can serve anything")]
    NoVehicles,
    /// `due < ready` for some node.
    #[error("node {node}: time window ends ({due}) before it starts ({ready})")]
    #[allow(missing_docs)]
    InvertedTimeWindow { node: usize, ready: i64, due: i64 },
    /// A negative demand or service time.
    #[error("node {node}: negative {what} ({value})")]
    #[allow(missing_docs)]
    Negative {
        node: usize,
        what: &'static str,
        value: i64,
    },
    /// A matrix whose data is not `size × size`.
    #[error("matrix has {got} entries, expected {expected}")]
    #[allow(missing_docs)]
    MatrixShape { expected: usize, got: usize },
    /// A matrix for a different number of nodes.
    #[error("matrix size {matrix} does not match {nodes} nodes")]
    #[allow(missing_docs)]
    MatrixSize { matrix: usize, nodes: usize },
    /// A negative distance or travel time.
    #[error("negative arc cost {0}")]
    NegativeArc(i64),
    /// A scale of zero or less.
    #[error("scale must be positive, got {0}")]
    NonPositiveScale(i64),
    /// A vehicle of a heterogeneous fleet with capacity zero or less.
    #[error("vehicle {vehicle}: capacity must be positive, got {capacity}")]
    #[allow(missing_docs)]
    VehicleCapacity { vehicle: usize, capacity: i64 },
    /// A vehicle whose shift ends before it starts.
    #[error("vehicle {vehicle}: shift ends ({end}) before it starts ({start})")]
    #[allow(missing_docs)]
    InvertedShift {
        vehicle: usize,
        start: i64,
        end: i64,
    },
    /// Heterogeneous fleets need a zero depot-to-depot arc (routes are closed on it).
    #[error("the depot-to-depot arc must be zero for a heterogeneous fleet")]
    DepotLoop,
}

/// Why a customer cannot be served by any route, even alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unservable {
    /// Its demand exceeds the vehicle capacity.
    DemandExceedsCapacity,
    /// Leaving the depot at its opening, the vehicle arrives after the customer's due time.
    WindowUnreachable,
    /// The customer can be reached but the vehicle cannot be back before the depot closes.
    ReturnTooLate,
}

impl std::fmt::Display for Unservable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unservable::DemandExceedsCapacity => "demand exceeds vehicle capacity",
            Unservable::WindowUnreachable => "time window closes before a vehicle can arrive",
            Unservable::ReturnTooLate => "cannot be served and back before the depot closes",
        })
    }
}

impl Problem {
    /// Validates and builds a problem. `nodes[0]` is the depot; `distance` prices arcs (the
    /// objective), `duration` times them (may be the same matrix).
    pub fn new(
        name: impl Into<String>,
        nodes: Vec<Node>,
        capacity: i64,
        fleet: Option<usize>,
        distance: Matrix,
        duration: Matrix,
        scale: i64,
    ) -> Result<Self, ProblemError> {
        if nodes.is_empty() {
            return Err(ProblemError::NoDepot);
        }
        if capacity <= 0 {
            return Err(ProblemError::NonPositiveCapacity(capacity));
        }
        if fleet == Some(0) {
            return Err(ProblemError::NoVehicles);
        }
        if scale <= 0 {
            return Err(ProblemError::NonPositiveScale(scale));
        }
        for m in [&distance, &duration] {
            if m.size() != nodes.len() {
                return Err(ProblemError::MatrixSize {
                    matrix: m.size(),
                    nodes: nodes.len(),
                });
            }
        }
        for (i, n) in nodes.iter().enumerate() {
            if n.due < n.ready {
                return Err(ProblemError::InvertedTimeWindow {
                    node: i,
                    ready: n.ready,
                    due: n.due,
                });
            }
            for (what, value) in [("demand", n.demand), ("service time", n.service)] {
                if value < 0 {
                    return Err(ProblemError::Negative {
                        node: i,
                        what,
                        value,
                    });
                }
            }
        }
        let has_time_windows = nodes.iter().any(|n| n.due < NO_DEADLINE)
            || nodes.iter().skip(1).any(|n| n.ready > nodes[0].ready);
        Ok(Self {
            name: name.into(),
            nodes,
            capacity,
            fleet,
            distance,
            duration,
            scale,
            has_time_windows,
            vehicles: None,
        })
    }

    /// Makes the fleet heterogeneous: vehicle `k` carries `vehicles[k].capacity`, leaves the
    /// depot no earlier than its `start` and is back by its `end`. The fleet limit becomes the
    /// number of vehicles, [`Self::capacity`] the largest capacity and the depot's window the
    /// union of the shifts. Routes of a heterogeneous problem are indexed by vehicle (see
    /// [`crate::evaluate`] and [`crate::Solution::routes`]).
    pub fn with_vehicles(mut self, vehicles: Vec<Vehicle>) -> Result<Self, ProblemError> {
        if vehicles.is_empty() {
            return Err(ProblemError::NoVehicles);
        }
        for (k, v) in vehicles.iter().enumerate() {
            if v.capacity <= 0 {
                return Err(ProblemError::VehicleCapacity {
                    vehicle: k,
                    capacity: v.capacity,
                });
            }
            if v.end < v.start {
                return Err(ProblemError::InvertedShift {
                    vehicle: k,
                    start: v.start,
                    end: v.end,
                });
            }
        }
        if self.dist(0, 0) != 0 || self.time(0, 0) != 0 {
            return Err(ProblemError::DepotLoop);
        }
        let start = vehicles.iter().map(|v| v.start).min().unwrap_or(0);
        let end = vehicles.iter().map(|v| v.end).max().unwrap_or(NO_DEADLINE);
        self.nodes[0].ready = start;
        self.nodes[0].due = end;
        self.capacity = vehicles.iter().map(|v| v.capacity).max().unwrap_or(1);
        self.fleet = Some(vehicles.len());
        self.has_time_windows = self.has_time_windows
            || vehicles
                .iter()
                .any(|v| v.end < NO_DEADLINE || v.start > start);
        self.vehicles = Some(vehicles);
        Ok(self)
    }

    /// The vehicles of a heterogeneous fleet; `None` when all vehicles are alike.
    pub fn vehicles(&self) -> Option<&[Vehicle]> {
        self.vehicles.as_deref()
    }

    /// Capacity of vehicle (route slot) `k`.
    #[inline]
    pub fn vehicle_capacity(&self, k: usize) -> i64 {
        match &self.vehicles {
            Some(v) => v[k].capacity,
            None => self.capacity,
        }
    }

    /// Departure and return limits of vehicle (route slot) `k`.
    #[inline]
    pub fn vehicle_window(&self, k: usize) -> (i64, i64) {
        match &self.vehicles {
            Some(v) => (v[k].start, v[k].end),
            None => (self.nodes[0].ready, self.nodes[0].due),
        }
    }

    /// A node without time window, for building capacity-only problems.
    pub fn untimed_node(x: f64, y: f64, demand: i64) -> Node {
        Node {
            x,
            y,
            demand,
            ready: 0,
            due: NO_DEADLINE,
            service: 0,
        }
    }

    /// Number of customers (excluding the depot).
    pub fn num_customers(&self) -> usize {
        self.nodes.len() - 1
    }

    /// All nodes, depot first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i` (0 is the depot).
    #[inline]
    pub fn node(&self, i: NodeIndex) -> &Node {
        &self.nodes[i]
    }

    /// Vehicle capacity (all vehicles are alike; the largest one for a heterogeneous fleet).
    pub fn capacity(&self) -> i64 {
        self.capacity
    }

    /// Maximum number of routes; `None` for unlimited.
    pub fn fleet(&self) -> Option<usize> {
        self.fleet
    }

    /// Matrix units per instance unit.
    pub fn scale(&self) -> i64 {
        self.scale
    }

    /// Whether any time window or depot horizon can constrain a route.
    pub fn has_time_windows(&self) -> bool {
        self.has_time_windows
    }

    /// Cost of the arc `i → j`, in matrix units.
    #[inline]
    pub fn dist(&self, i: NodeIndex, j: NodeIndex) -> i64 {
        self.distance.get(i, j)
    }

    /// Travel time of the arc `i → j`.
    #[inline]
    pub fn time(&self, i: NodeIndex, j: NodeIndex) -> i64 {
        self.duration.get(i, j)
    }

    /// Converts matrix units to instance units (e.g. tenths to the DIMACS decimal).
    pub fn to_instance_units(&self, units: i64) -> f64 {
        units as f64 / self.scale as f64
    }

    /// Formats a cost in instance units with as many decimals as the scale implies.
    pub fn format_cost(&self, units: i64) -> String {
        let decimals = (self.scale as f64).log10().ceil().max(0.0) as usize;
        format!("{:.*}", decimals, self.to_instance_units(units))
    }

    /// Whether (and why) a customer cannot be served even by a dedicated vehicle. With a
    /// heterogeneous fleet, a customer is servable if one vehicle has both the capacity and
    /// the shift for it; otherwise the reason is the capacity if some vehicle's shift would
    /// do (or none is large enough), else the timing.
    pub fn unservable(&self, c: NodeIndex) -> Option<Unservable> {
        let n = &self.nodes[c];
        let Some(vehicles) = &self.vehicles else {
            if n.demand > self.capacity {
                return Some(Unservable::DemandExceedsCapacity);
            }
            let depot = &self.nodes[0];
            return self.timing(c, depot.ready, depot.due);
        };
        let mut timing = None;
        let mut shift_fits = false;
        for v in vehicles {
            match self.timing(c, v.start, v.end) {
                None if n.demand <= v.capacity => return None,
                None => shift_fits = true,
                Some(reason) => {
                    if timing != Some(Unservable::ReturnTooLate) {
                        timing = Some(reason);
                    }
                }
            }
        }
        if shift_fits || n.demand > self.capacity {
            Some(Unservable::DemandExceedsCapacity)
        } else {
            timing
        }
    }

    /// Whether a dedicated vehicle leaving at `start` and due back at `end` reaches `c` in its
    /// window and returns in time.
    fn timing(&self, c: NodeIndex, start: i64, end: i64) -> Option<Unservable> {
        let n = &self.nodes[c];
        let arrival = start + self.time(0, c);
        if arrival > n.due {
            return Some(Unservable::WindowUnreachable);
        }
        if arrival.max(n.ready) + n.service + self.time(c, 0) > end {
            return Some(Unservable::ReturnTooLate);
        }
        None
    }
}
