//! `ecs-agent`: runs on the appliance. Brings it up at boot and reports what it did.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ecs_agent::context::Context;
use ecs_agent::{backup, first_user, lifecycle, lock, recover, start, status, update};

/// The ECS appliance agent.
#[derive(Parser)]
#[command(version, help_expected = true)]
struct Cli {
    /// Overrides of paths, ports and sockets (YAML); for tests and unusual installs.
    #[arg(long, global = true, value_name = "FILE")]
    context: Option<PathBuf>,
    /// Seconds a lifecycle command waits for another one to release the lifecycle lock
    /// (default: refuse at once; the timers' units wait).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 0)]
    wait_lock: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring the appliance up: env, storage, postgres, database, app-dirs, client-ca, tls, mail, containers.
    Start,
    /// Print the state of each step of the last start.
    Status {
        /// Print status.json as it is.
        #[arg(long)]
        json: bool,
    },
    /// Restore the backup (or a dump) on a running appliance: the current data is moved aside
    /// under /data/.recover-aside/, and moved back if anything fails.
    Recover {
        /// What to restore: the backup at appliance.backup.url (files and database) or a dump
        /// in /data/dump/ecs-postgres (database only).
        #[arg(long, value_enum, default_value = "backup")]
        from: recover::From,
        /// With --from backup: the backup as it was at this time (duplicity's time format,
        /// e.g. 2026-11-30T02:00:00 or 3D); default: the newest.
        #[arg(long, value_name = "T")]
        time: Option<String>,
        /// With --from dump: the dump file in /data/dump/ecs-postgres; default: the newest.
        #[arg(long, value_name = "FILE")]
        dump: Option<String>,
    },
    /// Dump the database and back up vault, dump and env.yml with duplicity to appliance.backup.url.
    Backup,
    /// Run another version of the app: build or load its images while the old one serves,
    /// migrate under a PRE_MIGRATE snapshot when its migrations differ, and roll back (snapshot
    /// merged, old version started) if it fails or does not get healthy.
    UpdateEcs {
        /// The version (git ref) to run; default: env.yml's ecs.git commitid, else branch.
        #[arg(long, value_name = "REF")]
        to: Option<String>,
    },
    /// Get or renew the TLS certificate (ACME, else self-signed) and reload the frontend.
    RenewTls,
    /// Check the app's client CA and CRL again, give them to the frontend and reload it (what
    /// ecs-agent-crl.path runs when the app writes a new CRL).
    ReloadFrontend,
    /// Run the app's migrations behind a PRE_MIGRATE snapshot of the data volume (rolled back
    /// if they fail); the app is stopped meanwhile.
    DatabaseMigrate,
    /// Remove a snapshot of the data volume (what the PRE_MIGRATE expiry timer runs).
    RemoveSnapshot {
        /// The snapshot.
        #[arg(default_value = ecs_agent::snapshot::PRE_MIGRATE)]
        name: String,
    },
    /// Load the host firewall (nftables table inet ecs_filter): the appliance's ports and
    /// env.yml's appliance.firewall.allow; docker's own tables are left alone.
    Firewall {
        /// Print the ruleset instead of loading it.
        #[arg(long)]
        print: bool,
    },
    /// Restart the frontend, containerd and docker when they run code an upgrade replaced
    /// (apt's DPkg::Post-Invoke hook runs it).
    AfterUpgrade,
    /// Create the office's first user (or reuse it) through the app's hooks, and mail it a client
    /// certificate valid one day as PKCS#12; its transport password is shown here, once.
    /// The user is env.yml's ecs.first_user, or all four arguments. Values starting with `-`
    /// are taken, to be refused by name rather than read as options.
    CreateFirstUser {
        /// The user's email address (login, and where the certificate goes).
        #[arg(long, value_name = "E", allow_hyphen_values = true)]
        email: Option<String>,
        /// First name.
        #[arg(long, value_name = "F", allow_hyphen_values = true)]
        first_name: Option<String>,
        /// Last name.
        #[arg(long, value_name = "L", allow_hyphen_values = true)]
        last_name: Option<String>,
        /// f or m.
        #[arg(long, value_name = "f|m", allow_hyphen_values = true)]
        gender: Option<String>,
    },
    /// Send root's new mail (root's Maildir under /volatile/mail) to Sentry, one event each,
    /// and mark it read; without appliance.sentry.dsn it stays there.
    MailToSentry,
    /// Write the "starting" page unless the frontend has a config (ecs-frontend's ExecStartPre).
    #[command(hide = true)]
    FrontendConfig,
    /// Record that the agent's unit failed (called by systemd's OnFailure).
    #[command(hide = true)]
    ReportFailure {
        /// The unit that failed.
        unit: String,
    },
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = match &cli.context {
        Some(p) => match Context::load(p) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e:#}");
                return Ok(ExitCode::from(2));
            }
        },
        None => Context::default(),
    };
    let wait = std::time::Duration::from_secs(cli.wait_lock);
    match cli.command {
        Command::Start => {
            let outcome = start::start(&ctx)?;
            Ok(ExitCode::from(outcome.exit_code() as u8))
        }
        Command::Status { json } => {
            let s = status::read(&ctx.status_file())?;
            // The data disk may not be mounted (a failed start): then there are no records to show.
            let records = lifecycle::read(&ctx).unwrap_or_default();
            let holder = lock::holder(&ctx);
            if json {
                let mut v = serde_json::to_value(&s)?;
                v["lifecycle"] = serde_json::to_value(&records)?;
                v["lock"] = serde_json::to_value(&holder)?;
                v["mail"] = serde_json::to_value(ecs_agent::mail::state(&ctx))?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", status::render(&s));
                print!("{}", lifecycle::render(&records));
                if let Some(mail) = ecs_agent::mail::state(&ctx) {
                    print!("{mail}");
                }
                if let Some(h) = holder {
                    println!("lock: `ecs-agent {}` (pid {}) is running", h.command, h.pid);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Recover { from, time, dump } => {
            let req = recover::Request { from, time, dump };
            let wait = std::time::Duration::from_secs(cli.wait_lock);
            let code = lifecycle::run(&ctx, "recover", wait, |job| recover::run(job, &req));
            Ok(ExitCode::from(code as u8))
        }
        Command::Backup => {
            let code = lifecycle::run(&ctx, "backup", Duration::from_secs(cli.wait_lock), backup::run);
            Ok(ExitCode::from(code as u8))
        }
        Command::UpdateEcs { to } => Ok(exit(lifecycle::run(&ctx, "update-ecs", wait, |job| {
            update::run(job, to.as_deref())
        }))),
        Command::RenewTls => {
            let msg = start::renew_tls(&ctx)?;
            println!("ecs-agent: renew-tls ok: {msg}");
            Ok(ExitCode::SUCCESS)
        }
        Command::ReloadFrontend => {
            let msg = start::reload_frontend(&ctx)?;
            println!("ecs-agent: reload-frontend ok: {msg}");
            Ok(ExitCode::SUCCESS)
        }
        Command::DatabaseMigrate => Ok(exit(lifecycle::run(
            &ctx,
            "database-migrate",
            wait,
            ecs_agent::migrate::command,
        ))),
        Command::RemoveSnapshot { name } => Ok(exit(lifecycle::run(&ctx, "remove-snapshot", wait, |job| {
            ecs_agent::migrate::remove_command(job, &name)
        }))),
        Command::Firewall { print } => {
            ecs_agent::firewall::command(&ctx, print)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AfterUpgrade => {
            ecs_agent::upgrade::command()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CreateFirstUser {
            email,
            first_name,
            last_name,
            gender,
        } => {
            let args = first_user::Args {
                email,
                first_name,
                last_name,
                gender,
            };
            Ok(exit(lifecycle::run(&ctx, "create-first-user", wait, |job| {
                first_user::command(job, &args)
            })))
        }
        Command::MailToSentry => {
            let msg = ecs_agent::mail::sentry::command(&ctx)?;
            println!("ecs-agent: mail-to-sentry ok: {msg}");
            Ok(ExitCode::SUCCESS)
        }
        Command::FrontendConfig => {
            ecs_agent::frontend::write_initial(&ctx)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ReportFailure { unit } => {
            start::report_failure(&ctx, &unit)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code as u8)
}

fn main() -> ExitCode {
    init_logging();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", host_util::redact_urls(&format!("{e:#}")));
            let config = e.chain().any(|c| c.is::<ecs_agent::userdata::ConfigError>());
            ExitCode::from(if config { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every unit shipped in agent/systemd/ calls commands this binary has, and the boot unit
    /// has its restart policy and failure hook.
    #[test]
    fn units_call_existing_commands() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
        let mut units = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            units.insert(name, std::fs::read_to_string(&path).unwrap());
        }
        for (name, text) in &units {
            assert!(text.contains("\nDescription="), "{name}: no Description=");
            for line in text.lines().filter(|l| l.starts_with("Exec")) {
                let cmd = line.split_once('=').unwrap().1;
                if let Some(args) = cmd.strip_prefix("/usr/local/bin/ecs-agent") {
                    let argv = std::iter::once("ecs-agent").chain(args.split_whitespace());
                    if let Err(e) = Cli::try_parse_from(argv) {
                        panic!("{name}: {line}: {e}");
                    }
                }
            }
        }
        let boot = &units["ecs-agent.service"];
        for want in [
            "Restart=on-failure",
            "OnFailure=ecs-agent-failed.service",
            "StandardOutput=journal+console",
        ] {
            assert!(boot.contains(want), "ecs-agent.service lacks {want}");
        }
        assert!(units.contains_key("ecs-agent-failed.service"));
        assert!(boot.contains("After=network-online.target") && boot.contains("label-cidata.device"));
        for (name, text) in &units {
            let installs = text.contains("\n[Install]\nWantedBy=");
            // A timer's or path unit's service is started by it.
            let timer = name.strip_suffix(".service").is_some_and(|base| {
                units.contains_key(&format!("{base}.timer")) || units.contains_key(&format!("{base}.path"))
            });
            let triggered = name.ends_with("-failed.service") || timer;
            assert!(
                installs || triggered,
                "{name}: neither installed nor triggered by another unit"
            );
        }
    }
}
