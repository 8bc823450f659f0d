//! Split (Prins 2004, as in HGS): cut a giant tour into routes optimally for the penalised cost,
//! keeping the tour order.

use crate::model::Problem;
use crate::search::segment::{Penalties, Segment};

/// Splits `tour` into at most `max_routes` routes. Routes may carry up to 1.5× capacity (then
/// penalised) in the unconstrained pass; if that pass needs too many routes, a fleet-bounded
/// pass without the load cut-off is used.
pub fn split(p: &Problem, tour: &[u32], pen: Penalties, max_routes: usize) -> Vec<Vec<u32>> {
    let n = tour.len();
    if n == 0 {
        return Vec::new();
    }
    let depot = Segment::visit(p, 0);
    let load_cap = p.capacity() + p.capacity() / 2;
    let mut best = vec![f64::INFINITY; n + 1];
    let mut pred = vec![0usize; n + 1];
    best[0] = 0.0;
    for i in 0..n {
        let mut seg = depot;
        for j in i..n {
            seg = seg.then(p, &Segment::visit(p, tour[j]));
            if j > i && seg.load > load_cap {
                break;
            }
            let cost = best[i] + pen.route_cost(&seg.then(p, &depot), p.capacity());
            if cost < best[j + 1] {
                best[j + 1] = cost;
                pred[j + 1] = i;
            }
        }
    }
    let routes = unwind(tour, &pred);
    if routes.len() <= max_routes {
        return routes;
    }

    // Fleet-bounded: best[k][j] = best cost of the first j visits in exactly k routes. Routes
    // are cut at twice the capacity (O(K·n·L), not O(K·n²)), unless that leaves no solution.
    bounded(p, tour, pen, max_routes, Some(2 * p.capacity()))
        .or_else(|| bounded(p, tour, pen, max_routes, None))
        .expect("without a load cut-off, any tour splits into one or more routes")
}

fn bounded(
    p: &Problem,
    tour: &[u32],
    pen: Penalties,
    max_routes: usize,
    load_cap: Option<i64>,
) -> Option<Vec<Vec<u32>>> {
    let n = tour.len();
    let depot = Segment::visit(p, 0);
    let k_max = max_routes;
    let mut best = vec![vec![f64::INFINITY; n + 1]; k_max + 1];
    let mut pred = vec![vec![0usize; n + 1]; k_max + 1];
    best[0][0] = 0.0;
    for k in 0..k_max {
        for i in 0..n {
            if !best[k][i].is_finite() {
                continue;
            }
            let mut seg = depot;
            for j in i..n {
                seg = seg.then(p, &Segment::visit(p, tour[j]));
                if j > i && load_cap.is_some_and(|cap| seg.load > cap) {
                    break;
                }
                let cost = best[k][i] + pen.route_cost(&seg.then(p, &depot), p.capacity());
                if cost < best[k + 1][j + 1] {
                    best[k + 1][j + 1] = cost;
                    pred[k + 1][j + 1] = i;
                }
            }
        }
    }
    let k_best = (1..=k_max)
        .filter(|&k| best[k][n].is_finite())
        .min_by(|&a, &b| best[a][n].total_cmp(&best[b][n]))?;
    let mut routes = Vec::with_capacity(k_best);
    let (mut k, mut j) = (k_best, n);
    while j > 0 {
        let i = pred[k][j];
        routes.push(tour[i..j].to_vec());
        j = i;
        k -= 1;
    }
    routes.reverse();
    Some(routes)
}

fn unwind(tour: &[u32], pred: &[usize]) -> Vec<Vec<u32>> {
    let mut routes = Vec::new();
    let mut j = tour.len();
    while j > 0 {
        let i = pred[j];
        routes.push(tour[i..j].to_vec());
        j = i;
    }
    routes.reverse();
    routes
}
