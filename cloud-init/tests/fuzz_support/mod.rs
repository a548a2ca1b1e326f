//! What the readers' property tests share: the allocation meter, the edits made to real
//! images, and the case count. image-layout's tests include this directory by path, so that
//! both crates measure and mutate the same way.

#![allow(dead_code)]

pub mod edit;
pub mod peak_alloc;

use proptest::test_runner::Config;

/// Cases per property when `PROPTEST_CASES` is not set: a few seconds each in a debug build.
const DEFAULT_CASES: u32 = 1000;

/// The proptest configuration of every reader property: `DEFAULT_CASES` cases, or as many as
/// `PROPTEST_CASES` says (e.g. `PROPTEST_CASES=200000` for a long local run). Failures are not
/// persisted to files: each bug found gets a named regression test instead.
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The most a reader may hold allocated at once for an input of `len` bytes: a fixed MiB
/// for buffers plus a few times the input (what it can actually read, with `Vec`'s doubling).
/// What a damaged length field claims must not count.
pub fn allocation_bound(len: usize) -> usize {
    (1 << 20) + 4 * len
}

/// An error from a reader must say where or how much: an offset, sector, size or checksum.
pub fn assert_error_names_a_place(message: &str) {
    assert!(
        !message.is_empty() && message.bytes().any(|b| b.is_ascii_digit()),
        "the error names no offset, size or sector: {message:?}"
    );
}
