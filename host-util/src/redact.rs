//! Hiding the credentials a URL may carry before it is shown, logged or stored.
//!
//! Backup targets (`sftp://user:pass@host/path`), git sources and DSNs are written by operators
//! with passwords in them; messages and status files name the URL, never the password. The
//! parsing is deliberately loose: when unsure where the user info ends, more is hidden, not less.

/// What a hidden password or secret query value is replaced with.
pub const HIDDEN: &str = "***";

/// `scheme://user:pass@host/p?password=x` → `scheme://user:***@host/p?password=***`.
///
/// The password is everything between the first `:` of the user info and the last `@` before the
/// query, so an unencoded `@` or `/` in a password is hidden too. A user without a password is
/// kept. Query parameters whose name suggests a secret (see [`is_secret_param`]) lose their
/// value. Text without `://` is returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(sep) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = (&url[..sep + 3], &url[sep + 3..]);
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    let after_userinfo = match rest[..query_at].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(HIDDEN);
                }
                None => out.push_str(userinfo),
            }
            at
        }
        None => 0,
    };
    out.push_str(&rest[after_userinfo..query_at]);
    out.push_str(&redact_query(&rest[query_at..]));
    out
}

/// Every `scheme://...` word in `text` (delimited by whitespace or quotes) passed through
/// [`redact_url`]; for messages that quote a command line or an error holding a URL.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word_start = 0;
    let is_delimiter = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>');
    for (i, c) in text.char_indices() {
        if is_delimiter(c) {
            out.push_str(&redact_word(&text[word_start..i]));
            out.push(c);
            word_start = i + c.len_utf8();
        }
    }
    out.push_str(&redact_word(&text[word_start..]));
    out
}

fn redact_word(word: &str) -> String {
    if word.contains("://") {
        redact_url(word)
    } else {
        word.to_string()
    }
}

/// `?a=1&password=x#f` with secret values replaced; the leading `?` (or `#`) is kept.
fn redact_query(query: &str) -> String {
    let Some(body) = query.strip_prefix('?') else {
        return query.to_string();
    };
    let (params, fragment) = match body.find('#') {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    };
    let mut out = String::from("?");
    for (i, param) in params.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((name, _)) if is_secret_param(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(HIDDEN);
            }
            _ => out.push_str(param),
        }
    }
    out.push_str(fragment);
    out
}

/// Whether a query parameter's name suggests its value is a credential: it contains `pass`,
/// `pwd`, `secret`, `token`, `key`, `auth`, `sig` or `credential` (any case).
pub fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "sig",
        "credential",
    ]
    .iter()
    .any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_user_info_are_hidden() {
        for (url, expected) in [
            ("sftp://user:pass@host/path", "sftp://user:***@host/path"),
            ("scp://u:s3cr:et@host:22/p", "scp://u:***@host:22/p"),
            ("https://u:p@ss@host/", "https://u:***@host/"),
            ("sftp://u:pa/ss@host/p", "sftp://u:***@host/p"),
            ("ftp://:only-pass@host", "ftp://:***@host"),
            (
                "s3+http://AKIA:wJalr/K7MDENG@bucket/x",
                "s3+http://AKIA:***@bucket/x",
            ),
        ] {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn urls_without_a_password_are_unchanged() {
        for url in [
            "file:///volatile/ecs-backup-test/",
            "sftp://user@host/path",
            "https://github.com/ethikkom/ecs.git",
            "https://host:8443/path",
            "https://host/x?email=a@b.org",
            "https://host/a?page=2&sort=name#top",
            "not a url",
            "user:pass@host",
            "",
        ] {
            assert_eq!(redact_url(url), url, "{url}");
        }
    }

    #[test]
    fn secret_query_values_are_hidden() {
        assert_eq!(
            redact_url("s3://bucket/p?password=hunter2&region=eu"),
            "s3://bucket/p?password=***&region=eu"
        );
        assert_eq!(
            redact_url("https://h/p?a=1&Access_Token=abc&sig=x#frag"),
            "https://h/p?a=1&Access_Token=***&sig=***#frag"
        );
        assert_eq!(
            redact_url("b2://id:appkey@bucket/?api_key=k"),
            "b2://id:***@bucket/?api_key=***"
        );
    }

    #[test]
    fn urls_inside_text_are_redacted() {
        assert_eq!(
            redact_urls("restored from backup sftp://u:hunter2@host/p (2 files)"),
            "restored from backup sftp://u:***@host/p (2 files)"
        );
        assert_eq!(
            redact_urls("duplicity \"sftp://u:pw@h/x\" --name 'https://a:b@c'"),
            "duplicity \"sftp://u:***@h/x\" --name 'https://a:***@c'"
        );
        assert_eq!(redact_urls("no urls here"), "no urls here");
        assert_eq!(redact_urls("käse ftp://ü:ö@h ü"), "käse ftp://ü:***@h ü");
    }
}
