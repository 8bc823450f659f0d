//! Route segments with O(1) concatenation (Vidal et al. 2013, "A hybrid genetic algorithm with
//! adaptive diversity management for a large class of vehicle routing problems with
//! time-windows"): distance, load and the time-window summary (duration, time warp, earliest
//! and latest start) of a sequence of visits, so that any move that rebuilds a route from a
//! handful of existing segments is priced without re-simulating the route.

use crate::model::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub dist: i64,
    pub load: i64,
    /// Minimal duration (travel + service + unavoidable waiting).
    pub duration: i64,
    /// Time warp: how much "going back in time" the sequence needs to meet every window.
    pub warp: i64,
    /// Earliest start at the first visit that achieves `duration`.
    pub earliest: i64,
    /// Latest start at the first visit without adding warp.
    pub latest: i64,
    pub first: u32,
    pub last: u32,
}

impl Segment {
    /// The one-visit segment of node `i` (the depot is node 0).
    #[inline]
    pub fn visit(problem: &Problem, i: u32) -> Self {
        let n = problem.node(i as usize);
        Self {
            dist: 0,
            load: n.demand,
            duration: n.service,
            warp: 0,
            earliest: n.ready,
            latest: n.due,
            first: i,
            last: i,
        }
    }

    /// The depot as vehicle `k` sees it: open from its shift start to its shift end (the
    /// plain depot visit when the fleet is homogeneous).
    #[inline]
    pub fn vehicle_depot(problem: &Problem, k: usize) -> Self {
        let mut s = Self::visit(problem, 0);
        (s.earliest, s.latest) = problem.vehicle_window(k);
        s
    }

    /// `self` followed by `next`.
    #[inline]
    pub fn then(&self, problem: &Problem, next: &Segment) -> Self {
        let (a, b) = (self, next);
        let travel = problem.time(a.last as usize, b.first as usize);
        let delta = a.duration - a.warp + travel;
        let wait = (b.earliest - delta - a.latest).max(0);
        let warp = (a.earliest + delta - b.latest).max(0);
        Self {
            dist: a.dist + b.dist + problem.dist(a.last as usize, b.first as usize),
            load: a.load + b.load,
            duration: a.duration + b.duration + travel + wait,
            warp: a.warp + b.warp + warp,
            earliest: (b.earliest - delta).max(a.earliest) - wait,
            latest: (b.latest - delta).min(a.latest) + warp,
            first: a.first,
            last: b.last,
        }
    }
}

/// Penalty weights for infeasible intermediate solutions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalties {
    /// Cost per unit of load above capacity.
    pub load: f64,
    /// Cost per unit of time warp.
    pub warp: f64,
}

impl Penalties {
    /// Penalised cost of a complete route (depot to depot) summarised by `s`.
    #[inline]
    pub fn route_cost(&self, s: &Segment, capacity: i64) -> f64 {
        s.dist as f64 + self.load * (s.load - capacity).max(0) as f64 + self.warp * s.warp as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::parse_solomon;
    use crate::rng::Rng;

    /// Folds a route depot → customers → depot from single-visit segments.
    pub(crate) fn fold(p: &Problem, route: &[u32]) -> Segment {
        let mut seg = Segment::visit(p, 0);
        for &c in route {
            seg = seg.then(p, &Segment::visit(p, c));
        }
        seg.then(p, &Segment::visit(p, 0))
    }

    #[test]
    fn zero_time_warp_agrees_with_the_evaluator_on_random_routes() {
        let text = include_str!("../../tests/fixtures/R101-head.txt");
        let p = parse_solomon(text).unwrap();
        let mut rng = Rng::new(7);
        let mut customers: Vec<u32> = (1..=p.num_customers() as u32).collect();
        let mut disagreements = 0;
        for _ in 0..2000 {
            rng.shuffle(&mut customers);
            let len = 1 + rng.below(12);
            let route = &customers[..len];
            let seg = fold(&p, route);
            let routes = vec![route.iter().map(|&c| c as usize).collect::<Vec<_>>()];
            let eval = crate::evaluate(&p, &routes, &[]);
            let tw_ok = !eval.violations.iter().any(|v| {
                matches!(
                    v,
                    crate::Violation::TimeWindow { .. } | crate::Violation::DepotReturn { .. }
                )
            });
            assert_eq!(seg.dist, eval.cost);
            if (seg.warp == 0) != tw_ok {
                disagreements += 1;
                eprintln!("{route:?}: warp {} vs {:?}", seg.warp, eval.violations);
            }
        }
        assert_eq!(disagreements, 0);
    }
}
