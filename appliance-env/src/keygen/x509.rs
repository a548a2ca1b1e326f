//! The client-certificate CA: self-signed X.509, CA:TRUE, keyCertSign and cRLSign, valid for
//! ten years; ECDSA P-256 so that rcgen's ring backend can sign without cmake or clang.

use std::time::SystemTime;

use p256::pkcs8::EncodePrivateKey;
use rand_core::{CryptoRng, RngCore};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SerialNumber};
use time::OffsetDateTime;

use super::KeygenError;
use crate::model::ClientCa;

pub const CA_YEARS: i32 = 10;

pub(crate) fn generate_ca<R: RngCore + CryptoRng>(
    domain: &str,
    rng: &mut R,
    now: SystemTime,
) -> Result<ClientCa, KeygenError> {
    let err = |e: &dyn std::fmt::Display| KeygenError::X509(e.to_string());
    let secret = p256::SecretKey::random(rng);
    let der = secret.to_pkcs8_der().map_err(|e| err(&e))?;
    let key = KeyPair::try_from(der.as_bytes()).map_err(|e| err(&e))?;

    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{domain} client CA"));
    params.distinguished_name.push(DnType::OrganizationName, "ECS");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut serial = [0u8; 16];
    rng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // positive
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let start = OffsetDateTime::from(now)
        .replace_nanosecond(0)
        .map_err(|e| err(&e))?;
    let end = start
        .replace_year(start.year() + CA_YEARS)
        .or_else(|_| (start - time::Duration::days(1)).replace_year(start.year() + CA_YEARS))
        .map_err(|e| err(&e))?;
    params.not_before = start;
    params.not_after = end;
    let cert = params.self_signed(&key).map_err(|e| err(&e))?;
    Ok(ClientCa {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}
