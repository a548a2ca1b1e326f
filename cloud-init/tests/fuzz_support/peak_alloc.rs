//! A global allocator for the property tests of the readers: it measures, per thread, the
//! peak of bytes allocated and not yet freed while a closure runs, so that a test can assert
//! that a length field claiming gigabytes did not make the reader reserve gigabytes.
//!
//! Why this and not a child process under RLIMIT_AS: a limit on address space kills (or makes
//! fail) the whole child at the first large reservation, which tells nothing about which input
//! did it and breaks proptest's shrinking; it also counts thread stacks and the test harness.
//! Counting in the allocator is exact, per thread (tests run in parallel), and lets the failing
//! case shrink to its smallest form. An over-large request is still passed on to the system
//! allocator: with Linux's overcommit a reservation of a few GiB that is never written costs
//! nothing and the test fails on the measured peak; one too large even for that makes the
//! process abort with "memory allocation of N bytes failed", which fails the test run too.
//!

// A global allocator is an `unsafe impl` by definition; this one only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Install with `#[global_allocator] static A: PeakAlloc = PeakAlloc;` in the test binary.
pub struct PeakAlloc;

thread_local! {
    // Const-initialised Cells have no destructor: they can be used from inside the allocator,
    // at any point of a thread's life, without allocating.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(bytes: usize) {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        let live = LIVE.with(|l| {
            l.set(l.get().saturating_add(bytes));
            l.get()
        });
        PEAK.with(|p| p.set(p.get().max(live)));
    }
}

fn shrank(bytes: usize) {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        // Memory allocated before the measurement may be freed during it: saturating keeps
        // the count from wrapping and can only make the peak larger than the truth.
        LIVE.with(|l| l.set(l.get().saturating_sub(bytes)));
    }
}

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: `ptr` came from `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            shrank(layout.size() - new_size);
        }
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by its contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Resets the measurement when `peak_during` ends, also by a panic (proptest catches panics
/// and goes on with the next case on the same thread).
struct Stop;

impl Drop for Stop {
    fn drop(&mut self) {
        MEASURING.with(|m| m.set(false));
    }
}

/// Runs `f` and returns its result with the peak number of bytes it held allocated at once
/// (on this thread, counted from zero at the start).
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    MEASURING.with(|m| m.set(true));
    let stop = Stop;
    let out = f();
    drop(stop);
    (out, PEAK.with(Cell::get))
}
