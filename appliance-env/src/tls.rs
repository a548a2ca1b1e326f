//! A TLS key and its certificate chain checked as nginx and browsers will use them: the key is
//! the first certificate's key, no certificate has expired or is not yet valid, and the server
//! certificate's subjectAltName covers the appliance's domain. Messages name certificates by
//! subject and dates, never key material.

use ring::signature::{self as sig, KeyPair};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::validate::Block;

/// Problems with the key and with the certificate chain, in that order. `domain`, when given,
/// must be covered by the first certificate's DNS names; `now` is seconds since the epoch.
pub(crate) fn check_pair(
    key: &[Block],
    certs: &[Block],
    domain: Option<&str>,
    now: i64,
) -> (Vec<String>, Vec<String>) {
    let mut key_problems = Vec::new();
    let mut cert_problems = Vec::new();
    let mut parsed = Vec::new();
    for (i, block) in certs.iter().enumerate() {
        if block.label != "CERTIFICATE" {
            cert_problems.push(format!(
                "block {} is `{}`; expected only CERTIFICATE blocks (the server's first, then its chain)",
                i + 1,
                block.label
            ));
            continue;
        }
        match x509_parser::parse_x509_certificate(&block.der) {
            Ok((_, cert)) => parsed.push(cert),
            Err(_) => cert_problems.push(format!(
                "certificate {} of the chain is not an X.509 certificate (its DER does not parse)",
                i + 1
            )),
        }
    }
    if !cert_problems.is_empty() {
        return (key_problems, cert_problems);
    }
    for (i, cert) in parsed.iter().enumerate() {
        let v = cert.validity();
        let which = || describe(i, cert);
        if v.not_after.timestamp() < now {
            cert_problems.push(format!(
                "{} expired on {}; expected a certificate valid now",
                which(),
                v.not_after
            ));
        } else if v.not_before.timestamp() > now {
            cert_problems.push(format!(
                "{} is valid only from {}; expected a certificate valid now",
                which(),
                v.not_before
            ));
        }
    }
    let Some(leaf) = parsed.first() else {
        return (key_problems, cert_problems);
    };
    if let Some(domain) = domain
        && let Err(m) = covers(leaf, domain)
    {
        cert_problems.push(m);
    }
    match key.first().map(public_key) {
        Some(Ok(public)) if public != leaf.public_key().subject_public_key.data.as_ref() => {
            key_problems.push(format!(
                "is not the key of {} (their public keys differ); expected the private key the certificate was issued for",
                describe(0, leaf)
            ));
        }
        Some(Err(m)) => key_problems.push(m),
        _ => {}
    }
    (key_problems, cert_problems)
}

fn describe(i: usize, cert: &X509Certificate) -> String {
    let place = if i == 0 {
        "the certificate".to_string()
    } else {
        format!("certificate {} of the chain", i + 1)
    };
    // Single quotes: a subject is public, and the secret-key filter (`redact`) hides backtick
    // and double-quoted text in messages about ssl.key.
    format!("{place} '{}'", cert.subject())
}

/// The certificate's DNS names cover `domain`, exactly or by a `*.` wildcard for one label.
fn covers(cert: &X509Certificate, domain: &str) -> Result<(), String> {
    let names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(_) => {
            return Err("the certificate's subjectAltName extension does not parse".into());
        }
    };
    let matches = |name: &str| {
        name == domain
            || name.strip_prefix("*.").is_some_and(|base| {
                domain
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == base)
            })
    };
    if names.iter().any(|n| matches(n)) {
        return Ok(());
    }
    let found = if names.is_empty() {
        "it has no DNS names in subjectAltName (browsers ignore the subject's CN)".to_string()
    } else {
        format!("its subjectAltName names {}", names.join(", "))
    };
    Err(format!(
        "the certificate does not cover appliance.domain `{domain}`: {found}; expected DNS:{domain} in its subjectAltName"
    ))
}

/// The public half of a private key, as the certificate's SubjectPublicKeyInfo carries it:
/// RSA's DER RSAPublicKey, an uncompressed EC point, or the 32 Ed25519 bytes.
fn public_key(block: &Block) -> Result<Vec<u8>, String> {
    let unreadable = |why: String| {
        format!(
            "cannot be read as an RSA (2048 to 8192 bits), ECDSA P-256/P-384 or Ed25519 private key ({why})"
        )
    };
    match block.label.as_str() {
        "RSA PRIVATE KEY" => sig::RsaKeyPair::from_der(&block.der)
            .map(|k| k.public_key().as_ref().to_vec())
            .map_err(|e| unreadable(e.to_string())),
        "EC PRIVATE KEY" => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            p256::SecretKey::from_sec1_der(&block.der)
                .map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec())
                .map_err(|_| {
                    "cannot be read as a P-256 key in SEC1 form; convert other curves to PKCS#8 (`openssl pkcs8 -topk8 -nocrypt`)"
                        .to_string()
                })
        }
        _ => {
            if let Ok(k) = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&block.der) {
                return Ok(k.public_key().as_ref().to_vec());
            }
            let rng = ring::rand::SystemRandom::new();
            for alg in [
                &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            ] {
                if let Ok(k) = sig::EcdsaKeyPair::from_pkcs8(alg, &block.der, &rng) {
                    return Ok(k.public_key().as_ref().to_vec());
                }
            }
            sig::RsaKeyPair::from_pkcs8(&block.der)
                .map(|k| k.public_key().as_ref().to_vec())
                .map_err(|e| unreadable(e.to_string()))
        }
    }
}
