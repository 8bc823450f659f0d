use zengine_solver::read::{ReadError, parse_instance, parse_solomon, parse_vrplib};

use crate::helpers::{data_dir, solomon};

fn a_n32() -> String {
    std::fs::read_to_string(data_dir().join("cvrp/A-n32-k5.vrp")).expect("A-n32-k5")
}

#[test]
fn vrplib_instance_is_read_with_depot_first_and_rounded_distances() {
    let p = parse_vrplib(&a_n32()).expect("valid");
    assert_eq!(p.num_customers(), 31);
    assert_eq!(p.capacity(), 100);
    assert_eq!(p.fleet(), None);
    assert_eq!(p.scale(), 1);
    // Depot (82, 76) to node 2 (96, 44): sqrt(14² + 32²) = 34.93 → 35.
    assert_eq!(p.dist(0, 1), 35);
    assert_eq!(p.node(1).demand, 19);
}

#[test]
fn solomon_instance_uses_truncated_tenths_and_the_file_fleet() {
    let text = std::fs::read_to_string(data_dir().join("vrptw/C101.txt")).expect("C101");
    let p = parse_solomon(&text).expect("valid");
    assert_eq!(p.num_customers(), 100);
    assert_eq!(p.fleet(), Some(25));
    assert_eq!(p.capacity(), 200);
    assert_eq!(p.scale(), 10);
    // Depot (40, 50) to customer 1 (45, 68): sqrt(25 + 324) = 18.681 → 18.6 → 186 tenths.
    assert_eq!(p.dist(0, 1), 186);
    assert_eq!(p.node(1).ready, 9120);
    assert_eq!(p.node(1).service, 900);
    assert_eq!(p.format_cost(8273), "827.3");
}

#[test]
fn format_detection_reads_both_kinds() {
    assert_eq!(
        parse_instance(&a_n32()).expect("vrplib").num_customers(),
        31
    );
    let tiny = solomon(2, &[(1, 1, 1, 0, 50, 0)]);
    assert_eq!(parse_instance(&tiny).expect("solomon").num_customers(), 1);
}

#[test]
fn truncated_vrplib_file_is_rejected() {
    let text = a_n32();
    let demands = text.find("DEMAND_SECTION").expect("has demands");
    let line_end = demands + 40 + text[demands + 40..].find('\n').expect("more lines");
    // Cut at a line boundary: the file just stops.
    let err = parse_vrplib(&text[..line_end + 1]).unwrap_err();
    assert!(matches!(err, ReadError::Missing(_)), "{err}");
    // Cut inside a line: the half line is malformed.
    let line_start = text[..line_end].rfind('\n').expect("a line") + 1;
    let err = parse_vrplib(&text[..line_start + 2]).unwrap_err();
    assert!(matches!(err, ReadError::Syntax { .. }), "{err}");
}

#[test]
fn non_numeric_vrplib_coordinate_names_the_line() {
    let text = a_n32().replacen(" 2 96 44", " 2 96 forty-four", 1);
    let err = parse_vrplib(&text).unwrap_err();
    match err {
        ReadError::Syntax { line, ref message } => {
            assert_eq!(line, 9);
            assert!(message.contains("forty-four"), "{message}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn vrplib_without_demand_section_is_rejected() {
    let text = a_n32();
    let start = text.find("DEMAND_SECTION").expect("has demands");
    let end = text.find("DEPOT_SECTION").expect("has depot");
    let stripped = format!("{}{}", &text[..start], &text[end..]);
    let err = parse_vrplib(&stripped).unwrap_err();
    assert!(err.to_string().contains("DEMAND_SECTION"), "{err}");
}

#[test]
fn vrplib_with_another_edge_weight_type_is_unsupported() {
    let text = a_n32().replace("EUC_2D", "GEO");
    assert!(matches!(
        parse_vrplib(&text).unwrap_err(),
        ReadError::Unsupported { .. }
    ));
}

#[test]
fn truncated_solomon_file_is_rejected() {
    let text = solomon(2, &[(1, 1, 1, 0, 50, 0), (2, 2, 1, 0, 50, 0)]);
    let cut = &text[..text.len() - 6];
    let err = parse_solomon(cut).unwrap_err();
    assert!(
        matches!(err, ReadError::Syntax { .. }),
        "a cut customer row must be a syntax error, got {err}"
    );
}

#[test]
fn non_numeric_solomon_field_is_rejected() {
    let text = solomon(2, &[(1, 1, 1, 0, 50, 0)]).replace("1 1 1 1 0 50 0", "1 1 1 x 0 50 0");
    assert!(matches!(
        parse_solomon(&text).unwrap_err(),
        ReadError::Syntax { .. }
    ));
}

#[test]
fn solomon_without_vehicle_section_is_rejected() {
    let text = "NAME\n\nCUSTOMER\n0 0 0 0 0 100 0\n1 1 1 1 0 50 0\n";
    assert!(matches!(
        parse_solomon(text).unwrap_err(),
        ReadError::Missing(_)
    ));
}

#[test]
fn solomon_window_that_ends_before_it_starts_is_a_typed_problem_error() {
    let text = solomon(2, &[(1, 1, 1, 60, 50, 0)]);
    let err = parse_solomon(&text).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::Invalid(zengine_solver::ProblemError::InvertedTimeWindow { node: 1, .. })
        ),
        "{err}"
    );
}

#[test]
fn solomon_with_zero_vehicles_is_a_typed_problem_error() {
    let text = solomon(0, &[(1, 1, 1, 0, 50, 0)]);
    assert!(matches!(
        parse_solomon(&text).unwrap_err(),
        ReadError::Invalid(zengine_solver::ProblemError::NoVehicles)
    ));
}

#[test]
fn vrplib_time_window_and_service_sections_make_a_vrptw() {
    let text = "NAME : tw\nTYPE : CVRP\nDIMENSION : 3\nEDGE_WEIGHT_TYPE : EUC_2D\nCAPACITY : 10\n\
                VEHICLES : 2\nNODE_COORD_SECTION\n1 0 0\n2 3 4\n3 6 8\nDEMAND_SECTION\n1 0\n2 1\n3 1\n\
                TIME_WINDOW_SECTION\n1 0 100\n2 10 20\n3 0 50\nSERVICE_TIME_SECTION\n1 0\n2 5\n3 5\n\
                DEPOT_SECTION\n1\n-1\n";
    let p = parse_vrplib(text).expect("valid without EOF too");
    assert!(p.has_time_windows());
    assert_eq!(p.fleet(), Some(2));
    assert_eq!(
        (p.node(1).ready, p.node(1).due, p.node(1).service),
        (10, 20, 5)
    );
    assert_eq!(p.node(0).due, 100);
    let missing = text.replace("3 0 50\n", "");
    assert!(matches!(
        parse_vrplib(&missing).unwrap_err(),
        ReadError::MissingNodeData { node: 3, .. }
    ));
}
