//! Edits made to a real image: known fields overwritten with extreme values, bytes flipped or
//! words overwritten anywhere in its headers, truncation and extension. Starting from what our
//! writers make keeps the readers past their magic numbers, where the length and offset fields
//! are; the extreme values are those that break arithmetic (0, 1, MAX, MAX - 1, sign bits,
//! sizes of a few GiB) and small ones that point back at the headers and directories
//! themselves (cycles).

use std::ops::Range;

use proptest::prelude::*;
use proptest::sample::select;

/// How a field is stored.
#[derive(Debug, Clone, Copy)]
pub enum Width {
    U8,
    Le16,
    Le32,
    Le64,
    /// The big-endian half of ISO 9660's both-endian fields.
    Be32,
}

/// A field of a format: its offset in the image and how it is stored.
pub type Field = (usize, Width);

#[derive(Debug, Clone)]
pub enum Edit {
    /// `value` cut to the field's width and stored at `at`.
    Set {
        at: usize,
        width: Width,
        value: u64,
    },
    Flip {
        at: usize,
        mask: u8,
    },
    Truncate {
        len: usize,
    },
    Extend {
        len: usize,
        fill: u8,
    },
}

/// Applies the edits in order; one that falls outside the (possibly truncated) image is
/// skipped.
pub fn apply(image: &mut Vec<u8>, edits: &[Edit]) {
    for edit in edits {
        match *edit {
            Edit::Set { at, width, value } => match width {
                Width::U8 => put(image, at, &[value as u8]),
                Width::Le16 => put(image, at, &(value as u16).to_le_bytes()),
                Width::Le32 => put(image, at, &(value as u32).to_le_bytes()),
                Width::Le64 => put(image, at, &value.to_le_bytes()),
                Width::Be32 => put(image, at, &(value as u32).to_be_bytes()),
            },
            Edit::Flip { at, mask } => {
                if let Some(b) = image.get_mut(at) {
                    *b ^= mask;
                }
            }
            Edit::Truncate { len } => image.truncate(len),
            Edit::Extend { len, fill } => image.resize(image.len() + len, fill),
        }
    }
}

/// Writes `bytes` at `at` if they fit.
pub fn put(image: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = image.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Values that break arithmetic or point back into the headers; cut to a field's width they
/// give that width's extremes too (`u64::MAX` is `u32::MAX` in a 32-bit field).
pub fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(u64::MAX - 511),
        Just(i64::MAX as u64),
        Just(u64::from(u32::MAX)),
        Just(u64::from(i32::MAX as u32)),
        Just(1 << 32),
        Just(3 << 30),
        Just(64 << 20),
        0u64..64,
        0u64..8192,
        any::<u64>(),
    ]
}

/// One of `fields` set to an extreme value.
pub fn set(fields: Vec<Field>) -> impl Strategy<Value = Edit> {
    (select(fields), extreme()).prop_map(|((at, width), value)| Edit::Set { at, width, value })
}

/// One edit: mostly a known field set to an extreme value; else a flip or a 32/64-bit word
/// anywhere in `hot` (headers, directories); sometimes truncation to anywhere in the image
/// or extension by up to 64 KiB.
pub fn edit(fields: Vec<Field>, hot: Range<usize>, image_len: usize) -> impl Strategy<Value = Edit> {
    let word = prop_oneof![Just(Width::Le32), Just(Width::Le64), Just(Width::Be32)];
    prop_oneof![
        6 => set(fields),
        2 => (hot.clone(), 1..=255u8).prop_map(|(at, mask)| Edit::Flip { at, mask }),
        2 => (hot, word, extreme()).prop_map(|(at, width, value)| Edit::Set { at, width, value }),
        1 => (0..=image_len).prop_map(|len| Edit::Truncate { len }),
        1 => (0..=65536usize, any::<u8>()).prop_map(|(len, fill)| Edit::Extend { len, fill }),
    ]
}

/// One to six edits.
pub fn edits(fields: Vec<Field>, hot: Range<usize>, image_len: usize) -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(fields, hot, image_len), 1..=6)
}
