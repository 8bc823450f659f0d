//! Heterogeneous fleets: each vehicle's own capacity and shift, in the search and in the
//! independent evaluator.

use std::time::Duration;

use zengine_solver::{
    Control, Problem, ProblemError, SolveOptions, Unservable, Vehicle, Violation, evaluate,
    read::parse_solomon, solve,
};

use crate::helpers::{data_dir, load, solomon};

fn options(seed: u64, iterations: u64) -> SolveOptions {
    SolveOptions {
        time_limit: Duration::from_secs(600),
        seed,
        max_iterations: Some(iterations),
        ..SolveOptions::default()
    }
}

/// Times in tenths (DIMACS scale): the tiny instances' depot is open 0..=1000.
fn vehicle(capacity: i64, start: i64, end: i64) -> Vehicle {
    Vehicle {
        capacity,
        start,
        end,
    }
}

/// Load and return time of each route, re-simulated here with plain code (not the library's
/// evaluator), so the test checks the per-vehicle rules on its own.
fn check_routes(p: &Problem, routes: &[Vec<usize>]) {
    let vehicles = p.vehicles().expect("heterogeneous");
    assert!(routes.len() <= vehicles.len());
    for (k, route) in routes.iter().enumerate() {
        let v = vehicles[k];
        let load: i64 = route.iter().map(|&c| p.node(c).demand).sum();
        assert!(
            load <= v.capacity,
            "vehicle {k}: load {load} > {}",
            v.capacity
        );
        let (mut t, mut at) = (v.start, 0);
        for &c in route {
            let n = p.node(c);
            t = (t + p.time(at, c)).max(n.ready);
            assert!(
                t <= n.due,
                "vehicle {k}: customer {c} served at {t} > {}",
                n.due
            );
            t += n.service;
            at = c;
        }
        t += p.time(at, 0);
        assert!(t <= v.end, "vehicle {k}: back at {t} > shift end {}", v.end);
    }
}

#[test]
fn each_vehicle_carries_at_most_its_own_capacity() {
    // Four customers of demand 4 around the depot; a small van (4) and a truck (10).
    let p = parse_solomon(&solomon(
        2,
        &[
            (3, 4, 4, 0, 100, 1),
            (-3, 4, 4, 0, 100, 1),
            (-3, -4, 4, 0, 100, 1),
            (3, -4, 2, 0, 100, 1),
        ],
    ))
    .unwrap()
    .with_vehicles(vec![vehicle(4, 0, 1000), vehicle(10, 0, 1000)])
    .unwrap();
    let s = solve(&p, &options(1, 60), |_| Control::Continue);
    assert!(s.feasible);
    assert!(s.unassigned.is_empty());
    assert_eq!(s.routes.len(), 2, "one entry per vehicle");
    check_routes(&p, &s.routes);
    assert!(evaluate(&p, &s.routes, &[]).is_feasible());
    // The van takes exactly one demand-4 customer; the truck the rest (4 + 4 + 2).
    assert_eq!(s.routes[0].len(), 1);
    assert_eq!(s.routes[1].len(), 3);
}

#[test]
fn each_vehicle_works_within_its_own_shift() {
    // A far customer (50.0 away, 100.0 round trip) only fits the long shift; a late window
    // only fits the late-starting vehicle.
    let p = parse_solomon(&solomon(
        3,
        &[
            (30, 40, 1, 0, 100, 0),
            (3, 4, 1, 60, 70, 0),
            (-3, 4, 1, 0, 100, 0),
        ],
    ))
    .unwrap()
    .with_vehicles(vec![
        // early, short: 0..30
        vehicle(10, 0, 300),
        // late: 55..100
        vehicle(10, 550, 1000),
        // long: 0..100, but room for one customer only
        vehicle(1, 0, 1000),
    ])
    .unwrap();
    let s = solve(&p, &options(2, 60), |_| Control::Continue);
    assert!(s.feasible && s.unassigned.is_empty(), "{s:?}");
    check_routes(&p, &s.routes);
    assert_eq!(
        s.routes[2],
        vec![1],
        "only the long shift reaches the far customer"
    );
    assert!(
        s.routes[1].contains(&2),
        "the late window needs the late vehicle"
    );
}

#[test]
fn an_order_no_vehicle_can_serve_is_unassigned_with_the_blocking_reason() {
    let p = parse_solomon(&solomon(
        2,
        &[
            (3, 4, 1, 0, 100, 0),
            (-3, 4, 8, 0, 100, 0),   // above every capacity
            (30, 40, 3, 0, 100, 0),  // the only shift that reaches it carries 2
            (-30, 40, 1, 0, 100, 0), // 50.0 away: only the long shift, which has room
        ],
    ))
    .unwrap()
    .with_vehicles(vec![vehicle(5, 0, 300), vehicle(2, 0, 1000)])
    .unwrap();
    let s = solve(&p, &options(3, 40), |_| Control::Continue);
    let reasons: Vec<(usize, Unservable)> = s
        .unassigned
        .iter()
        .map(|u| (u.customer, u.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (2, Unservable::DemandExceedsCapacity),
            (3, Unservable::DemandExceedsCapacity),
        ]
    );
    check_routes(&p, &s.routes);
    assert!(evaluate(&p, &s.routes, &[2, 3]).is_feasible());

    // Shifts too short for the way back from a far customer: a timing reason.
    let p = parse_solomon(&solomon(1, &[(30, 40, 1, 0, 100, 0)]))
        .unwrap()
        .with_vehicles(vec![vehicle(5, 0, 300), vehicle(5, 200, 900)])
        .unwrap();
    assert_eq!(p.unservable(1), Some(Unservable::ReturnTooLate));
    let p = parse_solomon(&solomon(1, &[(30, 40, 1, 0, 40, 0)]))
        .unwrap()
        .with_vehicles(vec![vehicle(5, 0, 1000)])
        .unwrap();
    assert_eq!(p.unservable(1), Some(Unservable::WindowUnreachable));
}

#[test]
fn bad_vehicles_are_refused_naming_the_vehicle() {
    let base = || parse_solomon(&solomon(1, &[(3, 4, 1, 0, 100, 0)])).unwrap();
    assert_eq!(
        base().with_vehicles(vec![vehicle(3, 0, 10), vehicle(0, 0, 10)]),
        Err(ProblemError::VehicleCapacity {
            vehicle: 1,
            capacity: 0
        })
    );
    assert_eq!(
        base().with_vehicles(vec![vehicle(3, 50, 10)]),
        Err(ProblemError::InvertedShift {
            vehicle: 0,
            start: 50,
            end: 10
        })
    );
    assert_eq!(base().with_vehicles(vec![]), Err(ProblemError::NoVehicles));
}

#[test]
fn the_evaluator_checks_each_route_against_its_own_vehicle() {
    let p = parse_solomon(&solomon(2, &[(3, 4, 4, 0, 100, 0), (-3, 4, 4, 0, 100, 0)]))
        .unwrap()
        .with_vehicles(vec![vehicle(5, 0, 1000), vehicle(10, 0, 120)])
        .unwrap();
    // Both on the small vehicle: 8 > 5. Both on the big one: fits, but 5 + 6 + 5 = 16.0 > 12.0.
    assert_eq!(
        evaluate(&p, &[vec![1, 2], vec![]], &[]).violations,
        vec![Violation::Capacity { route: 0, load: 8 }]
    );
    assert_eq!(
        evaluate(&p, &[vec![], vec![1, 2]], &[]).violations,
        vec![Violation::DepotReturn {
            route: 1,
            arrival: 160,
            due: 120
        }]
    );
    assert!(evaluate(&p, &[vec![1], vec![2]], &[]).is_feasible());
    let e = evaluate(&p, &[vec![1], vec![], vec![2]], &[]);
    assert!(e.violations.contains(&Violation::NoVehicle { route: 2 }));
}

#[test]
fn mixed_fleets_on_a_shared_instance_stay_feasible_per_vehicle() {
    // R101 (capacity 200, 25 vehicles, depot open 0..230): a mixed fleet of trucks, vans and
    // shorter shifts. Every route must fit its own vehicle, every customer served or excused.
    let base = load(&data_dir().join("vrptw/R101.txt"));
    let horizon = base.node(0).due;
    let vehicles: Vec<Vehicle> = (0..30)
        .map(|k| match k % 3 {
            0 => vehicle(200, 0, horizon),
            1 => vehicle(120, 0, horizon),
            _ => vehicle(80, 0, horizon * 2 / 3),
        })
        .collect();
    let p = base.with_vehicles(vehicles).unwrap();
    for seed in 1..=2 {
        let s = solve(
            &p,
            &SolveOptions {
                time_limit: Duration::from_millis(1500),
                seed,
                ..SolveOptions::default()
            },
            |_| Control::Continue,
        );
        assert!(s.feasible, "seed {seed}");
        check_routes(&p, &s.routes);
        let excused: Vec<usize> = s.unassigned.iter().map(|u| u.customer).collect();
        let e = evaluate(&p, &s.routes, &excused);
        assert!(e.is_feasible(), "seed {seed}: {:?}", e.violations);
        assert_eq!(e.cost, s.cost);
        // Routes on the short-shift vans really are shorter in time (checked above) and some
        // vans are used: the search does not just ignore the smaller vehicles.
        assert!(e.vehicles > 10);
    }
}
