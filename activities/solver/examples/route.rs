//! The `zengine route` commands without the `zengine` binary (which needs the Temporal SDK to
//! build):
//!
//! ```text
//! cargo run -p zengine-solver --features cli --release --example route -- \
//!     solve --instance ../shared/data/routing/cvrp/A-n32-k5.vrp --time-limit 1 --seed 1
//! cargo run -p zengine-solver --features cli --release --example route -- \
//!     bench --time-limits 1,5 --seeds 5 --instances ../shared/data/routing
//! ```

use std::path::PathBuf;
use std::time::Duration;

use zengine_solver::cli;

fn main() {
    if let Err(e) = run() {
        eprintln!("route: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), cli::CliError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("solve") => {
            let instance = flag("--instance").ok_or("--instance FILE is required")?;
            let secs: f64 = flag("--time-limit").unwrap_or("1".into()).parse()?;
            let seed: u64 = flag("--seed").unwrap_or("1".into()).parse()?;
            let budget = Duration::try_from_secs_f64(secs)
                .map_err(|_| "--time-limit must be a non-negative number of seconds")?;
            let text = cli::solve_file(&PathBuf::from(instance), budget, seed)?;
            print!("{text}");
        }
        Some("bench") => {
            let limits = flag("--time-limits").unwrap_or("1,5".into());
            let limits: Vec<f64> = limits
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            let seeds: u64 = flag("--seeds").unwrap_or("5".into()).parse()?;
            let instances = flag("--instances").unwrap_or("../shared/data/routing".into());
            let bks = flag("--bks").map(PathBuf::from);
            print!("{}", cli::run_bench(&instances, bks.as_deref(), &limits, seeds)?);
        }
        _ => return Err("usage: route solve --instance FILE [--time-limit SECS] [--seed N] | \
                         route bench [--time-limits 1,5] [--seeds 5] [--instances SPEC] [--bks FILE]"
            .into()),
    }
    Ok(())
}
