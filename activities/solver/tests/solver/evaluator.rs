use zengine_solver::{Violation, evaluate, read::parse_solomon};

use crate::helpers::{solomon, tiny};

#[test]
fn a_valid_solution_is_feasible_and_costed_per_arc() {
    let p = tiny();
    // Each customer is 5.0 from the depot; adjacent customers are 6.0 or 8.0 apart.
    let e = evaluate(&p, &[vec![1, 2], vec![3, 4]], &[]);
    assert!(e.is_feasible(), "{:?}", e.violations);
    assert_eq!(e.vehicles, 2);
    assert_eq!(e.cost, (5 + 6 + 5 + 5 + 6 + 5) * 10);
}

#[test]
fn overloaded_route_is_reported() {
    let p = tiny();
    let e = evaluate(&p, &[vec![1, 2, 3], vec![4]], &[]);
    assert_eq!(
        e.violations,
        vec![Violation::Capacity { route: 0, load: 12 }]
    );
}

#[test]
fn late_service_start_is_reported() {
    // Customer 2 is due at 10 but lies 10.0 from customer 1, which is 5.0 from the depot.
    let p = parse_solomon(&solomon(2, &[(3, 4, 1, 0, 50, 0), (-3, -4, 1, 0, 10, 0)])).unwrap();
    let e = evaluate(&p, &[vec![1, 2]], &[]);
    assert_eq!(
        e.violations,
        vec![Violation::TimeWindow {
            route: 0,
            customer: 2,
            start: 150,
            due: 100
        }]
    );
    assert!(evaluate(&p, &[vec![2, 1]], &[]).is_feasible());
}

#[test]
fn late_return_to_the_depot_is_reported() {
    // Served at 90 for 8; back at 103 > 100.
    let p = parse_solomon(&solomon(1, &[(3, 4, 1, 90, 95, 8)])).unwrap();
    let e = evaluate(&p, &[vec![1]], &[]);
    assert_eq!(
        e.violations,
        vec![Violation::DepotReturn {
            route: 0,
            arrival: 1030,
            due: 1000
        }]
    );
}

#[test]
fn missing_and_duplicate_customers_are_reported() {
    let p = tiny();
    let e = evaluate(&p, &[vec![1, 2], vec![2, 4]], &[]);
    assert!(e.violations.contains(&Violation::Missing { customer: 3 }));
    assert!(e.violations.contains(&Violation::Duplicate { customer: 2 }));
}

#[test]
fn depot_or_unknown_node_inside_a_route_is_reported() {
    let p = tiny();
    let e = evaluate(&p, &[vec![1, 2, 0], vec![3, 4, 9]], &[]);
    assert!(
        e.violations
            .contains(&Violation::InvalidNode { route: 0, node: 0 })
    );
    assert!(
        e.violations
            .contains(&Violation::InvalidNode { route: 1, node: 9 })
    );
}

#[test]
fn exceeding_the_fleet_is_reported_and_empty_routes_do_not_count() {
    let p = parse_solomon(&solomon(
        2,
        &[
            (3, 4, 1, 0, 50, 0),
            (-3, 4, 1, 0, 50, 0),
            (0, 5, 1, 0, 50, 0),
        ],
    ))
    .unwrap();
    let e = evaluate(&p, &[vec![1], vec![2], vec![3]], &[]);
    assert_eq!(e.violations, vec![Violation::Fleet { used: 3, limit: 2 }]);
    assert!(evaluate(&p, &[vec![1, 3], vec![], vec![2]], &[]).is_feasible());
}

#[test]
fn only_truly_unservable_customers_may_be_excused() {
    // Customer 2 demands 11 > capacity 10.
    let p = parse_solomon(&solomon(2, &[(3, 4, 1, 0, 50, 0), (-3, 4, 11, 0, 50, 0)])).unwrap();
    assert!(evaluate(&p, &[vec![1]], &[2]).is_feasible());
    let e = evaluate(&p, &[vec![2]], &[1]);
    assert!(e.violations.contains(&Violation::Missing { customer: 1 }));
}
