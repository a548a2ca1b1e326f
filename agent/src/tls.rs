//! Step `tls`: the web certificate. The operator's key and cert from env.yml when given;
//! else ACME http-01 (Let's Encrypt, or the configured directory) when letsencrypt is enabled;
//! else, or while ACME fails, a self-signed certificate that the next successful ACME run
//! (`ecs-agent renew-tls`, on a timer) replaces.
//!
//! Files live in /data/etc/tls: server.key.pem (0600), server.cert.pem, source (what made
//! them), acme-account.json (0600). Keys are never logged.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use host_util::CommandExt;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder,
    OrderStatus, RetryPolicy,
};

use crate::context::Context;
use crate::envfile::Settings;
use crate::frontend::cert_paths;
use crate::tools::OPENSSL;

/// Renew ACME certificates that expire within this many days.
const RENEW_DAYS: u64 = 30;

pub fn source(ctx: &Context) -> Option<String> {
    std::fs::read_to_string(ctx.tls_dir().join("source"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn install(ctx: &Context, key: &str, cert: &str, source: &str) -> anyhow::Result<()> {
    let (cert_path, key_path) = cert_paths(ctx);
    // The key first: the frontend only uses the pair once the certificate matches it.
    host_util::write_atomic(&key_path, key.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", key_path.display()))?;
    host_util::write_atomic(&cert_path, cert.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    host_util::write_atomic(
        &ctx.tls_dir().join("source"),
        format!("{source}\n").as_bytes(),
        0o644,
    )
    .context("writing the certificate source")?;
    Ok(())
}

/// True if the certificate exists and is valid for at least `days` more days.
fn valid_for(cert: &Path, days: u64) -> anyhow::Result<bool> {
    if !cert.is_file() {
        return Ok(false);
    }
    Ok(OPENSSL
        .command()?
        .args(["x509", "-noout", "-checkend"])
        .arg((days * 86400).to_string())
        .arg("-in")
        .arg(cert)
        .run_checked()
        .is_ok())
}

/// A self-signed (key, certificate) pair for `name`, PEM.
pub fn self_signed_pem(name: &str) -> anyhow::Result<(String, String)> {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()])
        .context("making a self-signed certificate")?;
    Ok((ck.signing_key.serialize_pem(), ck.cert.pem()))
}

fn self_signed(ctx: &Context, domain: &str) -> anyhow::Result<()> {
    let (key, cert) = self_signed_pem(domain)?;
    install(ctx, &key, &cert, "self-signed")
}

async fn account(ctx: &Context) -> anyhow::Result<Account> {
    let builder = || -> anyhow::Result<_> {
        Ok(match &ctx.acme_ca_root {
            Some(root) => {
                Account::builder_with_root(root).with_context(|| format!("loading {}", root.display()))?
            }
            None => Account::builder().context("setting up the ACME client")?,
        })
    };
    let path = ctx.tls_dir().join("acme-account.json");
    if let Ok(text) = std::fs::read(&path) {
        let creds: AccountCredentials =
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
        return builder()?
            .from_credentials(creds)
            .await
            .context("loading the ACME account");
    }
    let (account, creds) = builder()?
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            ctx.acme_directory.clone(),
            None,
        )
        .await
        .with_context(|| format!("creating an ACME account at {}", ctx.acme_directory))?;
    host_util::write_atomic(&path, &serde_json::to_vec(&creds)?, 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(account)
}

async fn acme(ctx: &Context, domain: &str) -> anyhow::Result<(String, String)> {
    let account = account(ctx).await?;
    let ids = [Identifier::Dns(domain.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .context("ordering the certificate")?;
    let webroot = ctx.acme_webroot();
    let mut tokens = Vec::new();
    let mut auths = order.authorizations();
    while let Some(auth) = auths.next().await {
        let mut auth = auth.context("fetching the authorization")?;
        match auth.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => bail!("authorization for {domain} is {other:?}"),
        }
        let mut challenge = auth
            .challenge(ChallengeType::Http01)
            .context("the ACME server offers no http-01 challenge")?;
        let file = webroot.join(&challenge.token);
        host_util::write_atomic(&file, challenge.key_authorization().as_str().as_bytes(), 0o644)
            .with_context(|| format!("writing {}", file.display()))?;
        tokens.push(file);
        challenge
            .set_ready()
            .await
            .context("answering the http-01 challenge")?;
    }
    let retry = RetryPolicy::default().timeout(Duration::from_secs(90));
    let status = order.poll_ready(&retry).await.context("waiting for the order")?;
    for t in tokens {
        let _ = std::fs::remove_file(t);
    }
    if status != OrderStatus::Ready {
        bail!("order for {domain} is {status:?} (is http://{domain}/.well-known/acme-challenge/ reachable?)");
    }
    let key = order.finalize().await.context("finalizing the order")?;
    let chain = order
        .poll_certificate(&retry)
        .await
        .context("fetching the certificate")?;
    Ok((key, chain))
}

fn run_acme(ctx: &Context, domain: &str) -> anyhow::Result<(String, String)> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(acme(ctx, domain))
}

/// Runs the step (at start, and for `renew-tls`); never fails only because ACME did.
pub fn run(ctx: &Context, settings: &Settings) -> anyhow::Result<String> {
    let dir = ctx.tls_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let domain = &settings.domain;
    let (cert, _) = cert_paths(ctx);
    if let (Some(key), Some(crt)) = (&settings.tls_key, &settings.tls_cert) {
        install(ctx, key, crt, "operator")?;
        return Ok("the operator's certificate from env.yml".into());
    }
    let current = source(ctx);
    if !settings.letsencrypt {
        if current.as_deref() == Some("self-signed") && valid_for(&cert, 1)? {
            return Ok("self-signed certificate kept (letsencrypt disabled)".into());
        }
        self_signed(ctx, domain)?;
        return Ok("self-signed certificate (letsencrypt disabled)".into());
    }
    if current.as_deref() == Some("acme") && valid_for(&cert, RENEW_DAYS)? {
        return Ok(format!(
            "ACME certificate valid for more than {RENEW_DAYS} days, kept"
        ));
    }
    match run_acme(ctx, domain) {
        Ok((key, chain)) => {
            install(ctx, &key, &chain, "acme")?;
            Ok(format!(
                "ACME certificate for {domain} from {}",
                ctx.acme_directory
            ))
        }
        Err(e) => {
            tracing::warn!("ACME failed: {e:#}");
            if current.as_deref() == Some("acme") && valid_for(&cert, 0)? {
                return Ok(format!("ACME renewal failed ({e}), current certificate kept"));
            }
            if current.as_deref() != Some("self-signed") || !valid_for(&cert, 1)? {
                self_signed(ctx, domain)?;
            }
            Ok(format!(
                "ACME failed ({e}): self-signed fallback until a renewal succeeds"
            ))
        }
    }
}
