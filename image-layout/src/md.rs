//! md RAID1 members with a version 1.2 superblock (4 KiB from the start of each member),
//! written without the md driver, as `mdadm --create --level=1 --raid-devices=2
//! --assume-clean` would leave them: same array UUID, name, creation time and event count on
//! every member, one role each, and `resync_offset` at its maximum (in sync), so the first
//! assembly starts no resync. The data offset and array size follow mdadm's own choice for
//! the device size; the bad-block log space is reserved where mdadm reserves it. There is no
//! write-intent bitmap (as with `--bitmap=none`; mdadm 4.2 adds an internal one by default for
//! members of 100 GB and more): after an unclean shutdown the mirror resyncs in full. The
//! appliance can add one to the running array with `mdadm --grow --bitmap=internal`.
//! Layout: the kernel's `struct mdp_superblock_1` (`include/uapi/linux/raid/md_p.h`).

use std::io::{self, Read, Seek, SeekFrom};

use crate::plan::PlanError;

pub const SECTOR: u64 = 512;
pub const MAGIC: u32 = 0xa92b_4efc;
/// Version 1.2: the superblock sits 8 sectors (4 KiB) into the member.
pub const SUPER_OFFSET_SECTORS: u64 = 8;
/// The fixed part of the superblock; `dev_roles` (2 bytes per device) follow it.
const BASE_SIZE: usize = 256;
pub const LEVEL_RAID1: u32 = 1;
/// `dev_roles` values for devices without an active role.
pub const ROLE_SPARE: u16 = 0xffff;
pub const ROLE_FAULTY: u16 = 0xfffe;

/// Where data lives on each member, in sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub data_offset: u64,
    /// Sectors usable for data on the member (to its end).
    pub data_size: u64,
    /// Size of the array (the md device), rounded down to 64 KiB as mdadm does for RAID1.
    pub array_size: u64,
    /// Reserved for the bad-block log: sectors from the superblock, and length.
    pub bblog_offset: u32,
    pub bblog_size: u16,
}

/// mdadm's `choose_bm_space`: room kept for a bitmap, in sectors.
fn bitmap_space(sectors: u64) -> u64 {
    if sectors < 64 * 2 {
        0
    } else if sectors - 64 * 2 >= 200 * 1024 * 1024 * 2 {
        128 * 2
    } else if sectors - 4 * 2 > 8 * 1024 * 1024 * 2 {
        64 * 2
    } else {
        4 * 2
    }
}

/// The geometry mdadm 4.x chooses for a 1.2 RAID1 member of `device_size` bytes: a data
/// offset leaving room for the superblock, a bitmap and reshape headroom (about 0.1% of the
/// device, at most 128 MiB), rounded up to 1 MiB.
pub fn geometry(device_size: u64) -> Result<Geometry, PlanError> {
    let sectors = device_size / SECTOR;
    let bm_space = bitmap_space(sectors);
    let mut headroom: u64 = 128 * 1024 * 2;
    while headroom > 0 && (headroom << 10) > sectors {
        headroom >>= 1;
    }
    let data_offset = (12 * 2 + bm_space + headroom).div_ceil(2048) * 2048;
    if sectors <= data_offset {
        return Err(PlanError(format!(
            "RAID1 member of {device_size} bytes is too small: md needs {} bytes before the data",
            data_offset * SECTOR
        )));
    }
    let data_size = sectors - data_offset;
    // mdadm keeps the array size in KiB, rounded down to 64 KiB for RAID1.
    let array_size = ((data_size / 2) & !63) * 2;
    // The bad-block log goes after the (unused) bitmap space, or just before the data.
    let bm_offset = 8;
    let (bblog_offset, bblog_size) = if data_offset >= SUPER_OFFSET_SECTORS + bm_offset + bm_space + 8 {
        ((bm_offset + bm_space) as u32, 8)
    } else if data_offset >= SUPER_OFFSET_SECTORS + 16 {
        ((data_offset - 8 - SUPER_OFFSET_SECTORS) as u32, 8)
    } else {
        (0, 0)
    };
    Ok(Geometry {
        data_offset,
        data_size,
        array_size,
        bblog_offset,
        bblog_size,
    })
}

/// What all members of the array share.
#[derive(Debug, Clone)]
pub struct ArraySpec {
    pub uuid: [u8; 16],
    /// `host:name`; `any:name` makes every host treat the array as its own (assembled as
    /// /dev/md/name). At most 32 bytes.
    pub name: String,
    /// Seconds since the epoch, for creation and update times.
    pub time: u64,
    pub raid_disks: u32,
    pub geometry: Geometry,
}

/// One member: its slot (dev_number = role) and its own UUID.
#[derive(Debug, Clone, Copy)]
pub struct MemberSpec {
    pub dev_number: u32,
    pub device_uuid: [u8; 16],
}

/// The superblock bytes for one member (256 bytes plus the roles, padded to a sector).
pub fn superblock(array: &ArraySpec, member: &MemberSpec) -> Result<Vec<u8>, PlanError> {
    if array.name.len() > 32 {
        return Err(PlanError(format!(
            "md array name {:?} is longer than 32 bytes",
            array.name
        )));
    }
    let g = &array.geometry;
    let max_dev = array.raid_disks;
    let len = (BASE_SIZE + 2 * max_dev as usize).div_ceil(SECTOR as usize) * SECTOR as usize;
    let mut sb = vec![0u8; len];
    put32(&mut sb, 0, MAGIC);
    put32(&mut sb, 4, 1); // major_version
    put32(&mut sb, 8, 0); // feature_map: no bitmap, no bad blocks recorded
    sb[16..32].copy_from_slice(&array.uuid);
    sb[32..32 + array.name.len()].copy_from_slice(array.name.as_bytes());
    let time = array.time & ((1 << 40) - 1);
    put64(&mut sb, 64, time); // ctime
    put32(&mut sb, 72, LEVEL_RAID1);
    put32(&mut sb, 76, 0); // layout
    put64(&mut sb, 80, g.array_size);
    put32(&mut sb, 88, 0); // chunksize
    put32(&mut sb, 92, array.raid_disks);
    put64(&mut sb, 128, g.data_offset);
    put64(&mut sb, 136, g.data_size);
    put64(&mut sb, 144, SUPER_OFFSET_SECTORS);
    put32(&mut sb, 160, member.dev_number);
    sb[168..184].copy_from_slice(&member.device_uuid);
    sb[186..188].copy_from_slice(&g.bblog_size.to_le_bytes());
    put32(&mut sb, 188, g.bblog_offset);
    put64(&mut sb, 192, time); // utime
    put64(&mut sb, 200, 0); // events: as mdadm --create writes them
    put64(&mut sb, 208, u64::MAX); // resync_offset: in sync
    put32(&mut sb, 220, max_dev);
    for role in 0..max_dev {
        let at = BASE_SIZE + 2 * role as usize;
        sb[at..at + 2].copy_from_slice(&(role as u16).to_le_bytes());
    }
    let csum = checksum(&sb);
    put32(&mut sb, 216, csum);
    Ok(sb)
}

/// mdadm's and the kernel's `calc_sb_1_csum`: the little-endian u32 words of the first
/// `256 + 2 * max_dev` bytes (with `sb_csum` taken as 0) summed into a u64, then the high
/// half added to the low half once.
pub fn checksum(sb: &[u8]) -> u32 {
    let max_dev = le32(sb, 220) as usize;
    let size = (BASE_SIZE + 2 * max_dev).min(sb.len());
    let mut sum: u64 = 0;
    let mut at = 0;
    while at + 4 <= size {
        if at != 216 {
            sum += u64::from(le32(sb, at));
        }
        at += 4;
    }
    if size - at == 2 {
        sum += u64::from(u16::from_le_bytes([sb[at], sb[at + 1]]));
    }
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

#[derive(Debug, thiserror::Error)]
pub enum MdReadError {
    #[error("reading the md superblock: {0}")]
    Io(#[from] io::Error),
    #[error("md superblock: checksum {stored:#010x} on disk, {computed:#010x} computed")]
    Checksum { stored: u32, computed: u32 },
    #[error("md superblock: {0}")]
    Malformed(String),
}

/// The essentials of a member's 1.2 superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub array_uuid: [u8; 16],
    pub name: String,
    pub level: u32,
    pub raid_disks: u32,
    /// Array size in sectors.
    pub size: u64,
    pub data_offset: u64,
    pub data_size: u64,
    pub dev_number: u32,
    pub device_uuid: [u8; 16],
    /// This member's role: 0.. for an active slot, `ROLE_SPARE` or `ROLE_FAULTY`.
    pub role: u16,
    pub events: u64,
    pub resync_offset: u64,
    pub ctime: u64,
}

impl Superblock {
    /// The array UUID as mdadm prints it: four groups of 8 hex digits joined by `:`.
    pub fn array_uuid_string(&self) -> String {
        mdadm_uuid(&self.array_uuid)
    }

    /// No resync pending.
    pub fn clean(&self) -> bool {
        self.resync_offset == u64::MAX
    }
}

/// A UUID in mdadm's notation (`--examine`, `--detail`, mdadm.conf).
pub fn mdadm_uuid(u: &[u8; 16]) -> String {
    u.chunks(4)
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads a version 1.2 superblock at 4 KiB into a member. `Ok(None)` when there is none.
pub fn read_superblock<R: Read + Seek>(r: &mut R) -> Result<Option<Superblock>, MdReadError> {
    r.seek(SeekFrom::Start(SUPER_OFFSET_SECTORS * SECTOR))?;
    let mut sb = Vec::with_capacity(1024);
    r.take(1024).read_to_end(&mut sb)?;
    if sb.len() < BASE_SIZE || le32(&sb, 0) != MAGIC {
        return Ok(None);
    }
    if le32(&sb, 4) != 1 {
        return Err(MdReadError::Malformed(format!(
            "major version {}, expected 1",
            le32(&sb, 4)
        )));
    }
    if le64(&sb, 144) != SUPER_OFFSET_SECTORS {
        return Err(MdReadError::Malformed(format!(
            "super_offset {}, expected {SUPER_OFFSET_SECTORS} for version 1.2",
            le64(&sb, 144)
        )));
    }
    let max_dev = le32(&sb, 220) as usize;
    if BASE_SIZE + 2 * max_dev > sb.len() {
        return Err(MdReadError::Malformed(format!(
            "max_dev {max_dev} does not fit 1 KiB"
        )));
    }
    let stored = le32(&sb, 216);
    let computed = checksum(&sb);
    if stored != computed {
        return Err(MdReadError::Checksum { stored, computed });
    }
    let dev_number = le32(&sb, 160);
    let role = if (dev_number as usize) < max_dev {
        let at = BASE_SIZE + 2 * dev_number as usize;
        u16::from_le_bytes([sb[at], sb[at + 1]])
    } else {
        ROLE_SPARE
    };
    let name_end = sb[32..64].iter().position(|b| *b == 0).unwrap_or(32);
    let mut array_uuid = [0u8; 16];
    array_uuid.copy_from_slice(&sb[16..32]);
    let mut device_uuid = [0u8; 16];
    device_uuid.copy_from_slice(&sb[168..184]);
    Ok(Some(Superblock {
        array_uuid,
        name: String::from_utf8_lossy(&sb[32..32 + name_end]).into_owned(),
        level: le32(&sb, 72),
        raid_disks: le32(&sb, 92),
        size: le64(&sb, 80),
        data_offset: le64(&sb, 128),
        data_size: le64(&sb, 136),
        dev_number,
        device_uuid,
        role,
        events: le64(&sb, 200),
        resync_offset: le64(&sb, 208),
        ctime: le64(&sb, 64) & ((1 << 40) - 1),
    }))
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn geometry_matches_mdadm_choices() {
        // 20 GiB: 16 MiB headroom + 64 KiB bitmap space + 12 KiB, rounded to 17 MiB.
        let g = geometry(20 << 30).unwrap();
        assert_eq!(g.data_offset, 34816);
        assert_eq!((g.bblog_offset, g.bblog_size), (136, 8));
        // Small devices get the 1 MiB minimum.
        let g = geometry(64 << 20).unwrap();
        assert_eq!(g.data_offset, 2048);
        assert_eq!(g.data_size, (64 << 11) - 2048);
        assert_eq!(g.array_size, g.data_size / 128 * 128);
        // 1 TiB: the full 128 MiB headroom, 128 KiB bitmap space.
        assert_eq!(geometry(1 << 40).unwrap().data_offset, 264192);
        assert!(geometry(1 << 20).is_err());
    }

    #[test]
    fn checksum_covers_roles_and_reads_back() {
        let array = ArraySpec {
            uuid: [7; 16],
            name: "any:permanent".into(),
            time: 1_700_000_000,
            raid_disks: 2,
            geometry: geometry(256 << 20).unwrap(),
        };
        let member = MemberSpec {
            dev_number: 1,
            device_uuid: [9; 16],
        };
        let sb = superblock(&array, &member).unwrap();
        assert_eq!(sb.len(), 512);
        assert_eq!(le32(&sb, 216), checksum(&sb));
        let mut img = vec![0u8; 8192];
        img[4096..4096 + 512].copy_from_slice(&sb);
        let read = read_superblock(&mut Cursor::new(img.clone())).unwrap().unwrap();
        assert_eq!(read.role, 1);
        assert_eq!(read.name, "any:permanent");
        assert_eq!(read.array_uuid_string(), "07070707:07070707:07070707:07070707");
        assert!(read.clean());
        assert_eq!(read.data_offset, 2048);
        img[4096 + 258] ^= 1; // role of device 1
        assert!(matches!(
            read_superblock(&mut Cursor::new(img)),
            Err(MdReadError::Checksum { .. })
        ));
        assert_eq!(read_superblock(&mut Cursor::new(vec![0u8; 8192])).unwrap(), None);
    }

    #[test]
    fn long_names_are_refused() {
        let array = ArraySpec {
            uuid: [0; 16],
            name: "x".repeat(33),
            time: 0,
            raid_disks: 2,
            geometry: geometry(64 << 20).unwrap(),
        };
        let member = MemberSpec {
            dev_number: 0,
            device_uuid: [0; 16],
        };
        assert!(superblock(&array, &member).is_err());
    }
}
