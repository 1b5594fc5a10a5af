//! The subcommands other than `run`, as library functions: `main.rs` only parses arguments
//! and maps results to exit codes.

pub mod check_config;
pub mod demo;
pub mod operator;
pub mod simulate;
pub mod status;
