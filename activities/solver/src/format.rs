//! Solutions as text in the CVRPLIB solution format, both ways, so that any other evaluator can
//! re-score what `zengine route solve` prints.

use std::fmt::Write as _;

use crate::model::{NodeIndex, Problem};
use crate::search::Solution;

/// The solution in CVRPLIB format: `Route #k: c1 c2 …` (customers numbered 1..n in file order,
/// depot excluded), then `Cost X` in the instance's convention.
pub fn format_cvrplib(problem: &Problem, solution: &Solution) -> String {
    let mut out = String::new();
    for (k, route) in solution.routes.iter().enumerate() {
        let stops: Vec<String> = route.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(out, "Route #{}: {}", k + 1, stops.join(" "));
    }
    let _ = writeln!(out, "Cost {}", problem.format_cost(solution.cost));
    out
}

/// Reads the `Route #k: …` lines of a CVRPLIB solution back into routes (the `Cost` line and
/// anything else are ignored). Returns the offending line on malformed input.
pub fn parse_cvrplib(text: &str) -> Result<Vec<Vec<NodeIndex>>, String> {
    let mut routes = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("Route #") else {
            continue;
        };
        let (_, stops) = rest
            .split_once(':')
            .ok_or_else(|| format!("no ':' in {line:?}"))?;
        let route = stops
            .split_whitespace()
            .map(|t| {
                t.parse()
                    .map_err(|_| format!("bad customer {t:?} in {line:?}"))
            })
            .collect::<Result<Vec<NodeIndex>, String>>()?;
        routes.push(route);
    }
    Ok(routes)
}
