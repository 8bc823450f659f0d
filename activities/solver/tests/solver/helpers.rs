use std::path::PathBuf;

use zengine_solver::{Node, Problem, read};

/// `shared/data/routing`, which lives beside the repository checkout. `ZENGINE_SHARED_DIR`
/// (set by `make test` at run time) wins over the compile-time location, so a test binary
/// reused from another checkout still finds the data beside the checkout being tested.
pub fn data_dir() -> PathBuf {
    let shared = std::env::var_os("ZENGINE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("data/routing");
    assert!(
        dir.join("cvrp").is_dir() && dir.join("vrptw").is_dir(),
        "routing data not found at {}: the tests expect the shared/ folder (with \
         data/routing/cvrp and data/routing/vrptw) beside the repository checkout",
        dir.display()
    );
    dir
}

/// Every instance file of one family folder (`cvrp` or `vrptw`), sorted.
pub fn instance_files(family: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir().join(family))
        .expect("readable data dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "vrp" || e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no instances in {family}");
    files
}

pub fn load(path: &std::path::Path) -> Problem {
    let text = std::fs::read_to_string(path).expect("readable instance");
    let parsed = if path.extension().is_some_and(|e| e == "vrp") {
        read::parse_vrplib(&text)
    } else {
        read::parse_solomon(&text)
    };
    parsed.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tiny Solomon-format instance: depot at the origin open 0..=100, capacity 10.
/// Customer rows are `(x, y, demand, ready, due, service)`.
pub fn solomon(fleet: usize, customers: &[(i64, i64, i64, i64, i64, i64)]) -> String {
    let mut text = format!(
        "TINY\n\nVEHICLE\nNUMBER     CAPACITY\n  {fleet}         10\n\nCUSTOMER\n\
         CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME\n\n\
         0 0 0 0 0 100 0\n"
    );
    for (i, (x, y, d, r, due, s)) in customers.iter().enumerate() {
        text.push_str(&format!("{} {x} {y} {d} {r} {due} {s}\n", i + 1));
    }
    text
}

/// Four customers on a 3-4-5 grid around the depot, all easy to serve.
pub fn tiny() -> Problem {
    read::parse_solomon(&solomon(
        4,
        &[
            (3, 4, 4, 0, 100, 1),
            (-3, 4, 4, 0, 100, 1),
            (-3, -4, 4, 0, 100, 1),
            (3, -4, 4, 0, 100, 1),
        ],
    ))
    .expect("valid tiny instance")
}

#[allow(dead_code)]
pub fn node(x: f64, y: f64, demand: i64) -> Node {
    Problem::untimed_node(x, y, demand)
}
