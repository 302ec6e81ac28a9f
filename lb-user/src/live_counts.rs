//! The data path's live connection counts (`REAL_CONNS`, a `BPF_F_MMAPABLE` array), mapped
//! into lbd's memory so that lbd changes them with atomic operations, as the data path does.
//! Writing an element through bpf(2) would copy a whole value over the data path's concurrent
//! adds and lose them.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{AtomicI64, Ordering},
};

use lb_common::{RealConns, real_conns};

/// `REAL_CONNS`'s memory, shared with the data path.
pub struct LiveCounts {
    base: NonNull<u8>,
    len: usize,
    entries: u32,
}

// SAFETY: the mapping is plain shared memory; every access goes through atomics.
unsafe impl Send for LiveCounts {}
// SAFETY: as above.
unsafe impl Sync for LiveCounts {}

/// Array elements are laid out 8-byte aligned (`round_up(value_size, 8)`).
const STRIDE: usize = size_of::<RealConns>().next_multiple_of(8);

impl LiveCounts {
    /// Maps the array map `fd` of `entries` [`RealConns`] values.
    pub fn map(fd: BorrowedFd<'_>, entries: u32) -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .unwrap_or(4096)
            .max(1);
        let len = (STRIDE * entries as usize).next_multiple_of(page);
        // SAFETY: a new shared mapping of the map's data, which the kernel sized at least
        // `len` bytes for an mmapable array of `entries` elements; nothing else is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(LiveCounts { base, len, entries })
    }

    /// The counter at byte `offset` (`lb_common::real_conns`) of real server `id`.
    fn counter(&self, id: u32, offset: usize) -> Option<&AtomicI64> {
        if id >= self.entries || offset + 8 > size_of::<RealConns>() || !offset.is_multiple_of(8) {
            return None;
        }
        // SAFETY: within the mapping (checked above), 8-byte aligned (page-aligned base,
        // 8-byte stride and offset), and only ever accessed atomically by lbd and the data
        // path; the mapping lives as long as `self`.
        Some(unsafe {
            &*self
                .base
                .as_ptr()
                .add(id as usize * STRIDE + offset)
                .cast::<AtomicI64>()
        })
    }

    /// Adds `delta` to a counter of real server `id`.
    pub fn add(&self, id: u32, offset: usize, delta: i64) {
        if let Some(c) = self.counter(id, offset) {
            c.fetch_add(delta, Ordering::SeqCst);
        }
    }

    /// Sets a counter of real server `id`.
    pub fn set(&self, id: u32, offset: usize, value: i64) {
        if let Some(c) = self.counter(id, offset) {
            c.store(value, Ordering::SeqCst);
        }
    }

    /// Counts a connection in `state` to real server `id` in the connection table.
    pub fn opened(&self, id: u32, state: u8) {
        self.add(id, class_of(state), 1);
    }

    /// Takes a connection in `state` to real server `id` off the connection table's counts.
    pub fn closed(&self, id: u32, state: u8) {
        self.add(id, class_of(state), -1);
    }

    /// Sets real server `id`'s half-open counts.
    pub fn set_half_open(&self, id: u32, active: i64, inactive: i64) {
        self.set(id, real_conns::HALF_OPEN_ACTIVE, active);
        self.set(id, real_conns::HALF_OPEN_INACTIVE, inactive);
    }
}

/// The connection table's counter a connection in `state` counts in.
fn class_of(state: u8) -> usize {
    if lb_common::tcp_state::is_active(state) {
        real_conns::ACTIVE
    } else {
        real_conns::INACTIVE
    }
}

impl Drop for LiveCounts {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; no reference outlives `self`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
