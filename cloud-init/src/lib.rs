//! cloud-init NoCloud seeds (volume `cidata`): an ISO 9660 writer and a FAT variant.
//! It knows nothing of ECS: it packs user-data, meta-data and network-config bytes.
//!
//! CONTRACT (used by `ecs-build config new|seed` and the image pipeline): the functions
//! below keep these signatures.

/// The files of a NoCloud seed, in the filesystem root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFiles {
    pub user_data: Vec<u8>,
    pub meta_data: Vec<u8>,
    pub network_config: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {name} is {size} bytes; at most {max} fit")]
    TooLarge { name: &'static str, size: u64, max: u64 },
}

/// meta-data YAML with the instance id and hostname, values quoted for YAML 1.1.
pub fn meta_data(instance_id: &str, local_hostname: &str) -> String {
    let _ = (instance_id, local_hostname);
    unimplemented!("cloud-init helper fills this")
}

/// An ISO 9660 image (Joliet + Rock Ridge) with volume id `cidata`; byte-identical for
/// identical inputs and `timestamp` (seconds since the epoch, e.g. SOURCE_DATE_EPOCH).
pub fn iso_image(files: &SeedFiles, timestamp: u64) -> Result<Vec<u8>, SeedError> {
    let _ = (files, timestamp);
    unimplemented!("cloud-init helper fills this")
}

/// A FAT image labelled `cidata`, the variant cloud-init also accepts.
pub fn fat_image(files: &SeedFiles, timestamp: u64, volume_id: u32) -> Result<Vec<u8>, SeedError> {
    let _ = (files, timestamp, volume_id);
    unimplemented!("cloud-init helper fills this")
}
