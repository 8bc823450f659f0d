//! `zengine route`: solve and benchmark vehicle-routing instances locally. Needs neither
//! Temporal nor a database; the work is done by `zengine_solver::cli`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use zengine_solver::cli;

#[derive(Subcommand)]
pub enum RouteCommand {
    /// Solve one instance (VRPLIB `.vrp` or Solomon `.txt`) and print the solution in CVRPLIB
    /// format (`Route #k: …` lines, then `Cost X`).
    Solve {
        /// Instance file.
        #[arg(long)]
        instance: PathBuf,
        /// Wall-clock budget in seconds, reading the instance included.
        #[arg(long, default_value_t = 1.0)]
        time_limit: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run the solver and the nearest-neighbour baseline over instance sets and print a
    /// markdown table of gaps to the best known solutions.
    Bench {
        /// Comma-separated budgets in seconds.
        #[arg(long, value_delimiter = ',', default_values_t = [1.0, 5.0])]
        time_limits: Vec<f64>,
        /// Seeds per instance and budget (1..=N).
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Instance files, directories or `dir/*pattern*` globs, comma-separated.
        #[arg(long, default_value = "../shared/data/routing")]
        instances: String,
        /// Best-known costs; default: the `bks.csv` beside or above the instances.
        #[arg(long)]
        bks: Option<PathBuf>,
    },
}

pub fn run(command: RouteCommand) -> anyhow::Result<()> {
    match command {
        RouteCommand::Solve {
            instance,
            time_limit,
            seed,
        } => {
            let budget = Duration::try_from_secs_f64(time_limit).map_err(|_| {
                anyhow::anyhow!("--time-limit must be a non-negative number of seconds")
            })?;
            let text =
                cli::solve_file(&instance, budget, seed).map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{text}");
        }
        RouteCommand::Bench {
            time_limits,
            seeds,
            instances,
            bks,
        } => {
            let table = cli::run_bench(&instances, bks.as_deref(), &time_limits, seeds)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{table}");
        }
    }
    Ok(())
}
