//! Steps `postgres` and `database`: start the database service, then decide, as the seed has
//! it, what the application database becomes when it is missing or empty: restored from the
//! backup (duplicity), restored from a dump, or created new. A populated database is never
//! touched; a restore never runs over files already in the storage vault.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::appdef::AppDef;
use crate::context::Context;
use crate::docker::{Compose, check_alive};
use crate::envfile::Settings;
use crate::recover;

/// The application database as found.
#[derive(Debug, PartialEq, Eq)]
pub enum DbState {
    Missing,
    Empty,
    /// Number of tables and views in its public schema (an extension's own do not count).
    Populated(u64),
}

/// Tables and views in `public` that no extension owns: pg_stat_statements puts its views there,
/// and a database that has only those is empty.
pub const APP_TABLES: &str = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
     AND d.objid = c.oid AND d.deptype = 'e')";

/// Where the filtered restore list is written, in the dump directory (the one place the host
/// and the database container share); removed after the restore.
const RESTORE_LIST: &str = ".ecs-agent-restore.list";

pub struct Db<'a> {
    pub compose: &'a Compose,
    pub def: &'a AppDef,
    pub name: String,
}

/// psql as `user` on `database` in the database container, stopping at the first error; `tail`
/// says where the SQL comes from.
fn psql_argv<'a>(user: &'a str, database: &'a str, tail: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        user,
        "-d",
        database,
    ];
    argv.extend_from_slice(tail);
    argv
}

impl Db<'_> {
    /// Runs SQL as the superuser in the database container; returns unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let d = &self.def.database;
        self.compose
            .exec(&d.service, &psql_argv(&d.superuser, database, &["-tAc", sql]))
            .with_context(|| format!("running SQL in database {database}"))
    }

    /// Network logins need a password: the owner role gets `password` (as a SCRAM verifier, on
    /// stdin), the superuser none, so it logs in only on the container's socket (`docker exec`);
    /// a `trust` rule for network connections left by an older cluster becomes scram-sha-256.
    pub fn secure(&self, password: &str) -> anyhow::Result<()> {
        let d = &self.def.database;
        let (owner, superuser) = (&d.owner, &d.superuser);
        let sql = format!(
            "SET password_encryption = 'scram-sha-256';\n\
             DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') THEN CREATE ROLE \"{owner}\" LOGIN; END IF; END$$;\n\
             ALTER ROLE \"{owner}\" LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '{}';\n\
             ALTER ROLE \"{superuser}\" PASSWORD NULL;\n",
            crate::scram::verifier(password)?
        );
        self.compose
            .exec_input(
                &d.service,
                &psql_argv(superuser, "postgres", &["-f", "-"]),
                sql.as_bytes(),
            )
            .context("setting the database owner's password")?;
        let trusted = self.psql(
            "postgres",
            "SELECT count(*) FROM pg_hba_file_rules WHERE type <> 'local' AND auth_method = 'trust'",
        )?;
        if trusted.trim() != "0" {
            tracing::warn!(
                "the database trusts network connections (pg_hba.conf): switching them to scram-sha-256"
            );
            self.compose
                .exec(
                    &d.service,
                    &[
                        "sh",
                        "-c",
                        "f=$(psql -X -tA -U \"$1\" -d postgres -c 'SHOW hba_file') && \
                         sed -i -E 's/^([[:space:]]*host[a-z]*[[:space:]].*[[:space:]])trust([[:space:]]*(#.*)?)$/\\1scram-sha-256\\2/' \"$f\" && \
                         psql -X -q -U \"$1\" -d postgres -c 'SELECT pg_reload_conf()'",
                        "sh",
                        superuser,
                    ],
                )
                .context("switching pg_hba.conf's trust rules for network connections to scram-sha-256")?;
            let left = self.psql(
                "postgres",
                "SELECT count(*) FROM pg_hba_file_rules WHERE type <> 'local' AND auth_method = 'trust'",
            )?;
            if left.trim() != "0" {
                bail!(
                    "pg_hba.conf still trusts network connections after the rewrite ({} rules); fix it by hand",
                    left.trim()
                );
            }
        }
        Ok(())
    }

    pub fn state(&self) -> anyhow::Result<DbState> {
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{}'", self.name),
        )?;
        if exists.trim().is_empty() {
            return Ok(DbState::Missing);
        }
        let n: u64 = self
            .psql(&self.name, APP_TABLES)?
            .trim()
            .parse()
            .context("parsing the table count")?;
        Ok(if n == 0 {
            DbState::Empty
        } else {
            DbState::Populated(n)
        })
    }

    /// Whether the public schema has `table` (the premigrate condition).
    pub fn has_table(&self, table: &str) -> anyhow::Result<bool> {
        let found = self.psql(
            &self.name,
            &format!("SELECT to_regclass('public.{table}') IS NOT NULL"),
        )?;
        Ok(found.trim() == "t")
    }

    /// Names of the extensions in the database.
    fn extensions(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .psql(&self.name, "SELECT extname FROM pg_extension")?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Creates the owner role (if missing), the database (if missing; an empty one is given to
    /// the owner) and, as the superuser, the definition's extensions.
    pub fn create(&self) -> anyhow::Result<()> {
        let owner = &self.def.database.owner;
        self.psql(
            "postgres",
            &format!("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') THEN CREATE ROLE \"{owner}\" LOGIN; END IF; END$$"),
        )?;
        if self.state()? == DbState::Missing {
            self.psql(
                "postgres",
                &format!(
                    "CREATE DATABASE \"{}\" OWNER \"{owner}\" TEMPLATE template0 ENCODING 'UTF8'",
                    self.name
                ),
            )?;
        } else {
            // Made by someone else: PostgreSQL 15 lets only the database owner create tables in
            // `public` (the original appliance, too, gave an existing database to app).
            self.psql(
                "postgres",
                &format!("ALTER DATABASE \"{}\" OWNER TO \"{owner}\"", self.name),
            )?;
        }
        for ext in &self.def.database.extensions {
            self.psql(&self.name, &format!("CREATE EXTENSION IF NOT EXISTS \"{ext}\""))
                .with_context(|| format!("creating extension {ext} (x-ecs.database.extensions)"))?;
        }
        Ok(())
    }

    /// Restores a custom-format dump (optionally gzipped) from the dump directory into a new database.
    pub fn restore_dump(&self, host_file: &Path, dump_dir_host: &Path) -> anyhow::Result<()> {
        let rel = host_file.strip_prefix(dump_dir_host).with_context(|| {
            format!(
                "{}: dumps are read from {}",
                host_file.display(),
                dump_dir_host.display()
            )
        })?;
        let inside = format!(
            "{}/{}",
            self.def.database.dump_dir.trim_end_matches('/'),
            rel.display()
        );
        self.create()?;
        let d = &self.def.database;
        let gz = inside.ends_with(".gz");
        // The dump's table of contents, less the entries the owner may not restore.
        let read = if gz {
            "gzip -dc \"$1\" | pg_restore -l"
        } else {
            "pg_restore -l \"$1\""
        };
        let toc = self
            .compose
            .exec(&d.service, &["sh", "-c", read, "sh", &inside])
            .with_context(|| format!("reading the table of contents of {}", host_file.display()))?;
        let list = RemoveOnDrop(dump_dir_host.join(RESTORE_LIST));
        host_util::write_atomic(
            &list.0,
            skip_extensions(&toc, &self.extensions()?).as_bytes(),
            0o644,
        )
        .with_context(|| format!("writing {}", list.0.display()))?;
        let list_inside = format!("{}/{RESTORE_LIST}", d.dump_dir.trim_end_matches('/'));
        let restore = format!(
            "pg_restore -U \"$1\" -d \"$2\" --no-owner --role=\"$3\" --exit-on-error --single-transaction -L \"$5\"{}",
            if gz { "" } else { " \"$4\"" }
        );
        let script = if gz {
            format!("gzip -dc \"$4\" | {restore}")
        } else {
            restore
        };
        self.compose
            .exec(
                &d.service,
                &[
                    "sh",
                    "-c",
                    &script,
                    "sh",
                    &d.superuser,
                    &self.name,
                    &d.owner,
                    &inside,
                    &list_inside,
                ],
            )
            .with_context(|| format!("restoring {}", host_file.display()))?;
        Ok(())
    }
}

/// The dump `ecs-agent backup` writes and the restore reads first: `<database>.pgdump`.
pub fn dump_name(database: &str) -> String {
    format!("{database}.pgdump")
}

/// A file removed on drop.
pub(crate) struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A `pg_restore -l` list with the entries for `present` extensions commented out: the
/// extension itself and its comment. The superuser made them already (plpgsql, and those of
/// x-ecs.database.extensions); restoring them as the owner fails (`must be owner of extension`).
fn skip_extensions(toc: &str, present: &[String]) -> String {
    let mut out = String::with_capacity(toc.len());
    for line in toc.lines() {
        // `<id>; <tableoid> <oid> EXTENSION - <name> ...`, `<id>; 0 0 COMMENT - EXTENSION <name> ...`
        let words: Vec<&str> = line
            .split_once("; ")
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let name = match words.as_slice() {
            [_, _, "EXTENSION", "-", name, ..] | [_, _, "COMMENT", "-", "EXTENSION", name, ..] => Some(*name),
            _ => None,
        };
        if name.is_some_and(|n| present.iter().any(|p| p == n)) {
            out.push(';');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Step `postgres`: starts the database service, waits until it answers, and secures its
/// network logins (`Db::secure`).
pub fn start(ctx: &Context, compose: &Compose, def: &AppDef, password: &str) -> anyhow::Result<String> {
    let svc = &def.database.service;
    compose.up(std::slice::from_ref(svc))?;
    let db = Db {
        compose,
        def,
        name: "postgres".into(),
    };
    let deadline = Instant::now() + Duration::from_secs(ctx.database_timeout_secs);
    loop {
        match db.psql("postgres", "SELECT 1") {
            Ok(_) => break,
            Err(e) => {
                // Fails at once when the container stopped or turned unhealthy.
                check_alive(&compose.docker, &compose.project, svc)?;
                if Instant::now() > deadline {
                    return Err(e.context(format!(
                        "database service {svc} not ready after {}s",
                        ctx.database_timeout_secs
                    )));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    db.secure(password)?;
    Ok(format!(
        "service {svc} accepts connections; network logins need a password (scram-sha-256)"
    ))
}

/// Runs one of the definition's hooks in a fresh container of its service.
pub fn hook(compose: &Compose, def: &AppDef, name: &str, argv: &[String]) -> anyhow::Result<()> {
    tracing::info!("running hook {name}");
    compose
        .run(&def.hooks.service, argv)
        .with_context(|| format!("running the {name} hook"))?;
    Ok(())
}

/// `migrate`, then `bootstrap`: ECS runs its bootstrap after every migrate (it is idempotent and
/// brings what the new code expects, e.g. workflow and checklist definitions, into the database).
pub fn migrate(compose: &Compose, def: &AppDef) -> anyhow::Result<()> {
    hook(compose, def, "migrate", &def.hooks.migrate)?;
    if let Some(b) = &def.hooks.bootstrap {
        hook(compose, def, "bootstrap", b)?;
    }
    Ok(())
}

fn dir_is_empty(dir: &Path) -> anyhow::Result<bool> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .is_none())
}

/// The dump to restore: `name` (env.yml's `ecs.recover.dump_filename` or `recover --dump`,
/// relative to the dump directory or absolute inside it), else the newest `*.pgdump*` there
/// (`ecs-agent backup` writes `<database>.pgdump`, through a temporary name without `.pgdump`).
pub fn find_dump(ctx: &Context, name: Option<&str>) -> anyhow::Result<PathBuf> {
    let dir = ctx.dump_dir();
    if let Some(name) = name {
        let p = dir.join(name);
        if !p.is_file() {
            bail!("dump {} does not exist", p.display());
        }
        let inside = p
            .canonicalize()
            .ok()
            .zip(dir.canonicalize().ok())
            .is_some_and(|(p, d)| p.starts_with(d));
        if !inside {
            bail!(
                "dump {}: dumps are read from {} (the directory the database service mounts)",
                p.display(),
                dir.display()
            );
        }
        return Ok(p);
    }
    let mut dumps: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".pgdump"))
        })
        .collect();
    dumps.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    dumps
        .pop()
        .with_context(|| format!("no dump (*.pgdump, *.pgdump.gz) in {}", dir.display()))
}

/// What a restore restores from.
pub enum Source {
    /// A backup fetched into scratch, moved into place by the restore.
    Backup(recover::Fetched),
    /// A dump in the dump directory.
    Dump(PathBuf),
}

/// Restores `source` into the (missing or empty) application database, then premigrate (for
/// an old dump), migrate and bootstrap: what the boot does with `ecs.recover.*`, and what
/// `ecs-agent recover` does after moving the old data aside.
pub fn restore(
    ctx: &Context,
    compose: &Compose,
    def: &AppDef,
    settings: &Settings,
    source: Source,
) -> anyhow::Result<String> {
    let db = Db {
        compose,
        def,
        name: settings.database.clone(),
    };
    let mut how = match source {
        Source::Backup(fetched) => {
            let shown = fetched.shown.clone();
            let dump = fetched.install(ctx)?;
            db.restore_dump(&dump, &ctx.dump_dir())?;
            format!("restored from backup {shown}")
        }
        Source::Dump(dump) => {
            db.restore_dump(&dump, &ctx.dump_dir())?;
            format!("restored from dump {}", dump.display())
        }
    };
    if let Some(pre) = &def.hooks.premigrate {
        if db.has_table(&pre.if_table_missing)? {
            tracing::info!("table {} present: no premigrate", pre.if_table_missing);
        } else {
            hook(compose, def, "premigrate", &pre.command)?;
            how.push_str(&format!(", premigrated (no table {})", pre.if_table_missing));
        }
    }
    migrate(compose, def)?;
    Ok(format!("{how}, migrated"))
}

/// Step `database`: the seed's decision.
pub fn decide(ctx: &Context, compose: &Compose, def: &AppDef, settings: &Settings) -> anyhow::Result<String> {
    let db = Db {
        compose,
        def,
        name: settings.database.clone(),
    };
    let state = db.state()?;
    if let DbState::Populated(n) = state {
        return Ok(format!("database {} present ({n} tables), kept", db.name));
    }
    let vault = ctx.data_dir.join("ecs-storage-vault");
    let source = if settings.recover_from_backup {
        if !dir_is_empty(&vault)? {
            bail!(
                "refusing to restore the backup over {} which holds files; move them away first",
                vault.display()
            );
        }
        Source::Backup(
            recover::fetch_backup(ctx, settings, None)
                .context("ecs.recover.from_backup is set, but the backup cannot be restored")?,
        )
    } else if settings.recover_from_dump {
        Source::Dump(find_dump(ctx, settings.dump_filename.as_deref())?)
    } else {
        db.create()?;
        migrate(compose, def)?;
        return Ok(format!(
            "database {} was {}, created new",
            db.name,
            if state == DbState::Missing {
                "missing"
            } else {
                "empty"
            }
        ));
    };
    restore(ctx, compose, def, settings, source)
}

#[cfg(test)]
mod tests {
    use super::skip_extensions;

    #[test]
    fn restore_list_skips_present_extensions_only() {
        let toc = "; Archive created at 2026-01-01\n;\n\
                   3; 3079 16385 EXTENSION - pg_stat_statements \n\
                   4; 0 0 COMMENT - EXTENSION pg_stat_statements \n\
                   5; 3079 16420 EXTENSION - hstore \n\
                   218; 1259 16433 TABLE public items app\n\
                   3350; 0 16433 TABLE DATA public items app\n";
        let list = skip_extensions(toc, &["plpgsql".into(), "pg_stat_statements".into()]);
        assert_eq!(
            list,
            "; Archive created at 2026-01-01\n;\n\
             ;3; 3079 16385 EXTENSION - pg_stat_statements \n\
             ;4; 0 0 COMMENT - EXTENSION pg_stat_statements \n\
             5; 3079 16420 EXTENSION - hstore \n\
             218; 1259 16433 TABLE public items app\n\
             3350; 0 16433 TABLE DATA public items app\n"
        );
    }
}
