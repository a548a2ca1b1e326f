//! Deterministic identifiers from the plan's seed: the same seed and purpose always give the
//! same UUID, so two builds of the same plan are byte-identical.

use sha2::{Digest, Sha256};

use crate::plan::Seed;

impl Seed {
    /// `n` (<= 32) bytes derived from the seed for one purpose, e.g. "root-fs-uuid".
    pub fn bytes(&self, purpose: &str, n: usize) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(self.0.as_bytes());
        h.update([0u8]);
        h.update(purpose.as_bytes());
        h.finalize()[..n.min(32)].to_vec()
    }

    /// An RFC 4122 version-4-shaped UUID derived from the seed for `purpose`.
    pub fn uuid(&self, purpose: &str) -> [u8; 16] {
        let mut u = [0u8; 16];
        u.copy_from_slice(&self.bytes(purpose, 16));
        u[6] = (u[6] & 0x0f) | 0x40;
        u[8] = (u[8] & 0x3f) | 0x80;
        u
    }

    /// The same UUID as text: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn uuid_string(&self, purpose: &str) -> String {
        format_uuid(&self.uuid(purpose))
    }

    /// A 32-bit value (MBR disk signature, FAT volume id).
    pub fn u32(&self, purpose: &str) -> u32 {
        let b = self.bytes(purpose, 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_purpose_separated() {
        let s = Seed("x".into());
        assert_eq!(s.uuid_string("a"), s.uuid_string("a"));
        assert_ne!(s.uuid_string("a"), s.uuid_string("b"));
        assert_ne!(Seed("y".into()).uuid_string("a"), s.uuid_string("a"));
        let t = s.uuid_string("a");
        assert_eq!(t.len(), 36);
        assert_eq!(&t[14..15], "4");
    }
}
