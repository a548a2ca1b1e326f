//! cloud-init NoCloud seeds (volume `cidata`): an ISO 9660 writer and a FAT variant.
//! It knows nothing of ECS: it packs user-data, meta-data and network-config bytes.
//!
//! CONTRACT (used by `ecs-build config new|seed` and the image pipeline): the functions
//! below keep these signatures.
//!
//! The ISO is written here byte by byte (`iso9660`): no crate writes reproducible ISO 9660
//! with Joliet and Rock Ridge, and the shape a seed needs is small. The FAT variant is made by
//! dosfstools and mtools (`fat`), the same tools cloud-localds uses. `read_iso_file` takes a
//! file back out of a seed without mounting it, for the appliance agent.

mod fat;
mod iso9660;
mod meta_data;
mod time;

pub use iso9660::read::read_iso_file;
pub use meta_data::meta_data;

/// The volume label cloud-init's NoCloud datasource looks for.
pub const VOLUME_ID: &str = "cidata";

/// The files of a NoCloud seed, in the filesystem root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFiles {
    pub user_data: Vec<u8>,
    pub meta_data: Vec<u8>,
    pub network_config: Option<Vec<u8>>,
}

/// A file of the seed: its name in the root, contents and permission bits.
type Entry<'a> = (&'static str, &'a [u8], u32);

impl SeedFiles {
    /// (name in the seed, contents, permission bits) for each file present, then `extra`.
    /// user-data and the extra files often hold secrets, so Rock Ridge shows them readable by
    /// their owner (root) only.
    fn entries<'a>(&'a self, extra: &[(&'static str, &'a [u8])]) -> Result<Vec<Entry<'a>>, SeedError> {
        let mut out = vec![
            ("user-data", self.user_data.as_slice(), 0o400),
            ("meta-data", self.meta_data.as_slice(), 0o444),
        ];
        if let Some(network) = &self.network_config {
            out.push(("network-config", network.as_slice(), 0o444));
        }
        for &(name, data) in extra {
            // FAT compares names without case; so does this check, for both formats.
            if let Some(&(first, _, _)) = out.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(name)) {
                return Err(SeedError::NameClash {
                    first,
                    second: name,
                    iso_name: name.to_string(),
                });
            }
            out.push((name, data, 0o400));
        }
        Ok(out)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {name} is {size} bytes; at most {max} fit")]
    TooLarge { name: &'static str, size: u64, max: u64 },
    #[error("timestamp {timestamp} is past 2155-12-31, the last date ISO 9660 directories can hold")]
    Timestamp { timestamp: u64 },
    #[error("seed files {first} and {second} would both be named {iso_name} in ISO 9660")]
    NameClash {
        first: &'static str,
        second: &'static str,
        iso_name: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a readable ISO 9660 seed: {0}")]
    Malformed(String),
    #[error(transparent)]
    MissingTool(#[from] host_util::MissingTool),
    #[error(transparent)]
    Command(#[from] host_util::CommandError),
}

/// An ISO 9660 image (Joliet + Rock Ridge) with volume id `cidata`; byte-identical for
/// identical inputs and `timestamp` (seconds since the epoch, e.g. SOURCE_DATE_EPOCH).
pub fn iso_image(files: &SeedFiles, timestamp: u64) -> Result<Vec<u8>, SeedError> {
    iso_image_with(files, &[], timestamp)
}

/// `iso_image` with `extra` files (name, contents) in the root beside NoCloud's own, which
/// cloud-init does not read: the place for data meant for other readers of the seed.
pub fn iso_image_with(
    files: &SeedFiles,
    extra: &[(&'static str, &[u8])],
    timestamp: u64,
) -> Result<Vec<u8>, SeedError> {
    let entries = files.entries(extra)?;
    let iso_files: Vec<iso9660::IsoFile<'_>> = entries
        .iter()
        .map(|&(name, data, mode)| iso9660::IsoFile { name, data, mode })
        .collect();
    iso9660::write(&iso_files, VOLUME_ID, timestamp)
}

/// A FAT image labelled `cidata`, the variant cloud-init also accepts. Needs `mkfs.fat`
/// (dosfstools) and `mcopy` (mtools). Byte-identical for identical inputs, `timestamp` and
/// `volume_id` (the FAT serial number); timestamps outside FAT's 1980-2107 are clamped.
pub fn fat_image(files: &SeedFiles, timestamp: u64, volume_id: u32) -> Result<Vec<u8>, SeedError> {
    fat_image_with(files, &[], timestamp, volume_id)
}

/// `fat_image` with `extra` files in the root, as `iso_image_with`.
pub fn fat_image_with(
    files: &SeedFiles,
    extra: &[(&'static str, &[u8])],
    timestamp: u64,
    volume_id: u32,
) -> Result<Vec<u8>, SeedError> {
    let entries: Vec<(&'static str, &[u8])> = files
        .entries(extra)?
        .into_iter()
        .map(|(name, data, _)| (name, data))
        .collect();
    fat::write(&entries, VOLUME_ID, timestamp, volume_id)
}
