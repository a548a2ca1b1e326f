//! OpenPGP v4 keys, no passphrase, no expiry, user id = the key's name, as the original's
//! `gpg --gen-key` batch made them. Two kinds:
//!
//! - the backup key (duplicity on the appliance, GnuPG 2.2): an Ed25519 primary key that
//!   certifies and signs, with a Curve25519 ECDH subkey that encrypts;
//! - the vault keys (ECS's storage vault, inside ECS's Ubuntu xenial container, whose `gpg` is
//!   GnuPG 1.4 and knows no elliptic curves): one RSA-3072 key that certifies, signs and
//!   encrypts, like the original's RSA keys with usage `encrypt,sign`. Its preferences name AES,
//!   so GnuPG 1.4 does not fall back to 3DES when it encrypts to it.

use std::time::SystemTime;

use pgp::composed::{ArmorOptions, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SubkeyParamsBuilder};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::{CompressionAlgorithm, KeyVersion, Timestamp};
use rand_core::{CryptoRng, RngCore};

use super::KeygenError;

/// Which key to make.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Ed25519 primary, Curve25519 ECDH subkey (GnuPG 2.1 and later).
    Curve25519,
    /// One RSA key of 3072 bits for everything (GnuPG 1.4).
    Rsa3072,
}

pub(crate) fn generate<R: RngCore + CryptoRng>(
    name: &'static str,
    kind: Kind,
    rng: &mut R,
    now: SystemTime,
) -> Result<String, KeygenError> {
    let err = |message: String| KeygenError::OpenPgp { name, message };
    let created = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let created = Timestamp::from_secs(u32::try_from(created).unwrap_or(u32::MAX));
    let mut params = SecretKeyParamsBuilder::default();
    params
        .version(KeyVersion::V4)
        .can_certify(true)
        .can_sign(true)
        .created_at(created)
        .primary_user_id(name.to_string())
        .passphrase(None);
    match kind {
        Kind::Curve25519 => {
            let subkey = SubkeyParamsBuilder::default()
                .version(KeyVersion::V4)
                .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
                .can_encrypt(EncryptionCaps::All)
                .created_at(created)
                .build()
                .map_err(|e| err(e.to_string()))?;
            params.key_type(KeyType::Ed25519Legacy).subkeys(vec![subkey]);
        }
        Kind::Rsa3072 => {
            params
                .key_type(KeyType::Rsa(3072))
                .can_encrypt(EncryptionCaps::All)
                .preferred_symmetric_algorithms(
                    [
                        SymmetricKeyAlgorithm::AES256,
                        SymmetricKeyAlgorithm::AES192,
                        SymmetricKeyAlgorithm::AES128,
                    ]
                    .into_iter()
                    .collect(),
                )
                .preferred_hash_algorithms(
                    [HashAlgorithm::Sha256, HashAlgorithm::Sha512, HashAlgorithm::Sha1]
                        .into_iter()
                        .collect(),
                )
                .preferred_compression_algorithms(
                    [CompressionAlgorithm::ZLIB, CompressionAlgorithm::ZIP]
                        .into_iter()
                        .collect(),
                );
        }
    }
    let params = params.build().map_err(|e| err(e.to_string()))?;
    let key = params.generate(&mut *rng).map_err(|e| err(e.to_string()))?;
    key.to_armored_string(ArmorOptions::default())
        .map_err(|e| err(e.to_string()))
}
