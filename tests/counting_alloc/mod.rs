//! A global allocator that counts allocations (and reallocations) made on the
//! current thread, and the bytes they hold, for tests that prove "no allocation per
//! message" or "so many bytes per idle connection" with a count, not a time.
//! Include with `mod counting_alloc;`: it installs itself as the test binary's
//! global allocator.
#![allow(dead_code)] // each test binary uses part of it

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add_live(bytes: isize) {
    let _ = LIVE.try_with(|c| {
        let live = c.get() + bytes;
        c.set(live);
        let _ = PEAK.try_with(|p| p.set(p.get().max(live)));
    });
}

// SAFETY: defers to the system allocator; only counts calls on this thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        add_live(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_live(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        add_live(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread so far.
pub fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

/// Bytes allocated on this thread and not freed (frees of memory allocated on
/// another thread count here too: compare two readings taken on one thread).
pub fn live_bytes() -> isize {
    LIVE.with(|c| c.get())
}

/// The most bytes live on this thread since the last [`reset_peak`].
pub fn peak_bytes() -> isize {
    PEAK.with(|c| c.get())
}

/// Starts a new peak from the bytes live now.
pub fn reset_peak() {
    let live = live_bytes();
    PEAK.with(|c| c.set(live));
}
