//! DKIM key generation and the DNS records an appliance needs, in zone-file syntax.

use rand_core::{CryptoRng, RngCore};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};

use super::KeygenError;
use crate::model::Env;

pub const DKIM_BITS: usize = 2048;
pub const DKIM_SELECTOR: &str = "default";
/// A TXT record's character-strings hold at most 255 bytes each.
pub const TXT_CHUNK: usize = 255;
/// A documentation address (RFC 5737) standing in for the appliance's public address.
pub const PLACEHOLDER_ADDRESS: &str = "192.0.2.1";

pub(crate) fn generate_dkim<R: RngCore + CryptoRng>(rng: &mut R) -> Result<String, KeygenError> {
    let err = |e: &dyn std::fmt::Display| KeygenError::Rsa {
        what: "DKIM",
        message: e.to_string(),
    };
    let key = RsaPrivateKey::new(rng, DKIM_BITS).map_err(|e| err(&e))?;
    let pem = key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| err(&e))?;
    Ok(pem.to_string())
}

/// The DKIM public key (SubjectPublicKeyInfo, base64), as `openssl rsa -pubout` shows it.
pub fn dkim_public_key(private_pem: &str) -> Result<String, KeygenError> {
    let key = RsaPrivateKey::from_pkcs1_pem(private_pem)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(private_pem))
        .map_err(|e| KeygenError::DkimKey(format!("expected an RSA private key in PEM: {e}")))?;
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| KeygenError::DkimKey(e.to_string()))?;
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.encode(der.as_bytes()))
}

/// A, MX, SPF, DMARC and DKIM records for the env's domain.
pub fn dns_records(env: &Env) -> Result<String, KeygenError> {
    let d = &env.appliance.domain;
    let dkim = format!(
        "v=DKIM1; k=rsa; s=email; p={}",
        dkim_public_key(&env.appliance.dkim.key)?
    );
    let chunks: Vec<String> = dkim
        .as_bytes()
        .chunks(TXT_CHUNK)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    let dkim_name = format!("{DKIM_SELECTOR}._domainkey.{d}.");
    let pad = " ".repeat(dkim_name.len() + 1 + "IN TXT ( ".len());
    Ok(format!(
        "; DNS records for {d} (zone-file syntax).\n\
         ; {PLACEHOLDER_ADDRESS} is a placeholder: put the appliance's public IPv4 address there,\n\
         ; and a PTR record for that address pointing to {d}. at its provider.\n\
         {d}. IN A {PLACEHOLDER_ADDRESS} ; placeholder address\n\
         {d}. IN MX 10 {d}.\n\
         {d}. IN TXT \"v=spf1 a mx -all\"\n\
         _dmarc.{d}. IN TXT \"v=DMARC1; p=quarantine\"\n\
         {dkim_name} IN TXT ( {} )\n",
        chunks.join(&format!("\n{pad}"))
    ))
}
