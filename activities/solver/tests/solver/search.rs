use std::time::Duration;

use zengine_solver::{
    Control, SolveOptions, StopReason, Unservable, evaluate, format_cvrplib, nearest_neighbour,
    parse_cvrplib, read::parse_solomon, solve,
};

use crate::helpers::{data_dir, load, solomon, tiny};

fn options(seed: u64, iterations: u64) -> SolveOptions {
    SolveOptions {
        time_limit: Duration::from_secs(600),
        seed,
        max_iterations: Some(iterations),
        ..SolveOptions::default()
    }
}

#[test]
fn same_seed_and_iteration_limit_give_the_same_solution() {
    // 140 iterations: the 100 random starts of the initial population, then 40 offspring.
    let p = load(&data_dir().join("vrptw/C105.txt"));
    let a = solve(&p, &options(11, 140), |_| Control::Continue);
    let b = solve(&p, &options(11, 140), |_| Control::Continue);
    assert_eq!(a.stop, StopReason::IterationLimit);
    assert_eq!(a.routes, b.routes);
    assert_eq!(a.cost, b.cost);
}

#[test]
fn tiny_instance_is_solved_to_optimality() {
    let p = tiny();
    let s = solve(&p, &options(1, 50), |_| Control::Continue);
    let e = evaluate(&p, &s.routes, &[]);
    assert!(e.is_feasible());
    // Two routes of two neighbours 6.0 apart: 2 × (5 + 6 + 5).
    assert_eq!(s.cost, 320);
    assert_eq!(e.cost, s.cost);
}

#[test]
fn unservable_customers_are_reported_with_a_reason_not_dropped() {
    let p = parse_solomon(&solomon(
        3,
        &[
            (3, 4, 1, 0, 50, 0),
            (-3, 4, 11, 0, 50, 0),  // demand above capacity
            (30, 40, 1, 0, 20, 0),  // 50.0 away, due at 20
            (30, 40, 1, 0, 80, 30), // reachable at 50, back at 50 + 30 + 50 = 130 > 100
        ],
    ))
    .unwrap();
    let s = solve(&p, &options(1, 20), |_| Control::Continue);
    let reasons: Vec<(usize, Unservable)> = s
        .unassigned
        .iter()
        .map(|u| (u.customer, u.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (2, Unservable::DemandExceedsCapacity),
            (3, Unservable::WindowUnreachable),
            (4, Unservable::ReturnTooLate)
        ]
    );
    assert_eq!(s.routes, vec![vec![1]]);
    assert!(evaluate(&p, &s.routes, &[2, 3, 4]).is_feasible());
}

#[test]
fn progress_callback_can_cancel_and_the_best_solution_is_returned() {
    let p = load(&data_dir().join("cvrp/A-n32-k5.vrp"));
    let mut calls = 0;
    let opts = SolveOptions {
        time_limit: Duration::from_secs(60),
        progress_interval: Duration::from_millis(10),
        ..SolveOptions::default()
    };
    let s = solve(&p, &opts, |progress| {
        calls += 1;
        if progress.best_cost.is_some() && calls >= 3 {
            Control::Stop
        } else {
            Control::Continue
        }
    });
    assert_eq!(s.stop, StopReason::Cancelled);
    assert!(s.elapsed < Duration::from_secs(30));
    assert!(s.feasible);
    assert!(evaluate(&p, &s.routes, &[]).is_feasible());
}

#[test]
fn nearest_neighbour_visits_everyone_within_capacity() {
    let p = load(&data_dir().join("cvrp/E-n51-k5.vrp"));
    let routes = nearest_neighbour(&p);
    let e = evaluate(&p, &routes, &[]);
    assert!(e.is_feasible(), "{:?}", e.violations);
}

#[test]
fn printed_solution_can_be_read_back_and_rescored() {
    let p = load(&data_dir().join("vrptw/C101.txt"));
    let s = solve(&p, &options(2, 12), |_| Control::Continue);
    let text = format_cvrplib(&p, &s);
    assert!(text.starts_with("Route #1: "));
    let cost_line = text.lines().last().expect("a cost line");
    assert_eq!(cost_line, format!("Cost {}", p.format_cost(s.cost)));
    let routes = parse_cvrplib(&text).expect("well-formed");
    assert_eq!(routes, s.routes);
    let e = evaluate(&p, &routes, &[]);
    assert!(e.is_feasible());
    assert_eq!(p.format_cost(e.cost), cost_line["Cost ".len()..]);
}
