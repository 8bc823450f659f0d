//! Every shared instance, solved with a short iteration budget, must come out feasible under
//! the independent evaluator, with the cost the search claims.

use std::time::Duration;

use zengine_solver::{Control, SolveOptions, evaluate, solve};

use crate::helpers::{instance_files, load};

/// A fixed iteration cap keeps the test's runtime predictable in debug builds, where the
/// search is ~20× slower than in release; the time limit is only a safety net.
fn check_family(family: &str) {
    let mut failures = Vec::new();
    for path in instance_files(family) {
        let p = load(&path);
        let options = SolveOptions {
            time_limit: Duration::from_secs(5),
            seed: 1,
            max_iterations: Some(8),
            ..SolveOptions::default()
        };
        let s = solve(&p, &options, |_| Control::Continue);
        let e = evaluate(&p, &s.routes, &[]);
        if !s.feasible || !e.is_feasible() || e.cost != s.cost {
            failures.push(format!(
                "{}: feasible {} / evaluator {:?}, cost {} vs {}",
                path.display(),
                s.feasible,
                e.violations,
                s.cost,
                e.cost
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_cvrp_instance_is_solved_feasibly() {
    check_family("cvrp");
}

#[test]
fn every_vrptw_instance_is_solved_feasibly() {
    check_family("vrptw");
}
