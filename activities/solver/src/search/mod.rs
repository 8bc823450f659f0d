//! Hybrid genetic search (HGS, Vidal 2012/2022; time windows as in Vidal 2013 and Kool et al.
//! 2022): a population of giant tours, order crossover, Split, granular local search on
//! penalised infeasible intermediates, adaptive penalties and diversity-aware survivor
//! selection.

pub(crate) mod local;
pub(crate) mod segment;
pub(crate) mod split;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::baseline::nearest_neighbour;
use crate::model::{NodeIndex, Problem, Unservable};
use crate::rng::Rng;
use local::LocalSearch;
use segment::{Penalties, Segment};

/// How long and how to search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveOptions {
    /// Wall-clock budget, measured from the call to [`solve`] (model preparation included).
    pub time_limit: Duration,
    /// Seed of the search's random choices.
    pub seed: u64,
    /// Stop after this many iterations, each producing one locally-optimised solution (a random
    /// start while the population is seeded, then an offspring); for runs that are
    /// reproducible whatever the machine's speed.
    pub max_iterations: Option<u64>,
    /// How often the progress callback is called.
    pub progress_interval: Duration,
    /// Granular neighbourhood size (HGS: 20).
    pub neighbours: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            time_limit: Duration::from_secs(1),
            seed: 1,
            max_iterations: None,
            progress_interval: Duration::from_millis(200),
            neighbours: 20,
        }
    }
}

/// A snapshot passed to the progress callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Time since [`solve`] was called.
    pub elapsed: Duration,
    /// Solutions produced so far (see [`SolveOptions::max_iterations`]).
    pub iterations: u64,
    /// Best feasible cost so far, in instance units; `None` until one is found.
    pub best_cost: Option<f64>,
}

/// What the progress callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep searching.
    Continue,
    /// Stop now and return the best solution found (cancellation).
    Stop,
}

/// Why the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The wall-clock budget ran out.
    TimeLimit,
    /// [`SolveOptions::max_iterations`] was reached.
    IterationLimit,
    /// The progress callback returned [`Control::Stop`].
    Cancelled,
    /// Nothing to search (no servable customer).
    Trivial,
}

/// A customer left out because no vehicle can serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unassigned {
    /// The customer's node index.
    pub customer: NodeIndex,
    /// Why no vehicle can serve it.
    pub reason: Unservable,
}

/// The search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// Customer indices per route, depot excluded; no empty routes. With a heterogeneous
    /// fleet ([`Problem::with_vehicles`]) there is one entry per vehicle instead, in vehicle
    /// order, empty for an unused vehicle.
    pub routes: Vec<Vec<NodeIndex>>,
    /// Total distance in matrix units (see [`Problem::scale`]).
    pub cost: i64,
    /// False only if the search never found a solution meeting capacity, time windows and
    /// fleet limit; `routes` is then the least-penalised one.
    pub feasible: bool,
    /// Customers left out, each with its reason.
    pub unassigned: Vec<Unassigned>,
    /// Solutions produced (random starts and offspring).
    pub iterations: u64,
    /// Wall time spent in [`solve`].
    pub elapsed: Duration,
    /// Why the search ended.
    pub stop: StopReason,
}

/// Population parameters (HGS defaults).
const MU: usize = 25;
const LAMBDA: usize = 40;
const N_ELITE: usize = 4;
const N_CLOSE: usize = 5;
const TARGET_FEASIBLE: f64 = 0.2;
const PENALTY_UPDATE_EVERY: usize = 50;
const RESTART_AFTER: u64 = 20_000;

#[derive(Debug, Clone)]
struct Individual {
    tour: Vec<u32>,
    routes: Vec<Vec<u32>>,
    dist: i64,
    excess_load: i64,
    warp: i64,
    /// Successor and predecessor per node (0 = depot), for the broken-pairs distance.
    succ: Vec<u32>,
    pred: Vec<u32>,
}

impl Individual {
    /// `routes` in any order (homogeneous fleet) or one per vehicle slot (heterogeneous).
    fn new(p: &Problem, mut routes: Vec<Vec<u32>>) -> Self {
        if p.vehicles().is_none() {
            routes.retain(|r| !r.is_empty());
            sort_routes_by_angle(p, &mut routes);
        }
        let n = p.num_customers() + 1;
        let (mut succ, mut pred) = (vec![0u32; n], vec![0u32; n]);
        let (mut dist, mut excess_load, mut warp) = (0, 0, 0);
        for (slot, r) in routes.iter().enumerate() {
            let depot = Segment::vehicle_depot(p, slot);
            let mut seg = depot;
            for (k, &c) in r.iter().enumerate() {
                seg = seg.then(p, &Segment::visit(p, c));
                pred[c as usize] = if k == 0 { 0 } else { r[k - 1] };
                succ[c as usize] = r.get(k + 1).copied().unwrap_or(0);
            }
            seg = seg.then(p, &depot);
            dist += seg.dist;
            excess_load += (seg.load - p.vehicle_capacity(slot)).max(0);
            warp += seg.warp;
        }
        let tour = routes.iter().flatten().copied().collect();
        Self {
            tour,
            routes,
            dist,
            excess_load,
            warp,
            succ,
            pred,
        }
    }

    fn feasible(&self) -> bool {
        self.excess_load == 0 && self.warp == 0
    }

    fn cost(&self, pen: Penalties) -> f64 {
        self.dist as f64 + pen.load * self.excess_load as f64 + pen.warp * self.warp as f64
    }

    /// Broken-pairs distance (HGS), normalised by the number of customers.
    fn distance(&self, other: &Self, customers: &[u32]) -> f64 {
        let mut diff = 0usize;
        for &c in customers {
            let c = c as usize;
            if self.succ[c] != other.succ[c] && self.succ[c] != other.pred[c] {
                diff += 1;
            }
            if self.pred[c] == 0 && other.pred[c] != 0 && other.succ[c] != 0 {
                diff += 1;
            }
        }
        diff as f64 / customers.len().max(1) as f64
    }
}

/// Customers ordered by polar angle around the depot (the sweep heuristic's order).
fn sweep_tour(p: &Problem, customers: &[u32]) -> Vec<u32> {
    let d = p.node(0);
    let mut tour = customers.to_vec();
    tour.sort_by_cached_key(|&c| {
        let n = p.node(c as usize);
        ((n.y - d.y).atan2(n.x - d.x) * 1e9) as i64
    });
    tour
}

/// Orders routes by the polar angle of their barycentre around the depot, so that the giant
/// tour keeps geographically close routes close (as HGS does).
fn sort_routes_by_angle(p: &Problem, routes: &mut [Vec<u32>]) {
    let d = p.node(0);
    routes.sort_by_cached_key(|r| {
        let (sx, sy) = r.iter().fold((0.0, 0.0), |(sx, sy), &c| {
            let n = p.node(c as usize);
            (sx + n.x, sy + n.y)
        });
        let k = r.len().max(1) as f64;
        let angle = (sy / k - d.y).atan2(sx / k - d.x);
        (angle * 1e9) as i64
    });
}

/// One subpopulation (feasible or infeasible) with cached pairwise distances.
#[derive(Default)]
struct SubPopulation {
    members: Vec<Individual>,
    distances: Vec<Vec<f64>>,
    fitness: Vec<f64>,
}

impl SubPopulation {
    fn add(&mut self, ind: Individual, customers: &[u32], pen: Penalties) {
        let row: Vec<f64> = self
            .members
            .iter()
            .map(|m| m.distance(&ind, customers))
            .collect();
        for (r, &d) in self.distances.iter_mut().zip(&row) {
            r.push(d);
        }
        let mut row = row;
        row.push(0.0);
        self.distances.push(row);
        self.members.push(ind);
        if self.members.len() > MU + LAMBDA {
            while self.members.len() > MU {
                self.remove_worst(pen);
            }
        }
    }

    fn remove(&mut self, idx: usize) {
        self.members.swap_remove(idx);
        self.distances.swap_remove(idx);
        for r in &mut self.distances {
            r.swap_remove(idx);
        }
    }

    fn avg_close_distance(&self, i: usize) -> f64 {
        let mut ds: Vec<f64> = (0..self.members.len())
            .filter(|&j| j != i)
            .map(|j| self.distances[i][j])
            .collect();
        let k = N_CLOSE.min(ds.len());
        if k == 0 {
            return 0.0;
        }
        ds.select_nth_unstable_by(k - 1, f64::total_cmp);
        ds[..k].iter().sum::<f64>() / k as f64
    }

    fn update_fitness(&mut self, pen: Penalties) {
        let n = self.members.len();
        self.fitness = vec![0.0; n];
        if n <= 1 {
            return;
        }
        let mut by_cost: Vec<usize> = (0..n).collect();
        by_cost.sort_by(|&a, &b| {
            self.members[a]
                .cost(pen)
                .total_cmp(&self.members[b].cost(pen))
        });
        let diversity: Vec<f64> = (0..n).map(|i| self.avg_close_distance(i)).collect();
        let mut by_div: Vec<usize> = (0..n).collect();
        by_div.sort_by(|&a, &b| diversity[b].total_cmp(&diversity[a]));
        let mut div_rank = vec![0.0; n];
        for (rank, &i) in by_div.iter().enumerate() {
            div_rank[i] = rank as f64 / (n - 1) as f64;
        }
        let elite_weight = 1.0 - N_ELITE as f64 / n as f64;
        for (rank, &i) in by_cost.iter().enumerate() {
            self.fitness[i] = rank as f64 / (n - 1) as f64 + elite_weight * div_rank[i];
        }
    }

    fn remove_worst(&mut self, pen: Penalties) {
        self.update_fitness(pen);
        let n = self.members.len();
        let is_clone = |i: usize| (0..n).any(|j| j != i && self.distances[i][j] < 1e-9);
        let worst = (0..n)
            .max_by(|&a, &b| {
                (is_clone(a), self.fitness[a])
                    .partial_cmp(&(is_clone(b), self.fitness[b]))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .expect("non-empty");
        self.remove(worst);
    }
}

/// Solves `p` until the time limit, the iteration limit, or the callback says stop.
pub fn solve(
    p: &Problem,
    options: &SolveOptions,
    mut progress: impl FnMut(&Progress) -> Control,
) -> Solution {
    let started = Instant::now();
    let deadline = started + options.time_limit;
    let mut rng = Rng::new(options.seed);

    let mut unassigned = Vec::new();
    let mut customers: Vec<u32> = Vec::new();
    for c in 1..=p.num_customers() {
        match p.unservable(c) {
            Some(reason) => unassigned.push(Unassigned {
                customer: c,
                reason,
            }),
            None => customers.push(c as u32),
        }
    }
    if customers.is_empty() {
        return Solution {
            routes: Vec::new(),
            cost: 0,
            feasible: true,
            unassigned,
            iterations: 0,
            elapsed: started.elapsed(),
            stop: StopReason::Trivial,
        };
    }

    let slots = route_slots(p, &customers);
    let neighbours = granular_neighbours(p, &customers, options.neighbours);
    let mut ls = LocalSearch::new(p, customers.clone(), neighbours, slots);

    let max_dist = (0..=p.num_customers())
        .flat_map(|i| (0..=p.num_customers()).map(move |j| (i, j)))
        .map(|(i, j)| p.dist(i, j))
        .max()
        .unwrap_or(1) as f64;
    let max_demand = customers
        .iter()
        .map(|&c| p.node(c as usize).demand)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut pen = Penalties {
        load: (max_dist / max_demand).clamp(0.1, 1000.0),
        warp: if p.has_time_windows() {
            10.0 * mean_ratio(p)
        } else {
            1.0
        },
    };

    let mut feasible_pop = SubPopulation::default();
    let mut infeasible_pop = SubPopulation::default();
    let mut best: Option<Individual> = None;
    let mut best_infeasible: Option<(f64, Individual)> = None;
    let mut load_ok_history: Vec<bool> = Vec::new();
    let mut warp_ok_history: Vec<bool> = Vec::new();
    let mut iterations = 0u64;
    let mut since_improvement = 0u64;
    let mut last_progress = Instant::now();
    let stop;

    // Each genetic iteration: produce a giant tour, split it, improve it, insert it.
    let initial_target = 4 * MU;
    let mut initial_done = 0usize;
    loop {
        let now = Instant::now();
        if now >= deadline {
            stop = StopReason::TimeLimit;
            break;
        }
        if options.max_iterations.is_some_and(|m| iterations >= m) {
            stop = StopReason::IterationLimit;
            break;
        }
        if now.duration_since(last_progress) >= options.progress_interval {
            last_progress = now;
            let snapshot = Progress {
                elapsed: now - started,
                iterations,
                best_cost: best.as_ref().map(|b| p.to_instance_units(b.dist)),
            };
            if progress(&snapshot) == Control::Stop {
                stop = StopReason::Cancelled;
                break;
            }
        }

        // Short budgets cannot afford HGS's full 4μ random starts: stop seeding after a fifth
        // of the budget (with at least a handful of individuals).
        let seeding = initial_done < initial_target
            && (initial_done < 8 || now - started < options.time_limit / 5);
        if !seeding {
            initial_done = initial_target;
        }
        iterations += 1;
        let tour = if seeding {
            initial_done += 1;
            match initial_done {
                // Two constructive starts give large instances a good solution early.
                1 => sweep_tour(p, &customers),
                2 if nearest_neighbour(p).concat().len() == customers.len() => nearest_neighbour(p)
                    .concat()
                    .into_iter()
                    .map(|c| c as u32)
                    .collect(),
                _ => {
                    let mut t = customers.clone();
                    rng.shuffle(&mut t);
                    t
                }
            }
        } else {
            let a = select_parent(&mut feasible_pop, &mut infeasible_pop, pen, &mut rng);
            let b = select_parent(&mut feasible_pop, &mut infeasible_pop, pen, &mut rng);
            order_crossover(&a.tour, &b.tour, &mut rng)
        };
        let mut routes = split_into_slots(p, &tour, pen, ls.slots());
        ls.run(&mut routes, pen, &mut rng, deadline);
        let mut ind = Individual::new(p, routes);
        load_ok_history.push(ind.excess_load == 0);
        warp_ok_history.push(ind.warp == 0);
        let improved = consider_best(&mut best, &mut best_infeasible, &ind);
        if !ind.feasible() {
            infeasible_pop.add(ind.clone(), &customers, pen);
            // Repair half of the infeasible offspring with heavier penalties (HGS).
            if rng.below(2) == 0
                && let Some(repaired) =
                    repair(p, &mut ls, &ind, pen, &[10.0, 100.0], &mut rng, deadline)
            {
                ind = repaired;
            }
        }
        let improved = if ind.feasible() {
            let better = consider_best(&mut best, &mut best_infeasible, &ind) || improved;
            feasible_pop.add(ind, &customers, pen);
            better
        } else {
            improved
        };
        if improved {
            since_improvement = 0;
        } else {
            since_improvement += 1;
        }

        if load_ok_history.len() >= PENALTY_UPDATE_EVERY {
            pen.load = adapt(pen.load, &load_ok_history);
            if p.has_time_windows() {
                pen.warp = adapt(pen.warp, &warp_ok_history);
            }
            load_ok_history.clear();
            warp_ok_history.clear();
            // Keep the subpopulations' order meaningful under the new weights.
            feasible_pop.update_fitness(pen);
            infeasible_pop.update_fitness(pen);
        }
        if since_improvement >= RESTART_AFTER {
            feasible_pop = SubPopulation::default();
            infeasible_pop = SubPopulation::default();
            initial_done = 0;
            since_improvement = 0;
        }
    }

    // Last resort: push the least-infeasible solution hard towards feasibility, allowing a
    // tenth of the budget beyond the deadline (capped at a second).
    let grace = Instant::now() + (options.time_limit / 10).min(Duration::from_secs(1));
    if best.is_none()
        && let Some((_, b)) = &best_infeasible
        && let Some(r) = repair(p, &mut ls, b, pen, &[1e3, 1e5], &mut rng, grace)
    {
        best = Some(r);
    }
    let (chosen, feasible) = match (best, best_infeasible) {
        (Some(b), _) => (b, true),
        (None, Some((_, b))) => (b, false),
        (None, None) => {
            // Time ran out before the first local search finished: split a plain tour.
            let routes = split_into_slots(p, &customers, pen, ls.slots());
            let ind = Individual::new(p, routes);
            let ok = ind.feasible();
            (ind, ok)
        }
    };
    Solution {
        routes: chosen
            .routes
            .iter()
            .map(|r| r.iter().map(|&c| c as usize).collect())
            .collect(),
        cost: chosen.dist,
        feasible,
        unassigned,
        iterations,
        elapsed: started.elapsed(),
        stop,
    }
}

/// Splits a giant tour into routes; with a heterogeneous fleet, gives each route a vehicle:
/// the heaviest route first, each to the free vehicle that prices it lowest. The result then
/// has one (possibly empty) route per vehicle.
fn split_into_slots(p: &Problem, tour: &[u32], pen: Penalties, slots: usize) -> Vec<Vec<u32>> {
    let mut routes = split::split(p, tour, pen, slots);
    let Some(vehicles) = p.vehicles() else {
        return routes;
    };
    let load = |r: &[u32]| r.iter().map(|&c| p.node(c as usize).demand).sum::<i64>();
    routes.sort_by_key(|r| std::cmp::Reverse(load(r)));
    let mut out = vec![Vec::new(); vehicles.len()];
    let mut free = vec![true; vehicles.len()];
    for route in routes {
        let priced = |k: usize| {
            let depot = Segment::vehicle_depot(p, k);
            let mut seg = depot;
            for &c in &route {
                seg = seg.then(p, &Segment::visit(p, c));
            }
            pen.route_cost(&seg.then(p, &depot), p.vehicle_capacity(k))
        };
        let best = (0..vehicles.len())
            .filter(|&k| free[k])
            .min_by(|&a, &b| priced(a).total_cmp(&priced(b)))
            .expect("split never makes more routes than vehicles");
        free[best] = false;
        out[best] = route;
    }
    out
}

/// Records `ind` if it is the best feasible (or, while none is feasible, least penalised)
/// solution so far. Returns whether the best feasible solution improved.
fn consider_best(
    best: &mut Option<Individual>,
    best_infeasible: &mut Option<(f64, Individual)>,
    ind: &Individual,
) -> bool {
    if ind.feasible() {
        if best.as_ref().is_none_or(|b| ind.dist < b.dist) {
            *best = Some(ind.clone());
            return true;
        }
    } else if best.is_none() {
        // Penalties drift, so rank infeasible candidates by a fixed, heavy weighting.
        let score = ind.dist as f64 + 1e4 * (ind.excess_load + ind.warp) as f64;
        if best_infeasible.as_ref().is_none_or(|(s, _)| score < *s) {
            *best_infeasible = Some((score, ind.clone()));
        }
    }
    false
}

/// Re-runs the local search on `ind` with penalties multiplied by each factor in turn;
/// returns the first feasible result.
fn repair(
    p: &Problem,
    ls: &mut LocalSearch<'_>,
    ind: &Individual,
    pen: Penalties,
    factors: &[f64],
    rng: &mut Rng,
    deadline: Instant,
) -> Option<Individual> {
    let mut routes = ind.routes.clone();
    for &f in factors {
        let strong = Penalties {
            load: pen.load * f,
            warp: pen.warp * f,
        };
        ls.run(&mut routes, strong, rng, deadline);
        let repaired = Individual::new(p, routes.clone());
        if repaired.feasible() {
            return Some(repaired);
        }
    }
    None
}

fn adapt(weight: f64, history: &[bool]) -> f64 {
    let ok = history.iter().filter(|&&b| b).count() as f64 / history.len() as f64;
    if ok < TARGET_FEASIBLE - 0.05 {
        (weight * 1.2).min(100_000.0)
    } else if ok > TARGET_FEASIBLE + 0.05 {
        (weight * 0.85).max(0.1)
    } else {
        weight
    }
}

/// Binary tournament on biased fitness over both subpopulations.
fn select_parent(
    feasible: &mut SubPopulation,
    infeasible: &mut SubPopulation,
    pen: Penalties,
    rng: &mut Rng,
) -> Individual {
    if feasible.fitness.len() != feasible.members.len() {
        feasible.update_fitness(pen);
    }
    if infeasible.fitness.len() != infeasible.members.len() {
        infeasible.update_fitness(pen);
    }
    let total = feasible.members.len() + infeasible.members.len();
    let pick = |i: usize| -> (&Individual, f64) {
        if i < feasible.members.len() {
            (&feasible.members[i], feasible.fitness[i])
        } else {
            let j = i - feasible.members.len();
            (&infeasible.members[j], infeasible.fitness[j])
        }
    };
    let (a, fa) = pick(rng.below(total));
    let (b, fb) = pick(rng.below(total));
    if fa <= fb { a.clone() } else { b.clone() }
}

/// Order crossover (OX) on giant tours.
fn order_crossover(a: &[u32], b: &[u32], rng: &mut Rng) -> Vec<u32> {
    let n = a.len();
    let start = rng.below(n);
    let mut end = rng.below(n);
    while n > 1 && end == start {
        end = rng.below(n);
    }
    let max_node = a.iter().copied().max().unwrap_or(0) as usize;
    let mut taken = vec![false; max_node + 1];
    let mut child = vec![0u32; n];
    let mut k = start;
    loop {
        child[k] = a[k];
        taken[a[k] as usize] = true;
        if k == end {
            break;
        }
        k = (k + 1) % n;
    }
    let mut write = (end + 1) % n;
    for off in 0..n {
        let c = b[(end + 1 + off) % n];
        if !taken[c as usize] {
            child[write] = c;
            write = (write + 1) % n;
        }
    }
    child
}

/// Mean arc distance over mean arc duration: converts time warp into distance units.
fn mean_ratio(p: &Problem) -> f64 {
    let n = p.num_customers() + 1;
    let (mut d, mut t) = (0i64, 0i64);
    for i in 0..n {
        for j in 0..n {
            d += p.dist(i, j);
            t += p.time(i, j);
        }
    }
    if t == 0 {
        1.0
    } else {
        (d as f64 / t as f64).max(1e-3)
    }
}

/// Number of route slots the local search may use.
fn route_slots(p: &Problem, customers: &[u32]) -> usize {
    let n = customers.len();
    let by_demand = {
        let total: i64 = customers.iter().map(|&c| p.node(c as usize).demand).sum();
        ((1.3 * total as f64 / p.capacity() as f64).ceil() as usize + 3).min(n)
    };
    if let Some(vehicles) = p.vehicles() {
        // One slot per vehicle, whatever the number of customers.
        return vehicles.len();
    }
    match p.fleet() {
        Some(f) => f.min(n),
        None if p.has_time_windows() => n,
        None => by_demand.max(1),
    }
}

/// For each customer, the `count` most correlated other customers (distance, plus waiting and
/// time-warp terms when there are time windows; Vidal 2013), closed under symmetry.
pub(crate) fn granular_neighbours(p: &Problem, customers: &[u32], count: usize) -> Vec<Vec<u32>> {
    let n = p.num_customers() + 1;
    let proximity = |u: usize, v: usize| -> f64 {
        let d = p.dist(u, v) as f64;
        if !p.has_time_windows() {
            return d;
        }
        let (a, b) = (p.node(u), p.node(v));
        let one_way = |a: &crate::model::Node, b: &crate::model::Node, t: i64| {
            let wait = (b.ready - t - a.service - a.due).max(0) as f64;
            let warp = (a.ready + a.service + t - b.due).max(0) as f64;
            0.2 * wait + warp
        };
        d + one_way(a, b, p.time(u, v)).min(one_way(b, a, p.time(v, u)))
    };
    let mut sets: Vec<Vec<u32>> = vec![Vec::new(); n];
    for &u in customers {
        let mut others: Vec<(f64, u32)> = customers
            .iter()
            .filter(|&&v| v != u)
            .map(|&v| (proximity(u as usize, v as usize), v))
            .collect();
        let k = count.min(others.len());
        if k == 0 {
            continue;
        }
        others.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        for &(_, v) in &others[..k] {
            sets[u as usize].push(v);
            sets[v as usize].push(u);
        }
    }
    for s in &mut sets {
        s.sort_unstable();
        s.dedup();
    }
    sets
}
