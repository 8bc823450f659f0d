#![warn(missing_docs)]
//! `zengine-solver`: vehicle routing without I/O. Read an instance ([`read`]), or build a
//! [`Problem`] from your own matrix; [`solve`] it with the hybrid genetic search; check any
//! routes with the independent [`evaluate`]; compare against [`nearest_neighbour`].
//!
//! ```
//! use std::time::Duration;
//! use zengine_solver::{Control, SolveOptions, evaluate, read, solve};
//!
//! let text = "T\n\nVEHICLE\nNUMBER CAPACITY\n 2 10\n\nCUSTOMER\nCUST NO. X Y DEMAND READY DUE SERVICE\n\
//!             0 0 0 0 0 100 0\n1 3 4 5 0 50 1\n2 -3 4 5 0 50 1\n";
//! let problem = read::parse_solomon(text)?;
//! let options = SolveOptions { time_limit: Duration::from_millis(50), ..Default::default() };
//! let solution = solve(&problem, &options, |_| Control::Continue);
//! assert!(evaluate(&problem, &solution.routes, &[]).is_feasible());
//! # Ok::<(), zengine_solver::read::ReadError>(())
//! ```

mod baseline;
#[cfg(feature = "cli")]
pub mod cli;
mod eval;
mod format;
mod model;
pub mod read;
mod rng;
mod search;

pub use baseline::nearest_neighbour;
pub use eval::{Evaluation, Violation, evaluate};
pub use format::{format_cvrplib, parse_cvrplib};
pub use model::{
    CostConvention, Matrix, NO_DEADLINE, Node, NodeIndex, Problem, ProblemError, Unservable,
    Vehicle,
};
pub use search::{Control, Progress, Solution, SolveOptions, StopReason, Unassigned, solve};
