//! SCRAM-SHA-256 password verifiers, as PostgreSQL stores them (RFC 5802, RFC 7677).
//!
//! The agent sets the app's database password as a verifier, not as text: `ALTER ROLE ...
//! PASSWORD 'secret'` would put the password into the server's statement log on an error and
//! into pg_stat_statements, which the appliance preloads.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom as _};

/// PostgreSQL's default iteration count (`scram_iterations`).
const ITERATIONS: u32 = 4096;

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password` and `salt`.
pub fn verifier_with_salt(password: &str, salt: &[u8]) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(ITERATIONS).expect("non-zero"),
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key.as_ref()),
        STANDARD.encode(server_key.as_ref())
    )
}

/// A verifier with a fresh random 16-byte salt.
pub fn verifier(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("reading random bytes for a SCRAM salt"))?;
    Ok(verifier_with_salt(password, &salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's test vector: the ServerKey gives the RFC's server signature.
    #[test]
    fn matches_rfc_7677() {
        // RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = verifier_with_salt("pencil", &salt);
        // ServerSignature in the RFC is HMAC(ServerKey, AuthMessage); check ServerKey through it.
        let (_, keys) = v.rsplit_once('$').unwrap();
        let (_, server_key) = keys.split_once(':').unwrap();
        let server_key = STANDARD.decode(server_key).unwrap();
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &server_key), auth.as_bytes());
        assert_eq!(
            STANDARD.encode(sig.as_ref()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(
            v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{v}"
        );
        assert_ne!(
            verifier("pencil").unwrap(),
            verifier("pencil").unwrap(),
            "fresh salts"
        );
    }
}
