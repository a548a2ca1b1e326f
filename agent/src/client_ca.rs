//! Client certificates: the app's CA, seeded from env.yml when the app has none, and the
//! frontend's verification against it.
//!
//! The app keeps its CA under the data dir (`x-ecs.client-ca`, ECS: /data/ecs-ca with
//! ca.cert.pem and crl.pem). nginx gets a checked copy under run_dir/frontend/client-ca: a CA
//! whose CRL does not parse, is not the CA's, or has expired would make nginx refuse every
//! certificate (or its config check fail), so such a pair is not taken. In its place goes a
//! placeholder CA made once per boot whose key is thrown away: `optional` verification still
//! works (the headers say NONE) and no certificate verifies.
//!
//! nginx sets X-SSL-Client-Verify, -Serial and -S-DN itself from the TLS session (frontend.rs),
//! overwriting what a client sends, and drops header names with underscores, which the app's
//! WSGI server would read as the same names.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber, SigningKey,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::appdef::{AppDef, ClientCa};
use crate::context::Context;
use crate::envfile::Settings;

/// How long the CRL seeded with the CA is valid: as long as the CA itself (`ecs-build config
/// new` makes it for ten years); the app issues newer CRLs when it revokes.
pub const SEED_CRL_DAYS: i64 = 3650;

/// The app's CA files on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub crl: PathBuf,
    pub key: Option<PathBuf>,
}

pub fn paths(ctx: &Context, ca: &ClientCa) -> Paths {
    let dir = ctx.data_dir.join(&ca.dir);
    Paths {
        cert: dir.join(&ca.cert),
        crl: dir.join(&ca.crl),
        key: ca.key.as_ref().map(|k| dir.join(k)),
        dir,
    }
}

/// Checks `x-ecs.client-ca`: every path relative, without `..`.
pub fn check_def(ca: &ClientCa) -> Result<(), String> {
    crate::appdirs::rel_path("x-ecs.client-ca.dir", &ca.dir)?;
    crate::appdirs::rel_path("x-ecs.client-ca.cert", &ca.cert)?;
    crate::appdirs::rel_path("x-ecs.client-ca.crl", &ca.crl)?;
    if let Some(k) = &ca.key {
        crate::appdirs::rel_path("x-ecs.client-ca.key", k)?;
    }
    Ok(())
}

/// Where the frontend's copy lives (run_dir: made anew at every boot).
fn state_dir(ctx: &Context) -> PathBuf {
    ctx.frontend_dir().join("client-ca")
}

/// What nginx verifies against and how: written last, so the directives are emitted only
/// once the pair is in place.
const VERIFY_FILE: &str = "verify";

/// Step client-ca: seeds the app's CA from env.yml when the app definition asks for it (it
/// names the key file) and the CA is not there, then gives the frontend the CA to verify with.
pub fn run(ctx: &Context, settings: &Settings, def: &AppDef) -> anyhow::Result<String> {
    let seeded = match &def.client_ca {
        Some(ca) => seed(ctx, settings, ca)?,
        None => None,
    };
    let msg = install(ctx, settings, Some(def))?;
    Ok(match seeded {
        Some(s) => format!("{s}; {msg}"),
        None => msg,
    })
}

/// Seeds the CA: key (0600) first, then an empty CRL signed with it, then the certificate,
/// each owned as the CA dir is (app-dirs gives it the app's ids). An existing certificate is
/// never replaced. None: nothing to seed (no key file in the definition, or a CA exists).
fn seed(ctx: &Context, settings: &Settings, ca: &ClientCa) -> anyhow::Result<Option<String>> {
    let p = paths(ctx, ca);
    let Some(key_path) = &p.key else {
        return Ok(None);
    };
    if p.cert.exists() {
        return Ok(None);
    }
    let Some((cert_pem, key_pem)) = &settings.client_ca else {
        return Ok(Some(
            "env.yml has no appliance.ssl.client_ca to seed the app's CA from".into(),
        ));
    };
    // A key the app made itself (its certificate not written yet) is the app's, not ours.
    if let Ok(existing) = std::fs::read_to_string(key_path)
        && existing.trim() != key_pem.trim()
    {
        return Ok(Some(format!(
            "{} exists without {}: the app's own CA key, not seeded",
            key_path.display(),
            p.cert.display()
        )));
    }
    let key = KeyPair::from_pem(key_pem).map_err(|e| {
        anyhow::anyhow!("env.yml appliance.ssl.client_ca.key: expected a PKCS#8 PEM private key ({e})")
    })?;
    let issuer = Issuer::from_ca_cert_pem(cert_pem, &key).map_err(|e| {
        anyhow::anyhow!("env.yml appliance.ssl.client_ca.cert: expected a CA certificate in PEM ({e})")
    })?;
    let now = OffsetDateTime::now_utc();
    let crl = crl_pem(&issuer, now, now + Duration::days(SEED_CRL_DAYS), 1, &[])
        .context("signing the seeded CA's first CRL")?;

    if !p.dir.is_dir() {
        std::fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
        set_mode(&p.dir, 0o700)?;
    }
    let meta = std::fs::metadata(&p.dir).with_context(|| format!("reading {}", p.dir.display()))?;
    let owner = (meta.uid(), meta.gid());
    write_owned(&p.dir, key_path, key_pem.as_bytes(), 0o600, owner)?;
    write_owned(&p.dir, &p.crl, crl.as_bytes(), 0o644, owner)?;
    write_owned(&p.dir, &p.cert, cert_pem.as_bytes(), 0o644, owner)?;
    Ok(Some("seeded from env.yml".into()))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// Writes `path` below `base` atomically with `owner`; directories between are made 0700
/// with the same owner.
fn write_owned(base: &Path, path: &Path, bytes: &[u8], mode: u32, owner: (u32, u32)) -> anyhow::Result<()> {
    let parent = path.parent().unwrap_or(base);
    if !parent.is_dir() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let mut d = parent;
        while d != base && d.starts_with(base) {
            set_mode(d, 0o700)?;
            std::os::unix::fs::chown(d, Some(owner.0), Some(owner.1))
                .with_context(|| format!("setting the owner of {}", d.display()))?;
            d = d.parent().unwrap_or(base);
        }
    }
    host_util::write_atomic(path, bytes, mode).with_context(|| format!("writing {}", path.display()))?;
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))
        .with_context(|| format!("setting the owner of {}", path.display()))
}

/// A CRL (PEM) signed by `issuer`, revoking `revoked` serials.
pub fn crl_pem(
    issuer: &Issuer<'_, impl SigningKey>,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    number: u64,
    revoked: &[u64],
) -> anyhow::Result<String> {
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: this_update,
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(issuer)?.pem()?)
}

/// What a usable CA and CRL pair says, for the step message.
#[derive(Debug)]
pub struct Usable {
    pub subject: String,
    pub next_update: String,
}

/// The DER of the first PEM block of `pem` with `label`.
fn pem_der(pem: &[u8], label: &str) -> Result<Vec<u8>, String> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("not PEM ({e})"))?;
        if block.label == label {
            return Ok(block.contents);
        }
    }
    Err(format!("no {label} PEM block"))
}

/// Whether nginx can verify client certificates with `cert_pem` and `crl_pem`: both parse,
/// the certificate is a CA valid at `now`, the CRL's issuer is its subject, the CRL's
/// signature verifies with its key, and the CRL's nextUpdate has not passed.
pub fn check(cert_pem: &[u8], crl_pem: &[u8], now: OffsetDateTime) -> Result<Usable, String> {
    let cert_der = pem_der(cert_pem, "CERTIFICATE").map_err(|e| format!("the CA certificate: {e}"))?;
    let (_, cert) = X509Certificate::from_der(&cert_der)
        .map_err(|e| format!("the CA certificate does not parse ({e})"))?;
    if !cert.is_ca() {
        return Err(format!("the certificate of {} is not a CA", cert.subject()));
    }
    let (from, until) = (cert.validity().not_before, cert.validity().not_after);
    if now < from.to_datetime() || now > until.to_datetime() {
        return Err(format!(
            "the CA certificate is valid from {from} until {until}, not now"
        ));
    }
    let crl_der = pem_der(crl_pem, "X509 CRL").map_err(|e| format!("the CRL: {e}"))?;
    let (_, crl) =
        CertificateRevocationList::from_der(&crl_der).map_err(|e| format!("the CRL does not parse ({e})"))?;
    if crl.issuer().as_raw() != cert.subject().as_raw()
        && crl.issuer().to_string() != cert.subject().to_string()
    {
        return Err(format!(
            "the CRL's issuer {} is not the CA {}",
            crl.issuer(),
            cert.subject()
        ));
    }
    crl.verify_signature(cert.public_key())
        .map_err(|e| format!("the CRL's signature does not verify with the CA's key ({e})"))?;
    let next = crl
        .next_update()
        .ok_or_else(|| "the CRL has no nextUpdate".to_string())?;
    if next.to_datetime() <= now {
        return Err(format!("the CRL expired at {next} (its nextUpdate)"));
    }
    Ok(Usable {
        subject: cert.subject().to_string(),
        next_update: next.to_string(),
    })
}

/// The placeholder pair (certificate, CRL), made once per boot under run_dir; its key exists
/// only in memory while it is made, so nothing ever verifies against it.
fn placeholder(ctx: &Context) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let dir = state_dir(ctx);
    let (cert_path, crl_path) = (dir.join("placeholder.cert.pem"), dir.join("placeholder.crl.pem"));
    if let (Ok(c), Ok(r)) = (std::fs::read(&cert_path), std::fs::read(&crl_path)) {
        return Ok((c, r));
    }
    let key = KeyPair::generate().context("making the placeholder client CA's key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        "ECS appliance placeholder client CA (verifies nothing)",
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(SEED_CRL_DAYS);
    let cert = params
        .self_signed(&key)
        .context("making the placeholder client CA")?
        .pem();
    let issuer = Issuer::new(params, &key);
    let crl = crl_pem(&issuer, now, now + Duration::days(SEED_CRL_DAYS), 1, &[])
        .context("signing the placeholder CRL")?;
    host_util::write_atomic(&cert_path, cert.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    host_util::write_atomic(&crl_path, crl.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", crl_path.display()))?;
    Ok((cert.into_bytes(), crl.into_bytes()))
}

/// Gives the frontend the app's CA and CRL when they are usable, else the placeholder; the
/// frontend's next config verifies with them. Runs at start (step client-ca) and for
/// `reload-frontend` (a new CRL). `def` None: the definition is not known (start has not read
/// it yet), the placeholder serves.
pub fn install(ctx: &Context, settings: &Settings, def: Option<&AppDef>) -> anyhow::Result<String> {
    let dir = state_dir(ctx);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let verify = if settings.client_certs_mandatory {
        "on"
    } else {
        "optional"
    };
    let chosen = match def.and_then(|d| d.client_ca.as_ref()) {
        None => Err(("the app definition names no client-ca".to_string(), false)),
        Some(ca) => {
            let p = paths(ctx, ca);
            match (std::fs::read(&p.cert), std::fs::read(&p.crl)) {
                (Err(_), _) => Err((format!("{} is not there", p.cert.display()), false)),
                (Ok(_), Err(e)) => Err((format!("{}: {e}", p.crl.display()), true)),
                (Ok(c), Ok(r)) => match check(&c, &r, OffsetDateTime::now_utc()) {
                    Ok(u) => Ok((c, r, u)),
                    Err(why) => Err((
                        format!("{} and {}: {why}", p.cert.display(), p.crl.display()),
                        true,
                    )),
                },
            }
        }
    };
    let (cert, crl, msg) = match chosen {
        Ok((c, r, u)) => (
            c,
            r,
            format!(
                "the app's CA ({}), CRL valid until {}: client certificates {verify}",
                u.subject, u.next_update
            ),
        ),
        Err((why, broken)) => {
            let (c, r) = placeholder(ctx)?;
            if broken {
                tracing::warn!(
                    "the app's client CA is not usable, the frontend verifies no client certificate: {why}"
                );
            }
            let lead = if broken {
                "the app's CA is not usable"
            } else {
                "no CA yet"
            };
            (
                c,
                r,
                format!("{lead}: placeholder, no client certificate verifies ({why})"),
            )
        }
    };
    for (name, bytes) in [("ca.cert.pem", &cert), ("crl.pem", &crl)] {
        let path = dir.join(name);
        host_util::write_atomic(&path, bytes, 0o644)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let path = dir.join(VERIFY_FILE);
    host_util::write_atomic(&path, verify.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(msg)
}

/// The directives inside the HTTPS `server` block that verify client certificates, once the
/// step has given the frontend a CA. `serving` (the app, not the maintenance page): only then
/// is a mandatory certificate asked for, so the page stays readable to everyone.
pub fn nginx_directives(ctx: &Context, serving: bool) -> String {
    // The app's WSGI server reads X_SSL_CLIENT_VERIFY as X-SSL-Client-Verify: such names never
    // pass (nginx's defaults, said here so they stay).
    let mut out = String::from("    underscores_in_headers off;\n    ignore_invalid_headers on;\n");
    let dir = state_dir(ctx);
    let Ok(verify) = std::fs::read_to_string(dir.join(VERIFY_FILE)) else {
        return out;
    };
    let verify = if verify.trim() == "on" && serving {
        "on"
    } else {
        "optional"
    };
    out.push_str(&format!(
        "    ssl_client_certificate {d}/ca.cert.pem;\n    ssl_crl {d}/crl.pem;\n    \
         ssl_verify_client {verify};\n    ssl_verify_depth 1;\n",
        d = dir.display()
    ));
    out
}

/// The CRL's `ecs-agent-crl.path` watches by default (the default template's client-ca).
pub const DEFAULT_WATCHED: &[&str] = &["/data/ecs-ca/ca.cert.pem", "/data/ecs-ca/crl.pem"];
pub const PATH_UNIT: &str = "ecs-agent-crl.path";

/// The drop-in for `ecs-agent-crl.path` when the app's CA files are elsewhere; None when the
/// unit's own paths are the right ones.
pub fn render_path_dropin(ctx: &Context, def: &AppDef) -> Option<String> {
    let ca = def.client_ca.as_ref()?;
    let p = paths(ctx, ca);
    let watched = [p.cert.display().to_string(), p.crl.display().to_string()];
    if watched
        .iter()
        .map(String::as_str)
        .eq(DEFAULT_WATCHED.iter().copied())
    {
        return None;
    }
    Some(format!(
        "# Written by `ecs-agent start` from the app definition's x-ecs.client-ca.\n[Path]\nPathChanged=\n\
         PathChanged={}\nPathChanged={}\n",
        watched[0], watched[1]
    ))
}

/// Writes (or removes) `<systemd_run_dir>/ecs-agent-crl.path.d/client-ca.conf`; true when it changed.
pub fn write_path_dropin(systemd_run_dir: &Path, text: Option<&str>) -> anyhow::Result<bool> {
    let dir = systemd_run_dir.join(format!("{PATH_UNIT}.d"));
    let file = dir.join("client-ca.conf");
    let current = std::fs::read_to_string(&file).ok();
    if current.as_deref() == text {
        return Ok(false);
    }
    match text {
        Some(text) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            host_util::write_atomic(&file, text.as_bytes(), 0o644)
                .with_context(|| format!("writing {}", file.display()))?;
        }
        None => std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?,
    }
    Ok(true)
}

/// At start: `ecs-agent-crl.path` watches the app's CA files (only where systemd runs).
pub fn apply_path_unit(ctx: &Context, def: &AppDef) -> anyhow::Result<()> {
    use host_util::CommandExt as _;
    let Some(dir) = ctx.systemd_run_dir.as_deref().filter(|d| d.is_dir()) else {
        return Ok(());
    };
    let text = render_path_dropin(ctx, def);
    if write_path_dropin(dir, text.as_deref())? {
        crate::tools::SYSTEMCTL
            .command()?
            .arg("daemon-reload")
            .run_checked()
            .context("reloading systemd for the CRL's path unit")?;
    }
    // Restarted at every start, the drop-in changed or not: the unit began watching at boot,
    // before the storage step mounted /data over the directory it watched, and an inotify
    // watch on the directory under a mount never sees what happens on the mounted filesystem.
    crate::tools::SYSTEMCTL
        .command()?
        .args(["restart", PATH_UNIT])
        .run_checked()
        .with_context(|| format!("restarting {PATH_UNIT}"))?;
    tracing::info!("{PATH_UNIT}: watching the app's CA files");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(cn: &str) -> (CertificateParams, KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        (params, key, pem)
    }

    #[test]
    fn a_crl_is_taken_only_when_it_is_the_cas_own_and_current() {
        let now = OffsetDateTime::now_utc();
        let (params, key, cert) = ca("test CA");
        let issuer = Issuer::from_params(&params, &key);
        let good = crl_pem(&issuer, now, now + Duration::days(30), 1, &[7]).unwrap();
        let u = check(cert.as_bytes(), good.as_bytes(), now).unwrap();
        assert!(u.subject.contains("test CA"), "{u:?}");

        // Issued for a day that has passed.
        let expired = crl_pem(&issuer, now - Duration::days(10), now - Duration::days(1), 2, &[]).unwrap();
        let e = check(cert.as_bytes(), expired.as_bytes(), now).unwrap_err();
        assert!(e.contains("expired"), "{e}");

        // Another CA's CRL, and one with the same name but signed by another key.
        let (other_params, other_key, _) = ca("other CA");
        let foreign = crl_pem(
            &Issuer::from_params(&other_params, &other_key),
            now,
            now + Duration::days(30),
            1,
            &[],
        )
        .unwrap();
        let e = check(cert.as_bytes(), foreign.as_bytes(), now).unwrap_err();
        assert!(e.contains("issuer") && e.contains("other CA"), "{e}");
        let (_, impostor_key, _) = ca("test CA");
        let forged = crl_pem(
            &Issuer::from_params(&params, &impostor_key),
            now,
            now + Duration::days(30),
            1,
            &[],
        )
        .unwrap();
        let e = check(cert.as_bytes(), forged.as_bytes(), now).unwrap_err();
        assert!(e.contains("signature"), "{e}");

        // Not a CRL at all; a certificate where the CRL belongs; a CA that is not one.
        let e = check(cert.as_bytes(), b"garbage", now).unwrap_err();
        assert!(e.contains("the CRL"), "{e}");
        let e = check(cert.as_bytes(), cert.as_bytes(), now).unwrap_err();
        assert!(e.contains("no X509 CRL"), "{e}");
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["user".into()])
            .unwrap()
            .self_signed(&leaf_key)
            .unwrap()
            .pem();
        let e = check(leaf.as_bytes(), good.as_bytes(), now).unwrap_err();
        assert!(e.contains("not a CA"), "{e}");
    }

    #[test]
    fn openssl_made_crls_are_checked_too() {
        // The CA `ecs-build config new` makes is ECDSA P-256 from rcgen; ECS's own is RSA from
        // openssl: both kinds of signature verify.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sh = |script: &str| {
            let st = std::process::Command::new("sh")
                .arg("-ec")
                .arg(script)
                .current_dir(d)
                .status()
                .unwrap();
            assert!(st.success(), "{script}");
        };
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj '/O=ECS/CN=rsa CA' -addext basicConstraints=critical,CA:TRUE 2>/dev/null
            mkdir -p db && : > db/index.txt && echo 01 > db/crlnumber
            printf '[ca]\\ndefault_ca=c\\n[c]\\ndatabase=db/index.txt\\ncrlnumber=db/crlnumber\\n\
default_md=sha256\\ndefault_crl_days=30\\n' > ca.cnf
            openssl ca -config ca.cnf -gencrl -keyfile ca.key -cert ca.pem -out crl.pem 2>/dev/null",
        );
        let cert = std::fs::read(d.join("ca.pem")).unwrap();
        let crl = std::fs::read(d.join("crl.pem")).unwrap();
        check(&cert, &crl, OffsetDateTime::now_utc()).unwrap();
        let e = check(&cert, &crl, OffsetDateTime::now_utc() + Duration::days(31)).unwrap_err();
        assert!(e.contains("expired"), "{e}");
    }

    #[test]
    fn the_ca_is_seeded_only_with_a_key_file_and_never_over_an_existing_one() {
        let data = tempfile::tempdir().unwrap();
        let ctx = Context {
            data_dir: data.path().into(),
            run_dir: data.path().join("run"),
            ..Context::default()
        };
        let (_, key, cert) = ca("seed CA");
        let settings = Settings {
            client_ca: Some((cert.clone(), key.serialize_pem())),
            ..Settings::default()
        };
        let mut def = ClientCa {
            dir: "ca".into(),
            cert: "ca.cert.pem".into(),
            crl: "crl.pem".into(),
            key: None,
        };
        // No key file named (ECS keeps its key in its database): nothing is written.
        assert_eq!(seed(&ctx, &settings, &def).unwrap(), None);
        assert!(!data.path().join("ca").exists());

        def.key = Some("private/ca.key.pem".into());
        assert_eq!(
            seed(&ctx, &settings, &def).unwrap().as_deref(),
            Some("seeded from env.yml")
        );
        let p = paths(&ctx, &def);
        let mode = |f: &Path| std::fs::metadata(f).unwrap().mode() & 0o777;
        assert_eq!(mode(p.key.as_ref().unwrap()), 0o600);
        assert_eq!(mode(&data.path().join("ca/private")), 0o700);
        let crl = std::fs::read(&p.crl).unwrap();
        check(
            cert.as_bytes(),
            &crl,
            OffsetDateTime::now_utc() + Duration::days(3600),
        )
        .unwrap();

        // An existing CA stays, whatever env.yml says.
        let (_, other_key, other_cert) = ca("other CA");
        let other = Settings {
            client_ca: Some((other_cert, other_key.serialize_pem())),
            ..Settings::default()
        };
        assert_eq!(seed(&ctx, &other, &def).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&p.cert).unwrap(), cert);
        assert_eq!(std::fs::read(&p.crl).unwrap(), crl);
        // A key of the app's own without its certificate is not replaced either.
        std::fs::remove_file(&p.cert).unwrap();
        let msg = seed(&ctx, &other, &def).unwrap().unwrap();
        assert!(msg.contains("not seeded"), "{msg}");
        assert_eq!(
            std::fs::read_to_string(p.key.unwrap()).unwrap(),
            key.serialize_pem()
        );
    }

    #[test]
    fn the_path_unit_is_redirected_only_for_other_paths() {
        let def = |dir: &str| AppDef {
            client_ca: Some(ClientCa {
                dir: dir.into(),
                cert: "ca.cert.pem".into(),
                crl: "crl.pem".into(),
                key: None,
            }),
            ..crate::appdef::parse(Path::new("t"), crate::appdef::DEFAULT_TEMPLATE).unwrap()
        };
        let ctx = Context::default();
        assert_eq!(render_path_dropin(&ctx, &def("ecs-ca")), None);
        let text = render_path_dropin(&ctx, &def("other/ca")).unwrap();
        assert!(
            text.contains(
                "PathChanged=\nPathChanged=/data/other/ca/ca.cert.pem\nPathChanged=/data/other/ca/crl.pem\n"
            ),
            "{text}"
        );
        let run = tempfile::tempdir().unwrap();
        assert!(write_path_dropin(run.path(), Some(&text)).unwrap());
        assert!(!write_path_dropin(run.path(), Some(&text)).unwrap());
        assert!(write_path_dropin(run.path(), None).unwrap());
        assert!(!write_path_dropin(run.path(), None).unwrap());
    }
}
