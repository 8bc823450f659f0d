//! Integration tests of `zengine-solver`: one binary, one module per concern.

mod evaluator;
mod fleet;
mod helpers;
mod instances;
mod readers;
mod search;
