//! The hand-over between the data path's programs (see `lb_common::stage`): the `JUMP` program
//! array the entry tail-calls through, and the per-CPU [`Carry`] that tells the next stage what
//! the previous ones learnt.
//!
//! An XDP run, tail calls included, keeps its CPU to itself, so one per-CPU value is enough and
//! needs no locking. Each stage re-derives its packet pointers through `ptr::at`: what crosses
//! a tail call is offsets and map values, never pointers. Everything in [`Carry`] is written
//! before it is read on every path (older verifiers refuse reads of stack slots never written,
//! and a map value read before it is written would be the previous packet's).

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use lb_common::{Conn, FlowKey, Iface, RealServer, Service, Stat, stage};

use crate::{Verdict, drop};

/// The stages, by `lb_common::stage` index; lbd fills it with the programs it loaded.
#[map]
static JUMP: ProgramArray = ProgramArray::with_max_entries(stage::COUNT, 0);

/// What one stage hands the next (one per CPU).
#[map]
static CARRY: PerCpuArray<Carry> = PerCpuArray::with_max_entries(1, 0);

/// A packet of a flow, as the parser summarised it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Packet {
    /// The 5-tuple, addresses and ports in network order. For an ICMP error: its own
    /// addresses, ports zero, protocol ICMP.
    pub flow: FlowKey,
    /// IPv4 total length (what IPVS counts as the packet's bytes).
    pub ip_len: u16,
    /// Offset of the TCP/UDP header (after IP options); of the ICMP header for an error. A
    /// byte, as every offset here: loaded from the map, its width is the bound the verifier
    /// knows it by (kernels before 6.3 do not learn a packet range from a check against
    /// `data_end` for an offset that may exceed 64 KiB).
    pub l4_offset: u8,
    /// TCP flags byte (0 for UDP and ICMP, and for a later fragment, which has no header).
    pub tcp_flags: u8,
    /// The IP identification (network order; IPv4's 16 bits, IPv6's 32): with the addresses
    /// and protocol, what a datagram's fragments share.
    pub ip_id: u32,
    /// [`WHOLE`], [`FIRST_FRAGMENT`] (has the ports, more follow) or [`LATER_FRAGMENT`] (no
    /// ports: `flow` is its first fragment's).
    pub fragment: u8,
    /// What the connection lookup found: [`ENTRY_REFRESHED`] when this packet refreshed its
    /// entry's timestamp (at most about once a second per flow, and on state changes),
    /// [`ENTRY_HALF_OPEN`] when the entry is in the half-open table.
    pub entry: u8,
    pub _pad: u16,
}

/// See [`Packet::entry`].
pub const ENTRY_REFRESHED: u8 = 1 << 0;
/// See [`Packet::entry`].
pub const ENTRY_HALF_OPEN: u8 = 1 << 1;

/// A datagram in one piece.
pub const WHOLE: u8 = 0;
/// The first fragment of a datagram (offset 0, more fragments).
pub const FIRST_FRAGMENT: u8 = 1;
/// A fragment after the first: payload only.
pub const LATER_FRAGMENT: u8 = 2;

/// The packet an ICMP error quotes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Quote {
    /// Its 5-tuple, as the quoted header has it.
    pub flow: FlowKey,
    /// Offsets of the quoted IPv4 header and of its TCP/UDP header (at most 82 and 142).
    pub ip_offset: u8,
    pub l4_offset: u8,
    pub _pad: u16,
}

/// Everything the stages pass on.
#[repr(C)]
pub struct Carry {
    pub packet: Packet,
    /// Set for ICMP errors only.
    pub quote: Quote,
    /// The service of a new flow (entry → schedule).
    pub service: Service,
    /// The connection (NAT replies: its reply entry).
    pub conn: Conn,
    /// The real server the packet goes to.
    pub real: RealServer,
    /// The NIC the packet came in by, as lbd described it (MAC all zero: not described).
    pub ingress: Iface,
    /// Which NIC `ingress` describes, and as of which version of `IFACES`: the next packet
    /// by the same NIC reuses it (the entry is kept from packet to packet, per CPU).
    pub ingress_ifindex: u32,
    pub ingress_version: u32,
}

/// This CPU's carry value.
#[inline(always)]
pub fn carry() -> Result<&'static mut Carry, Verdict> {
    match CARRY.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a live per-CPU array; an XDP run (tail calls included)
        // has the CPU to itself, and each program takes this reference once.
        Some(ptr) => Ok(unsafe { &mut *ptr }),
        None => Err(drop(Stat::DropNoStage)),
    }
}

/// Continues with stage `index`; only comes back if the stage is missing, which is counted
/// and the packet dropped (a half-loaded data path must not pass traffic to the kernel that
/// it would have balanced).
#[inline(always)]
pub fn jump(ctx: &XdpContext, index: u32) -> Verdict {
    // SAFETY: a tail call on our own context; on success control never returns here.
    unsafe { JUMP.tail_call(ctx, index) };
    drop(Stat::DropNoStage)
}
