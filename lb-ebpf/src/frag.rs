//! Fragments of balanced datagrams (a large UDP datagram, a TCP segment fragmented on the
//! way): only the first fragment carries the ports, so it records its flow by what all of
//! a datagram's fragments share (addresses, IP ID, protocol: [`FragKey`]); a later fragment
//! looks its flow up and goes where the first went, as Cilium does. A later fragment that
//! arrives before its first one, or whose first was not ours, is the kernel's.

use aya_ebpf::{macros::map, maps::LruHashMap};
use lb_common::{FRAG_TABLE_SIZE, FlowKey, FragKey, Stat};

use crate::{Verdict, pass, stage::Packet, stats};

/// First fragments' flows, by what their later fragments share with them.
#[map]
static FRAGS: LruHashMap<FragKey, FlowKey> = LruHashMap::with_max_entries(FRAG_TABLE_SIZE, 0);

#[inline(always)]
fn key(packet: &Packet) -> FragKey {
    FragKey {
        saddr: packet.flow.saddr,
        daddr: packet.flow.daddr,
        id: packet.ip_id,
        proto: packet.flow.proto,
        family: packet.flow.family,
        _pad16: 0,
    }
}

/// A first fragment: remembered for the later ones.
#[inline(always)]
pub fn remember(packet: &Packet) {
    // A full table forgets the oldest datagram: its later fragments go to the kernel.
    let _ = FRAGS.insert(&key(packet), &packet.flow, 0);
}

/// A later fragment: its first fragment's flow (ports included) into `packet.flow`.
#[inline(always)]
pub fn resolve(packet: &mut Packet) -> Result<(), Verdict> {
    // SAFETY: plain-data value copied out at once.
    match unsafe { FRAGS.get(&key(packet)) } {
        Some(flow) => {
            packet.flow = *flow;
            stats::count(Stat::Fragment);
            Ok(())
        }
        None => Err(pass(Stat::PassFragment)),
    }
}
