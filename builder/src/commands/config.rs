//! `ecs-build config new|check|seed|dns`: an appliance's env.yml with fresh key material, its
//! cloud-init seed and paper backup; checking it; re-making the seed; its DNS records.
//! The env.yml model and key generation live in `appliance_env`; this module wires files,
//! flags and exit codes (every user mistake is `BadInput`, exit 2) around it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use appliance_env::Env;
use appliance_env::keygen::{self, OsRng};
use clap::Args;

use crate::error::BadInput;
use crate::output::Outputs;
use crate::pipeline::seed;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The appliance's domain, e.g. ecs.example.org.
    #[arg(long)]
    pub domain: String,
    /// An operator's SSH public key file to authorize (repeatable).
    #[arg(long = "ssh-key", value_name = "FILE.pub")]
    pub ssh_keys: Vec<PathBuf>,
    /// YAML whose values are merged over the generated defaults.
    #[arg(long, value_name = "extra.yml")]
    pub extra: Option<PathBuf>,
    /// Output folder (default: a folder named after the domain), created 0700 when missing.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing env.yml, seed.iso or env.pdf there (other files are left alone).
    #[arg(long)]
    pub force: bool,
}

/// Reads an operator's public key file: every non-comment line must be an OpenSSH public key.
fn read_ssh_keys(path: &Path) -> anyhow::Result<Vec<keygen::AuthorizedKey>> {
    let text = read_env_text(path)
        .map_err(|e| BadInput::new(format!("--ssh-key {}: reading: {e}", path.display())))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = keygen::parse_authorized_key(line)
            .map_err(|e| BadInput::new(format!("--ssh-key {}:{}: {e}", path.display(), i + 1)))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(BadInput::new(format!(
            "--ssh-key {}: expected an OpenSSH public key, found none",
            path.display()
        ))
        .into());
    }
    Ok(keys)
}

/// An env.yml-sized text file: a regular file, at most `MAX_ENV_BYTES`, UTF-8.
fn read_env_text(path: &Path) -> std::io::Result<String> {
    let bytes = host_util::read_regular(path, appliance_env::MAX_ENV_BYTES as u64)?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn bad_env(err: appliance_env::EnvError) -> anyhow::Error {
    BadInput::new(err.to_string()).into()
}

fn warn_all(warnings: &[appliance_env::Warning]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}

/// What `config new` writes into its folder, in this order: all of them are secrets.
const NEW_FILES: [&str; 3] = ["env.yml", "seed.iso", "env.pdf"];

/// `config new`'s folder: an existing directory is used as it is; a missing one is made 0700
/// and removed again (if still empty) when the command fails.
struct OutFolder {
    created: Option<PathBuf>,
}

impl OutFolder {
    fn open(out: &Path) -> anyhow::Result<OutFolder> {
        match fs::metadata(out) {
            Ok(m) if m.is_dir() => return Ok(OutFolder { created: None }),
            Ok(_) => {
                return Err(BadInput::new(format!(
                    "--out {}: not a directory; config new writes env.yml, seed.iso and env.pdf \
                     into a folder (not even --force replaces a file by one)",
                    out.display()
                ))
                .into());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("--out {}", out.display())),
        }
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(out)
            .with_context(|| format!("creating {}", out.display()))?;
        let folder = OutFolder {
            created: Some(out.to_path_buf()),
        };
        fs::set_permissions(out, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", out.display()))?;
        Ok(folder)
    }

    fn keep(mut self) {
        self.created = None;
    }
}

impl Drop for OutFolder {
    fn drop(&mut self) {
        if let Some(dir) = self.created.take() {
            let _ = fs::remove_dir(dir);
        }
    }
}

impl NewArgs {
    pub fn run(self) -> anyhow::Result<()> {
        // Everything the operator gave is checked before any key is made or file written.
        appliance_env::check_domain(&self.domain).map_err(|e| BadInput::new(format!("--domain: {e}")))?;
        let mut operator_keys = Vec::new();
        for path in &self.ssh_keys {
            operator_keys.extend(read_ssh_keys(path)?);
        }
        let extra = match &self.extra {
            Some(path) => Some((
                read_env_text(path)
                    .map_err(|e| BadInput::new(format!("--extra {}: reading: {e}", path.display())))?,
                path.display().to_string(),
            )),
            None => None,
        };
        let out = self.out.clone().unwrap_or_else(|| PathBuf::from(&self.domain));
        let folder = OutFolder::open(&out)?;
        let mut outputs = Outputs::new(self.force);
        let mut temps = Vec::new();
        for name in NEW_FILES {
            temps.push(outputs.add(&out.join(name), true)?);
        }
        let ts = crate::epoch::source_date_epoch_or_now()?;

        tracing::info!("generating key material for {}", self.domain);
        let mut env = Env::generate(&self.domain, &mut OsRng, SystemTime::now()).map_err(|e| match e {
            keygen::GenerateError::Domain(m) => anyhow::Error::new(BadInput::new(format!("--domain: {m}"))),
            other => anyhow::Error::new(other).context("generating key material"),
        })?;
        if let Some((text, file)) = &extra {
            let (merged, warnings) = env.merge_yaml_str(text, file).map_err(bad_env)?;
            warn_all(&warnings);
            env = merged;
        }
        for key in &operator_keys {
            if !env.ssh_authorized_keys.contains(&key.line) {
                env.ssh_authorized_keys.push(key.line.clone());
            }
        }
        env.validate("env.yml").map_err(bad_env)?;

        let yaml = env.to_yaml();
        // The file we write must read back as exactly this env.
        let (reread, _) =
            Env::from_yaml_str(&yaml, "env.yml (generated)").context("re-reading the generated env.yml")?;
        anyhow::ensure!(
            reread == env,
            "the generated env.yml does not read back as written"
        );
        let bytes = yaml.into_bytes();
        let seed = seed::image(&env, &bytes, ts, false).context("writing the seed ISO")?;
        let pdf = paper_backup::print_pdf(&bytes, &self.domain, ts).context("printing env.pdf")?;

        for (temp, data) in temps.iter().zip([&bytes, &seed, &pdf]) {
            outputs.write(temp, data)?;
        }
        outputs.commit()?;
        folder.keep();

        println!("SSH host keys of {}:", self.domain);
        for (name, public) in env.ssh_keys.iter().filter(|(k, _)| k.ends_with("_public")) {
            if let Ok(key) = keygen::parse_authorized_key(public) {
                println!("  {} {}", key.fingerprint, name.trim_end_matches("_public"));
            }
        }
        for name in NEW_FILES {
            println!("wrote {}", out.join(name).display());
        }
        println!("env.yml and seed.iso hold every secret of the appliance: keep them private.");
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The env.yml to validate.
    pub env: PathBuf,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let (_, warnings) = Env::load(&self.env).map_err(bad_env)?;
        warn_all(&warnings);
        println!(
            "{}: valid ({} warning{})",
            self.env.display(),
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        );
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The env.yml to package.
    pub env: PathBuf,
    /// Output file (written 0600: it holds env.yml).
    #[arg(short, long, value_name = "seed.iso")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Write a FAT image labelled cidata instead of ISO 9660.
    #[arg(long)]
    pub vfat: bool,
}

impl SeedArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut outputs = Outputs::new(self.force);
        let temp = outputs.add(&self.output, true)?;
        let bytes = host_util::read_regular(&self.env, appliance_env::MAX_ENV_BYTES as u64)
            .map_err(|e| BadInput::new(format!("reading {}: {e}", self.env.display())))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| BadInput::new(format!("{}: expected UTF-8 text: {e}", self.env.display())))?;
        let (env, warnings) = Env::from_yaml_str(text, &self.env.display().to_string()).map_err(bad_env)?;
        warn_all(&warnings);
        let ts = crate::epoch::source_date_epoch_or_now()?;
        let image = seed::image(&env, &bytes, ts, self.vfat)
            .map_err(|e| BadInput::new(format!("{}: {e}", self.env.display())))?;
        outputs.write(&temp, &image)?;
        outputs.commit()?;
        println!(
            "wrote {} (it holds env.yml: keep it private)",
            self.output.display()
        );
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The env.yml whose domain and DKIM key to use.
    pub env: PathBuf,
}

impl DnsArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let (env, warnings) = Env::load(&self.env).map_err(bad_env)?;
        warn_all(&warnings);
        let records =
            keygen::dns_records(&env).map_err(|e| BadInput::new(format!("{}: {e}", self.env.display())))?;
        print!("{records}");
        Ok(())
    }
}
