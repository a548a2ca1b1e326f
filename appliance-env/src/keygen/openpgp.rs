//! OpenPGP v4 keys that GnuPG 2.2 (duplicity, ECS's vault) imports and uses: an Ed25519 primary
//! key that certifies and signs, with a Curve25519 ECDH subkey that encrypts; no passphrase,
//! no expiry, user id = the key's name, as the original's `gpg --gen-key` batch made them.

use std::time::SystemTime;

use pgp::composed::{ArmorOptions, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SubkeyParamsBuilder};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::types::{KeyVersion, Timestamp};
use rand_core::{CryptoRng, RngCore};

use super::KeygenError;

pub(crate) fn generate<R: RngCore + CryptoRng>(
    name: &'static str,
    rng: &mut R,
    now: SystemTime,
) -> Result<String, KeygenError> {
    let err = |message: String| KeygenError::OpenPgp { name, message };
    let created = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let created = Timestamp::from_secs(u32::try_from(created).unwrap_or(u32::MAX));
    let subkey = SubkeyParamsBuilder::default()
        .version(KeyVersion::V4)
        .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
        .can_encrypt(EncryptionCaps::All)
        .created_at(created)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let params = SecretKeyParamsBuilder::default()
        .version(KeyVersion::V4)
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .created_at(created)
        .primary_user_id(name.to_string())
        .passphrase(None)
        .subkeys(vec![subkey])
        .build()
        .map_err(|e| err(e.to_string()))?;
    let key = params.generate(&mut *rng).map_err(|e| err(e.to_string()))?;
    key.to_armored_string(ArmorOptions::default())
        .map_err(|e| err(e.to_string()))
}
