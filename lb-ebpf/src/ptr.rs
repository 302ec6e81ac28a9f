//! The one way the program touches packet bytes: bounds-checked pointers.

use aya_ebpf::programs::XdpContext;

/// Every offset we read at lies in the headers, well inside the first 512 bytes (the deepest
/// is an ICMP error's quoted ports: 14 + 60 + 8 + 60 + 8). Masking with this keeps an offset
/// provably bounded for the verifier even after the compiler spills it to the stack and
/// reloads it without its bounds; an offset beyond it is refused, never wrapped.
const OFFSET_MASK: usize = 0x1ff;

/// A pointer to a `T` at `offset` bytes into the packet, or `None` if the packet is too short.
/// The explicit comparison against `data_end` is what the verifier needs to see.
#[inline(always)]
pub fn at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    if offset > OFFSET_MASK {
        return None;
    }
    let offset = offset & OFFSET_MASK;
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Mutable variant of [`at`].
#[inline(always)]
pub fn at_mut<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    at::<T>(ctx, offset).map(|p| p as *mut T)
}
