//! The `ecs-build` command: operator-facing verbs over the workspace's library crates.
//!
//! It owns the command line, the machine.yml model and the image pipeline's orchestration.
//! Formats (env.yml, ISO 9660, disk layouts, packer, vagrant, paper backup) live in their
//! own crates; this crate wires them together and reports progress.

pub mod cli;
pub mod commands;
pub mod epoch;
pub mod error;
pub mod logging;
pub mod machine;
pub mod output;
pub mod pipeline;
