//! Instance readers: VRPLIB `.vrp` (CVRP, `EUC_2D`) and Solomon `.txt` (VRPTW, DIMACS
//! convention). Both take text, not paths, so callers decide where instances come from.

use std::io::Read;

use crate::model::{CostConvention, Matrix, NO_DEADLINE, Node, Problem, ProblemError};

/// Why an instance could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The reader failed.
    #[error("could not read the instance: {0}")]
    Io(#[from] std::io::Error),
    /// A malformed line (1-based `line`).
    #[error("line {line}: {message}")]
    #[allow(missing_docs)]
    Syntax { line: usize, message: String },
    /// A required key or section is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A section lacks the row of some node.
    #[error("node {node} has no {what}")]
    #[allow(missing_docs)]
    MissingNodeData { node: usize, what: &'static str },
    /// Valid VRPLIB this reader does not handle (another problem or edge-weight type).
    #[error("unsupported {what}: {value}")]
    #[allow(missing_docs)]
    Unsupported { what: &'static str, value: String },
    /// The file parses but describes an invalid problem.
    #[error("the instance describes an invalid problem: {0}")]
    Invalid(#[from] ProblemError),
}

fn syntax(line: usize, message: impl Into<String>) -> ReadError {
    ReadError::Syntax {
        line,
        message: message.into(),
    }
}

fn number<T: std::str::FromStr>(token: &str, line: usize, what: &str) -> Result<T, ReadError> {
    token
        .parse()
        .map_err(|_| syntax(line, format!("{what}: expected a number, found {token:?}")))
}

/// Reads a VRPLIB CVRP instance from any reader.
pub fn read_vrplib_from(mut reader: impl Read) -> Result<Problem, ReadError> {
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    parse_vrplib(&text)
}

/// Parses a VRPLIB CVRP instance (`EUC_2D`; arc cost `round(euclid)`; unlimited fleet unless a
/// `VEHICLES` key is present). The optional `TIME_WINDOW_SECTION` (`id ready due`, the depot's
/// row being its horizon) and `SERVICE_TIME_SECTION` (`id time`) make it a VRPTW with travel
/// time equal to the rounded distance.
pub fn parse_vrplib(text: &str) -> Result<Problem, ReadError> {
    #[derive(PartialEq)]
    enum Section {
        Header,
        Coords,
        Demands,
        Windows,
        Services,
        Depots,
    }
    let mut name = String::from("unnamed");
    let mut dimension: Option<usize> = None;
    let mut capacity: Option<i64> = None;
    let mut fleet: Option<usize> = None;
    let mut coords: Vec<Option<(f64, f64)>> = Vec::new();
    let mut demands: Vec<Option<i64>> = Vec::new();
    let mut windows: Vec<Option<(i64, i64)>> = Vec::new();
    let mut services: Vec<Option<i64>> = Vec::new();
    let mut depots: Vec<usize> = Vec::new();
    let mut depot_terminated = false;
    let mut seen = (false, false, false);
    let mut section = Section::Header;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line == "EOF" {
            break;
        }
        let upper = line.to_ascii_uppercase();
        if upper.ends_with("_SECTION") {
            let dim = dimension.ok_or_else(|| syntax(line_no, "section before DIMENSION"))?;
            section = match upper.as_str() {
                "NODE_COORD_SECTION" => {
                    seen.0 = true;
                    coords = vec![None; dim];
                    Section::Coords
                }
                "DEMAND_SECTION" => {
                    seen.1 = true;
                    demands = vec![None; dim];
                    Section::Demands
                }
                "TIME_WINDOW_SECTION" => {
                    windows = vec![None; dim];
                    Section::Windows
                }
                "SERVICE_TIME_SECTION" => {
                    services = vec![None; dim];
                    Section::Services
                }
                "DEPOT_SECTION" => {
                    seen.2 = true;
                    Section::Depots
                }
                other => {
                    return Err(ReadError::Unsupported {
                        what: "section",
                        value: other.to_owned(),
                    });
                }
            };
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            if section != Section::Header && !key.trim().chars().all(|c| c.is_ascii_digit()) {
                // A `KEY : VALUE` line after sections began is unusual but legal in VRPLIB.
                section = Section::Header;
            }
            if section == Section::Header {
                let value = value.trim();
                match key.trim().to_ascii_uppercase().as_str() {
                    "NAME" => name = value.to_owned(),
                    "TYPE" if !value.eq_ignore_ascii_case("CVRP") => {
                        return Err(ReadError::Unsupported {
                            what: "problem type",
                            value: value.to_owned(),
                        });
                    }
                    "DIMENSION" => dimension = Some(number(value, line_no, "DIMENSION")?),
                    "CAPACITY" => capacity = Some(number(value, line_no, "CAPACITY")?),
                    "VEHICLES" => fleet = Some(number(value, line_no, "VEHICLES")?),
                    "EDGE_WEIGHT_TYPE" if !value.eq_ignore_ascii_case("EUC_2D") => {
                        return Err(ReadError::Unsupported {
                            what: "EDGE_WEIGHT_TYPE (only EUC_2D)",
                            value: value.to_owned(),
                        });
                    }
                    _ => {}
                }
                continue;
            }
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match section {
            Section::Header => return Err(syntax(line_no, format!("unexpected line {line:?}"))),
            Section::Coords | Section::Demands | Section::Windows | Section::Services => {
                let want = match section {
                    Section::Coords | Section::Windows => 3,
                    _ => 2,
                };
                if tokens.len() != want {
                    return Err(syntax(
                        line_no,
                        format!("expected {want} fields, found {}", tokens.len()),
                    ));
                }
                let id: usize = number(tokens[0], line_no, "node id")?;
                let slot = id
                    .checked_sub(1)
                    .filter(|&i| i < dimension.unwrap_or(0))
                    .ok_or_else(|| syntax(line_no, format!("node id {id} out of range")))?;
                if section == Section::Coords {
                    let x: f64 = number(tokens[1], line_no, "x")?;
                    let y: f64 = number(tokens[2], line_no, "y")?;
                    coords[slot] = Some((x, y));
                } else if section == Section::Demands {
                    demands[slot] = Some(number(tokens[1], line_no, "demand")?);
                } else if section == Section::Windows {
                    let ready: f64 = number(tokens[1], line_no, "ready time")?;
                    let due: f64 = number(tokens[2], line_no, "due time")?;
                    windows[slot] = Some((ready.round() as i64, due.round() as i64));
                } else {
                    let service: f64 = number(tokens[1], line_no, "service time")?;
                    services[slot] = Some(service.round() as i64);
                }
            }
            Section::Depots => {
                for t in tokens {
                    let v: i64 = number(t, line_no, "depot id")?;
                    if v == -1 {
                        depot_terminated = true;
                    } else if v < 1 {
                        return Err(syntax(line_no, format!("invalid depot id {v}")));
                    } else {
                        depots.push(v as usize);
                    }
                }
            }
        }
    }

    let dim = dimension.ok_or(ReadError::Missing("DIMENSION"))?;
    let capacity = capacity.ok_or(ReadError::Missing("CAPACITY"))?;
    if !seen.0 {
        return Err(ReadError::Missing("NODE_COORD_SECTION"));
    }
    if !seen.1 {
        return Err(ReadError::Missing("DEMAND_SECTION"));
    }
    if !seen.2 || !depot_terminated {
        return Err(ReadError::Missing("DEPOT_SECTION (terminated by -1)"));
    }
    // A missing `EOF` is tolerated: truncation shows up as missing node data instead.
    let depot = match depots.as_slice() {
        [d] if *d <= dim => *d - 1,
        [d] => return Err(syntax(0, format!("depot {d} out of range"))),
        [] => return Err(ReadError::Missing("a depot id in DEPOT_SECTION")),
        _ => {
            return Err(ReadError::Unsupported {
                what: "number of depots",
                value: depots.len().to_string(),
            });
        }
    };
    if let Some(i) = coords.iter().position(Option::is_none) {
        return Err(ReadError::MissingNodeData {
            node: i + 1,
            what: "coordinates in NODE_COORD_SECTION",
        });
    }
    if let Some(i) = demands.iter().position(Option::is_none) {
        return Err(ReadError::MissingNodeData {
            node: i + 1,
            what: "demand in DEMAND_SECTION",
        });
    }
    if let Some(i) = windows.iter().position(Option::is_none) {
        return Err(ReadError::MissingNodeData {
            node: i + 1,
            what: "time window in TIME_WINDOW_SECTION",
        });
    }
    if let Some(i) = services.iter().position(Option::is_none) {
        return Err(ReadError::MissingNodeData {
            node: i + 1,
            what: "service time in SERVICE_TIME_SECTION",
        });
    }
    // Depot first, customers in file order.
    let order: Vec<usize> = std::iter::once(depot)
        .chain((0..dim).filter(|&i| i != depot))
        .collect();
    let points: Vec<(f64, f64)> = order.iter().map(|&i| coords[i].unwrap()).collect();
    let nodes: Vec<Node> = order
        .iter()
        .map(|&i| {
            let (x, y) = coords[i].unwrap();
            let demand = if i == depot { 0 } else { demands[i].unwrap() };
            let mut node = Problem::untimed_node(x, y, demand);
            if let Some(Some((ready, due))) = windows.get(i) {
                (node.ready, node.due) = (*ready, *due);
            }
            if let Some(Some(service)) = services.get(i) {
                node.service = if i == depot { 0 } else { *service };
            }
            node
        })
        .collect();
    let matrix = Matrix::from_coordinates(&points, CostConvention::RoundEuclid);
    Ok(Problem::new(
        name,
        nodes,
        capacity,
        fleet,
        matrix.clone(),
        matrix,
        CostConvention::RoundEuclid.scale(),
    )?)
}

/// Reads a Solomon VRPTW instance from any reader.
pub fn read_solomon_from(mut reader: impl Read) -> Result<Problem, ReadError> {
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    parse_solomon(&text)
}

/// Parses a Solomon VRPTW instance with the DIMACS convention: arc cost and travel time
/// `floor(10 * euclid) / 10` (stored in tenths), service starts within `[ready, due]`, return
/// to the depot by its due time, fleet limit from the `VEHICLE` section.
pub fn parse_solomon(text: &str) -> Result<Problem, ReadError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let (_, name) = lines.next().ok_or(ReadError::Missing("instance name"))?;
    let name = name.to_owned();
    let mut fleet_capacity: Option<(usize, i64)> = None;
    let mut in_customers = false;
    let mut rows: Vec<(usize, [f64; 7])> = Vec::new();
    for (line_no, line) in lines {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("VEHICLE") || upper.starts_with("NUMBER") {
            continue;
        }
        if upper.starts_with("CUSTOMER") || upper.starts_with("CUST") {
            if fleet_capacity.is_none() {
                return Err(ReadError::Missing("VEHICLE section (NUMBER CAPACITY)"));
            }
            in_customers = true;
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if !in_customers {
            if fleet_capacity.is_some() || tokens.len() != 2 {
                return Err(syntax(line_no, format!("unexpected line {line:?}")));
            }
            fleet_capacity = Some((
                number(tokens[0], line_no, "vehicle number")?,
                number(tokens[1], line_no, "capacity")?,
            ));
            continue;
        }
        if tokens.len() != 7 {
            return Err(syntax(
                line_no,
                format!("expected 7 fields per customer, found {}", tokens.len()),
            ));
        }
        let mut row = [0.0; 7];
        for (slot, token) in row.iter_mut().zip(&tokens) {
            *slot = number(token, line_no, "customer field")?;
        }
        rows.push((line_no, row));
    }
    let (fleet, capacity) = fleet_capacity.ok_or(ReadError::Missing("VEHICLE section"))?;
    if !in_customers {
        return Err(ReadError::Missing("CUSTOMER section"));
    }
    if rows.len() < 2 {
        return Err(ReadError::Missing(
            "customer rows (need the depot and at least one customer)",
        ));
    }
    for (expected, (line_no, row)) in rows.iter().enumerate() {
        if row[0] != expected as f64 {
            return Err(syntax(
                *line_no,
                format!(
                    "customers must be numbered 0, 1, 2…; expected {expected}, found {}",
                    row[0]
                ),
            ));
        }
    }
    let scale = CostConvention::TruncatedTenths.scale();
    let to_units = |v: f64| (v * scale as f64).round() as i64;
    let nodes: Vec<Node> = rows
        .iter()
        .map(|(_, r)| Node {
            x: r[1],
            y: r[2],
            demand: r[3].round() as i64,
            ready: to_units(r[4]),
            due: to_units(r[5]),
            service: to_units(r[6]),
        })
        .collect();
    let points: Vec<(f64, f64)> = nodes.iter().map(|n| (n.x, n.y)).collect();
    let matrix = Matrix::from_coordinates(&points, CostConvention::TruncatedTenths);
    debug_assert!(nodes.iter().all(|n| n.due < NO_DEADLINE));
    Ok(Problem::new(
        name,
        nodes,
        capacity,
        Some(fleet),
        matrix.clone(),
        matrix,
        scale,
    )?)
}

/// Parses either format, picking by content: VRPLIB files have `KEY : VALUE` headers.
pub fn parse_instance(text: &str) -> Result<Problem, ReadError> {
    let looks_vrplib = text
        .lines()
        .take(10)
        .any(|l| l.to_ascii_uppercase().contains("DIMENSION") && l.contains(':'));
    if looks_vrplib {
        parse_vrplib(text)
    } else {
        parse_solomon(text)
    }
}
