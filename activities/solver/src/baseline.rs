//! Nearest neighbour: the construction of the original design, kept as the benchmark baseline.

use crate::model::{NodeIndex, Problem};

/// Routes built greedily: from the current stop, go to the nearest unvisited customer that still
/// fits (capacity, time window, return to the depot in time); when none fits, return to the depot
/// and open a new route. Customers no vehicle can serve are skipped. The fleet limit is ignored,
/// so the result can need more vehicles than available (the evaluator reports it).
pub fn nearest_neighbour(p: &Problem) -> Vec<Vec<NodeIndex>> {
    let n = p.num_customers();
    let mut visited = vec![false; n + 1];
    for (c, v) in visited.iter_mut().enumerate().skip(1) {
        *v = p.unservable(c).is_some();
    }
    let depot = p.node(0);
    let mut routes = Vec::new();
    while visited.iter().skip(1).any(|v| !v) {
        let (mut route, mut load, mut time, mut at) = (Vec::new(), 0, depot.ready, 0);
        loop {
            let next = (1..=n)
                .filter(|&c| !visited[c])
                .filter(|&c| {
                    let node = p.node(c);
                    let start = (time + p.time(at, c)).max(node.ready);
                    load + node.demand <= p.capacity()
                        && start <= node.due
                        && start + node.service + p.time(c, 0) <= depot.due
                })
                .min_by_key(|&c| (p.dist(at, c), c));
            let Some(c) = next else { break };
            let node = p.node(c);
            time = (time + p.time(at, c)).max(node.ready) + node.service;
            load += node.demand;
            visited[c] = true;
            route.push(c);
            at = c;
        }
        if route.is_empty() {
            break;
        }
        routes.push(route);
    }
    routes
}
