//! The `salesai` binary as users run it: real processes, real signals, both backends.

mod cli;
mod faults;
mod layers;
mod process;
mod slack;
mod stubs;
mod workers;

pub use process::*;
