//! SSH: the appliance's host keys (ed25519, RSA-3072) in cloud-init's `ssh_keys` form, and
//! parsing of operators' public keys.
//!
//! ssh-key 0.6 takes a rand_core 0.6 RNG; ssh-key 0.7 (still a release candidate) moves to
//! rand_core 0.10, which would split this module's RNG from the others'. Stay on 0.6 until
//! rsa and pgp move too.

use std::collections::BTreeMap;

use rand_core::{CryptoRng, RngCore};
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

use super::KeygenError;

pub const RSA_HOST_KEY_BITS: usize = 3072;

pub(crate) fn generate_host_keys<R: RngCore + CryptoRng>(
    domain: &str,
    rng: &mut R,
) -> Result<BTreeMap<String, String>, KeygenError> {
    let comment = format!("root@{domain}");
    let ed25519 = PrivateKey::random(&mut *rng, Algorithm::Ed25519)
        .map(|mut k| {
            k.set_comment(&comment);
            k
        })
        .map_err(|e| KeygenError::Ssh {
            name: "ed25519",
            message: e.to_string(),
        })?;
    let rsa = RsaKeypair::random(&mut *rng, RSA_HOST_KEY_BITS)
        .and_then(|kp| PrivateKey::new(KeypairData::Rsa(kp), &comment))
        .map_err(|e| KeygenError::Ssh {
            name: "rsa",
            message: e.to_string(),
        })?;
    let mut keys = BTreeMap::new();
    for (name, key) in [("ed25519", ed25519), ("rsa", rsa)] {
        let err = |e: ssh_key::Error| KeygenError::Ssh {
            name,
            message: e.to_string(),
        };
        let private = key.to_openssh(LineEnding::LF).map_err(err)?;
        let public = key.public_key().to_openssh().map_err(err)?;
        keys.insert(format!("{name}_private"), private.to_string());
        keys.insert(format!("{name}_public"), public);
    }
    Ok(keys)
}

/// An operator's public key, checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    /// `type base64 comment`, as authorized_keys wants it.
    pub line: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// Parses one OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
pub fn parse_authorized_key(line: &str) -> Result<AuthorizedKey, String> {
    let key =
        PublicKey::from_openssh(line.trim()).map_err(|e| format!("expected an OpenSSH public key: {e}"))?;
    Ok(AuthorizedKey {
        line: key.to_openssh().map_err(|e| e.to_string())?,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
    })
}
