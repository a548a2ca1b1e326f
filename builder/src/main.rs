//! `ecs-build`: the operator's and CI's entry point. Parses the command line and hands each
//! leaf command to its module; all logic lives in `ecs_build` and the workspace's library crates.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ecs_build::cli::Cli::parse();
    ecs_build::logging::init(cli.json);
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = ecs_build::error::exit_code(&err);
            // One line, whole chain: readable in a terminal and in CI logs alike.
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}
