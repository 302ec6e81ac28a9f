//! The one way the program touches packet bytes: bounds-checked pointers.

use aya_ebpf::programs::XdpContext;

/// A pointer to a `T` at `offset` bytes into the packet, or `None` if the packet is too short.
/// The explicit comparison against `data_end` is what the verifier needs to see.
#[inline(always)]
pub fn at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
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
