//! The Internet checksum's one's-complement sum (RFC 1071) over a stretch of packet bytes of
//! any length: what a tunnel checksum (GUE's UDP checksum, GRE's) needs over the client's
//! whole packet. IPVS computes the same sum in software (`skb_checksum`) for what it forwards.
//!
//! For the verifier: the walk is a `bpf_loop` whose step is verified once, whatever the
//! length. Each step adds one piece through `bpf_csum_diff` (256, 16 or 4 bytes, the largest
//! that is left) or, last, the 0-3 bytes of the tail; the walk's position lives in a per-CPU
//! map value rather than on the stack, so that kernels before 6.7 (which verify a callback
//! from the caller's exact state, see `sched`) cannot take the position for a constant and
//! drop the branches it decides. Only the context pointer is passed on the stack.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_md,
    helpers::{bpf_csum_diff, bpf_loop, bpf_xdp_load_bytes},
    macros::map,
    maps::PerCpuArray,
    programs::XdpContext,
};
use lb_common::csum;

/// The farthest into the packet a sum may reach (beyond any XDP frame without fragments); a
/// mask too, so that the verifier knows the position's bounds.
const MAX_END: u32 = 0x3fff;
/// Steps of the walk: enough for [`MAX_END`] bytes (63 pieces of 256, then at most 15 of 16,
/// 3 of 4 and the tail).
const MAX_STEPS: u32 = 84;

/// Where the walk is, and what it has summed.
#[repr(C)]
struct Walk {
    /// Next byte to add (from the start of the packet).
    offset: u32,
    /// One past the last byte to add.
    end: u32,
    /// Partial sums of the pieces, added up (folded at the end).
    acc: u64,
}

/// This CPU's walk (an XDP run has its CPU to itself).
#[map]
static SUM: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

/// What the step gets on the stack: the context, to find the packet.
#[repr(C)]
struct Frame {
    xdp: *mut xdp_md,
}

/// The one's-complement sum (folded to 16 bits, not complemented) of the `len` bytes at
/// `offset`, as 16-bit words read in native order (like [`csum`]'s helpers); `offset` must be
/// even relative to the start of what the checksum covers. `None` if the bytes are not all in
/// the packet.
#[inline(always)]
pub fn over(ctx: &XdpContext, offset: u32, len: u32) -> Option<u16> {
    let slot = SUM.get_ptr_mut(0)?;
    let end = offset.checked_add(len)?;
    if end > MAX_END {
        return None;
    }
    let mut frame = Frame { xdp: ctx.ctx };
    // SAFETY: this CPU's slot; the step finds it itself and reads `frame` only as a `Frame`,
    // which outlives the call; bpf_loop bounds the iterations.
    let walk = unsafe {
        slot.write(Walk {
            offset,
            end,
            acc: 0,
        });
        bpf_loop(
            MAX_STEPS,
            step as *mut c_void,
            (&mut frame as *mut Frame).cast(),
            0,
        );
        slot.read()
    };
    if walk.offset != walk.end {
        return None;
    }
    let acc = (walk.acc & 0xffff_ffff) + (walk.acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    Some(csum::fold(acc as u32))
}

/// One piece of the walk; returns 1 to stop (done, or the bytes are not in the packet).
#[inline(never)]
extern "C" fn step(_i: u32, ctx: *mut c_void) -> i64 {
    let Some(slot) = SUM.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's slot, written by `over` before the loop; `ctx` is its `Frame`.
    let (walk, xdp) = unsafe { (&mut *slot, (*(ctx as *const Frame)).xdp) };
    // Masked before any comparison, so that the compiler cannot drop the mask as implied by
    // one: the verifier needs the bound to add the position to a packet pointer.
    let (offset, end) = (walk.offset & MAX_END, walk.end);
    if offset >= end {
        return 1;
    }
    let left = end - offset;
    let piece: usize = if left >= 256 {
        256
    } else if left >= 16 {
        16
    } else if left >= 4 {
        4
    } else {
        return tail(walk, xdp, offset, left);
    };
    // SAFETY: the program's own context.
    let (data, data_end) = unsafe { ((*xdp).data as usize, (*xdp).data_end as usize) };
    let at = data + offset as usize;
    if at + piece > data_end {
        return 1;
    }
    // SAFETY: the `piece` bytes at `at` are in the packet (checked just above); the helper
    // only reads them.
    let sum = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, at as *mut u32, piece as u32, 0) };
    if sum < 0 {
        return 1;
    }
    walk.acc += sum as u64 & 0xffff_ffff;
    walk.offset = offset + piece as u32;
    0
}

/// The last 1-3 bytes, copied out by the kernel (a bounds check of one byte is one the
/// compiler rewrites into a form the verifier learns nothing from), summed as a word and an
/// odd byte padded with zero (RFC 1071).
#[inline(always)]
fn tail(walk: &mut Walk, xdp: *mut xdp_md, offset: u32, left: u32) -> i64 {
    let mut bytes = [0u8; 4];
    // 1-3 (`left` is, as `step` found it), written so that the verifier sees 1-4 whatever
    // the compiler does with the comparisons before.
    let len = ((left.wrapping_sub(1)) & 3) + 1;
    // SAFETY: `bytes` has room for the at most four bytes asked for.
    if unsafe { bpf_xdp_load_bytes(xdp, offset, bytes.as_mut_ptr().cast(), len) } != 0 {
        return 1;
    }
    walk.acc += u64::from(u16::from_ne_bytes([bytes[0], bytes[1]]))
        + u64::from(u16::from_ne_bytes([bytes[2], bytes[3]]));
    walk.offset = walk.end;
    1
}
