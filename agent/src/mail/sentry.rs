//! `ecs-agent mail-to-sentry`: root's new mail (unattended-upgrades, failed units) as Sentry
//! messages, as the original's ravencat did. Each message in root's Maildir `new/` is sent as
//! one `warning` event (subject, sender, date and the first part of the body) and then moved
//! to `cur/` (flag S, seen). Without a DSN the mail stays where it is.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::context::Context;

/// The body is cut here: Sentry events are small, the whole mail stays in the mailbox.
const BODY_LIMIT: usize = 8000;

pub fn root_maildir(ctx: &Context) -> PathBuf {
    ctx.mailbox_dir().join("root")
}

/// A mail's header value (first occurrence, unfolded), else "".
fn header(head: &str, name: &str) -> String {
    let mut value: Option<String> = None;
    for line in head.lines() {
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
            Some(_) => break,
            None => {
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case(name)
                {
                    value = Some(v.trim().to_string());
                }
            }
        }
    }
    value.unwrap_or_default()
}

/// (subject, from, date, body) of a message's text.
pub fn summary(text: &str) -> (String, String, String, String) {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut body: String = body.chars().take(BODY_LIMIT).collect();
    if body.len() < text.len() - head.len() - 2 {
        body.push_str("\n[cut; the whole mail is in root's mailbox]");
    }
    (
        header(head, "Subject"),
        header(head, "From"),
        header(head, "Date"),
        body,
    )
}

/// Sends every new message; returns how many were sent (and moved to cur/).
pub fn forward(ctx: &Context, dsn: &str, maildir: &Path) -> anyhow::Result<usize> {
    let new = maildir.join("new");
    let cur = maildir.join("cur");
    let mut names: Vec<PathBuf> = match std::fs::read_dir(&new) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", new.display())),
    };
    names.sort();
    std::fs::create_dir_all(&cur).with_context(|| format!("creating {}", cur.display()))?;
    let mut sent = 0;
    for path in names.into_iter().filter(|p| p.is_file()) {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let (subject, from, date, body) = summary(&String::from_utf8_lossy(&bytes));
        let message = format!("mail to root: {subject}\nFrom: {from}\nDate: {date}\n\n{body}");
        crate::report::send(
            dsn,
            &ctx.run_dir,
            "warning",
            &message,
            &[("source", "mail-to-root"), ("mail_from", &from)],
        )
        .with_context(|| format!("sending {} to Sentry", path.display()))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let to = cur.join(format!("{}:2,S", name.split(':').next().unwrap_or(&name)));
        std::fs::rename(&path, &to)
            .with_context(|| format!("moving {} to {}", path.display(), to.display()))?;
        sent += 1;
    }
    Ok(sent)
}

/// The command: the DSN from the active env.yml.
pub fn command(ctx: &Context) -> anyhow::Result<String> {
    let env =
        crate::envfile::load(&ctx.active_env).map_err(|e| crate::userdata::ConfigError(e.to_string()))?;
    let maildir = root_maildir(ctx);
    let Some(dsn) = env.settings.sentry_dsn else {
        return Ok(format!(
            "no appliance.sentry.dsn: root's mail stays in {}",
            maildir.display()
        ));
    };
    let n = forward(ctx, &dsn, &maildir)?;
    Ok(format!("{n} message(s) to root sent to Sentry"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_folded_headers_and_cuts_the_body() {
        let mail = "Return-Path: <root@localhost>\r\nSubject: unattended-upgrades result\r\n  for ecs\r\nFrom: root@localhost (root)\r\n\r\nline 1\r\nline 2\r\n";
        let (subject, from, date, body) = summary(mail);
        assert_eq!(subject, "unattended-upgrades result  for ecs");
        assert_eq!(from, "root@localhost (root)");
        assert_eq!(date, "");
        assert_eq!(body, "line 1\nline 2\n");
        let long = format!("Subject: x\n\n{}", "y".repeat(BODY_LIMIT + 10));
        assert!(
            summary(&long)
                .3
                .ends_with("[cut; the whole mail is in root's mailbox]")
        );
    }
}
