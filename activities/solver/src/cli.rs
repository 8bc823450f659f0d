//! Command-line helpers behind `zengine route solve|bench` (feature `cli`): the only part of the
//! crate that touches the file system. Kept here, not in the binary, so the crate's example can
//! run the same code without building the Temporal-dependent `zengine` package.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{
    Control, Problem, SolveOptions, evaluate, format_cvrplib, nearest_neighbour, read, solve,
};

/// Error type of the helpers: a message for a human.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Reads an instance file, picking the format by extension (`.vrp` VRPLIB, else Solomon).
pub fn load_instance(path: &Path) -> Result<Problem, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let parsed = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("vrp"))
    {
        read::parse_vrplib(&text)
    } else {
        read::parse_solomon(&text)
    };
    parsed.map_err(|e| format!("{}: {e}", path.display()).into())
}

/// `zengine route solve`: solves one file and returns the CVRPLIB text. Feasibility and
/// unassigned customers are reported on stderr so stdout stays re-scorable.
pub fn solve_file(path: &Path, time_limit: Duration, seed: u64) -> Result<String, CliError> {
    let started = Instant::now();
    let problem = load_instance(path)?;
    let options = SolveOptions {
        time_limit: time_limit.saturating_sub(started.elapsed()),
        seed,
        ..SolveOptions::default()
    };
    let solution = solve(&problem, &options, |_| Control::Continue);
    let excused: Vec<usize> = solution.unassigned.iter().map(|u| u.customer).collect();
    let check = evaluate(&problem, &solution.routes, &excused);
    for u in &solution.unassigned {
        eprintln!("unassigned customer {}: {}", u.customer, u.reason);
    }
    if !check.is_feasible() {
        eprintln!("WARNING: solution is infeasible: {:?}", check.violations);
    }
    eprintln!(
        "{}: cost {} with {} routes, {} iterations in {:.2?}",
        problem.name,
        problem.format_cost(check.cost),
        check.vehicles,
        solution.iterations,
        started.elapsed()
    );
    Ok(format_cvrplib(&problem, &solution))
}

/// Expands `spec`: a file, a directory (its `.vrp` and `.txt` files, recursively), or a path
/// whose last component contains `*` wildcards. Several specs may be comma-separated.
pub fn expand_instances(spec: &str) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for part in spec.split(',').filter(|s| !s.is_empty()) {
        let path = PathBuf::from(part);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.contains('*') {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            let dir = dir.unwrap_or(Path::new("."));
            for entry in
                std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            {
                let entry = entry?.path();
                let file = entry.file_name().unwrap_or_default().to_string_lossy();
                if entry.is_file() && wildcard(&name, &file) {
                    out.push(entry);
                }
            }
        } else if path.is_dir() {
            collect_dir(&path, &mut out)?;
        } else if path.is_file() {
            out.push(path);
        } else {
            return Err(format!("no such instance file or directory: {part}").into());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CliError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_dir(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vrp") || e.eq_ignore_ascii_case("txt"))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|k| {
                    text.is_char_boundary(head.len() + k) && wildcard(rest, &text[head.len() + k..])
                })
        }
    }
}

/// One row of `bks.csv`.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Family for the table: the set letter for CVRP (A, B, …), `C1`/`R2`/… for Solomon.
    pub family: String,
    /// Best known cost in instance units, if one is reliable.
    pub bks: Option<f64>,
}

/// Reads `bks.csv` (columns `instance`, `set`, `bks_cost`; quoted fields allowed).
pub fn load_bks(path: &Path) -> Result<BTreeMap<String, Reference>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header = split_csv(lines.next().ok_or("empty bks.csv")?);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("bks.csv has no {name} column"))
    };
    let (ci, cs, cb) = (col("instance")?, col("set")?, col("bks_cost")?);
    let mut out = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = split_csv(line);
        let name = f.get(ci).cloned().unwrap_or_default();
        let set = f.get(cs).cloned().unwrap_or_default();
        let family = if set == "solomon" {
            name.chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect::<String>()
                + &name
                    .chars()
                    .filter(|c| c.is_ascii_digit())
                    .take(1)
                    .collect::<String>()
        } else {
            set
        };
        let bks = f.get(cb).and_then(|v| v.parse().ok());
        out.insert(name, Reference { family, bks });
    }
    Ok(out)
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
}

/// What `zengine route bench` runs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Instance files.
    pub instances: Vec<PathBuf>,
    /// Best known solutions by instance name (file stem).
    pub bks: BTreeMap<String, Reference>,
    /// One table column group per budget.
    pub time_limits: Vec<Duration>,
    /// Seeds `1..=seeds` per instance and budget.
    pub seeds: u64,
}

#[derive(Debug, Default, Clone)]
struct Runs {
    /// Per instance: per seed, (gap % if BKS known, feasible).
    gaps: Vec<Vec<(Option<f64>, bool)>>,
}

/// Runs the benchmark, printing one progress line per run to stderr, and returns the markdown
/// table. Every solution is re-scored by the independent evaluator; gaps use that cost.
pub fn bench(config: &BenchConfig) -> Result<String, CliError> {
    let mut families: BTreeMap<String, (Runs, Vec<Runs>)> = BTreeMap::new();
    // Instances where a run beat the BKS: (name, best cost, BKS, vehicles used).
    let mut below_bks: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    for path in &config.instances {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reference = config.bks.get(&name).cloned().unwrap_or(Reference {
            family: "other".into(),
            bks: None,
        });
        let gap = |cost: f64| reference.bks.map(|b| 100.0 * (cost - b) / b);
        let entry = families.entry(reference.family.clone()).or_insert_with(|| {
            (
                Runs::default(),
                vec![Runs::default(); config.time_limits.len()],
            )
        });

        let problem = load_instance(path)?;
        let nn = nearest_neighbour(&problem);
        let nn_eval = evaluate(&problem, &nn, &[]);
        let nn_cost = problem.to_instance_units(nn_eval.cost);
        entry
            .0
            .gaps
            .push(vec![(gap(nn_cost), nn_eval.is_feasible())]);

        for (t, &limit) in config.time_limits.iter().enumerate() {
            let mut per_seed = Vec::new();
            for seed in 1..=config.seeds {
                let started = Instant::now();
                // Parse again inside the budget: model construction counts.
                let problem = load_instance(path)?;
                let options = SolveOptions {
                    time_limit: limit.saturating_sub(started.elapsed()),
                    seed,
                    ..SolveOptions::default()
                };
                let solution = solve(&problem, &options, |_| Control::Continue);
                let wall = started.elapsed();
                let check = evaluate(&problem, &solution.routes, &[]);
                let cost = problem.to_instance_units(check.cost);
                let g = gap(cost);
                eprintln!(
                    "{name} t={:.1}s seed={seed}: cost {} gap {} feasible {} ({} it, {:.2?})",
                    limit.as_secs_f64(),
                    problem.format_cost(check.cost),
                    g.map_or("-".into(), |g| format!("{g:.2}%")),
                    check.is_feasible(),
                    solution.iterations,
                    wall
                );
                per_seed.push((g, check.is_feasible()));
                if let (Some(g), Some(bks)) = (g, reference.bks)
                    && g < -1e-9
                    && check.is_feasible()
                {
                    let entry =
                        below_bks
                            .entry(name.clone())
                            .or_insert((cost, bks, check.vehicles));
                    if cost < entry.0 {
                        *entry = (cost, bks, check.vehicles);
                    }
                }
            }
            entry.1[t].gaps.push(per_seed);
        }
    }

    let mut out = String::new();
    let mut header = "| family | instances | NN gap % |".to_owned();
    let mut rule = "|---|---|---|".to_owned();
    for limit in &config.time_limits {
        let s = limit.as_secs_f64();
        let _ = write!(
            header,
            " {s} s gap % | {s} s seed spread | {s} s feasible |"
        );
        rule.push_str("---|---|---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let mut all_nn = Runs::default();
    let mut all = vec![Runs::default(); config.time_limits.len()];
    for (family, (nn, per_limit)) in &families {
        all_nn.gaps.extend(nn.gaps.iter().cloned());
        for (t, r) in per_limit.iter().enumerate() {
            all[t].gaps.extend(r.gaps.iter().cloned());
        }
        out.push_str(&table_row(family, nn, per_limit));
    }
    out.push_str(&table_row("**all**", &all_nn, &all));
    if !below_bks.is_empty() {
        out.push_str(
            "\nFeasible runs below the BKS (the BKS of these assumes the fleet size in the \
             instance name, `-kN`; the convention here is an unlimited fleet):\n\n",
        );
        for (name, (cost, bks, vehicles)) in &below_bks {
            let _ = writeln!(
                out,
                "- {name}: best {cost} with {vehicles} routes, BKS {bks}"
            );
        }
    }
    Ok(out)
}

fn table_row(label: &str, nn: &Runs, per_limit: &[Runs]) -> String {
    let (nn_gap, _, _) = summarise(nn);
    let mut row = format!("| {label} | {} | {} |", nn.gaps.len(), fmt_gap(nn_gap));
    for r in per_limit {
        let (gap, spread, feasible) = summarise(r);
        let spread = spread.map_or("–".into(), |(lo, hi)| format!("{lo:.2}–{hi:.2}"));
        let _ = write!(
            row,
            " {} | {spread} | {:.0} % |",
            fmt_gap(gap),
            100.0 * feasible
        );
    }
    row.push('\n');
    row
}

fn fmt_gap(g: Option<f64>) -> String {
    g.map_or("–".into(), |g| format!("{g:.2}"))
}

/// Mean gap over all runs with a BKS; min/max over seeds of the per-seed mean gap; feasible
/// fraction over all runs.
fn summarise(r: &Runs) -> (Option<f64>, Option<(f64, f64)>, f64) {
    let runs: Vec<&(Option<f64>, bool)> = r.gaps.iter().flatten().collect();
    let feasible = runs.iter().filter(|(_, f)| *f).count() as f64 / runs.len().max(1) as f64;
    let gaps: Vec<f64> = runs.iter().filter_map(|(g, _)| *g).collect();
    let mean = (!gaps.is_empty()).then(|| gaps.iter().sum::<f64>() / gaps.len() as f64);
    let seeds = r.gaps.iter().map(Vec::len).max().unwrap_or(0);
    let per_seed: Vec<f64> = (0..seeds)
        .filter_map(|s| {
            let g: Vec<f64> = r
                .gaps
                .iter()
                .filter_map(|v| v.get(s).and_then(|x| x.0))
                .collect();
            (!g.is_empty()).then(|| g.iter().sum::<f64>() / g.len() as f64)
        })
        .collect();
    let spread = (!per_seed.is_empty()).then(|| {
        (
            per_seed.iter().copied().fold(f64::INFINITY, f64::min),
            per_seed.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    });
    (mean, spread, feasible)
}

/// Finds `bks.csv` next to or above the first instance.
pub fn find_bks(instances: &[PathBuf]) -> Option<PathBuf> {
    let mut dir = instances.first()?.parent()?.to_path_buf();
    for _ in 0..3 {
        let candidate = dir.join("bks.csv");
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = dir.parent()?.to_path_buf();
    }
    None
}

/// `zengine route bench`: expands `instances`, finds `bks.csv` unless given, runs [`bench`].
pub fn run_bench(
    instances: &str,
    bks: Option<&Path>,
    time_limits: &[f64],
    seeds: u64,
) -> Result<String, CliError> {
    let instances = expand_instances(instances)?;
    if instances.is_empty() {
        return Err("no instances matched".into());
    }
    let bks_path = match bks {
        Some(p) => p.to_path_buf(),
        None => find_bks(&instances).ok_or("no bks.csv beside the instances; pass --bks")?,
    };
    let config = BenchConfig {
        instances,
        bks: load_bks(&bks_path)?,
        time_limits: time_limits
            .iter()
            .map(|&s| Duration::try_from_secs_f64(s))
            .collect::<Result<_, _>>()
            .map_err(|_| "time limits must be non-negative numbers of seconds")?,
        seeds,
    };
    bench(&config)
}
