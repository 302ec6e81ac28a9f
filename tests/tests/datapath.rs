//! Data-path fixtures: lb's XDP program, as compiled into `lb-user`, run packet by packet through
//! BPF_PROG_TEST_RUN. Each fixture (Katran style) sets up the maps, sends packets and checks the
//! verdict, the packet that comes out byte for byte, the data-path counters each packet bumps,
//! and the connection table and traffic counters afterwards. Needs root (CI runs as root).
//!
//! Layout (`datapath/`):
//! - `checksum.rs`: RFC 1071 checksums, written independently of the program;
//! - `wire.rs`: field offsets, read-only header views, `describe`/hexdump diff for reports;
//! - `packet.rs`: the packet builder (Ethernet, IPv4 with options, TCP, UDP, ICMP, IP-in-IP,
//!   IPv6, ARP, VLAN), checksums computed;
//! - `harness.rs`: loading the object, typed maps, running one packet;
//! - `fixture.rs`: the fixture format and the table runner;
//! - `world.rs`: the addresses, MACs, services and real servers fixtures use, and shorthands;
//! - `tables/`: the fixture tables.
//!
//! `LB_FIXTURE_PERF=100000 cargo test -p lb-tests --test datapath -- --nocapture` also prints
//! the kernel-measured time per packet of every fixture packet.

#[path = "datapath/checksum.rs"]
mod checksum;
#[path = "datapath/fixture.rs"]
mod fixture;
#[path = "datapath/harness.rs"]
mod harness;
#[path = "datapath/packet.rs"]
mod packet;
#[path = "datapath/tables/mod.rs"]
mod tables;
#[path = "datapath/wire.rs"]
mod wire;
#[path = "datapath/world.rs"]
mod world;

use fixture::run_table;

#[test]
fn packets_not_balanced_pass_untouched() {
    run_table("parse", tables::parse::fixtures());
}

#[test]
fn direct_routing() {
    run_table("dr", tables::dr::fixtures());
}

#[test]
fn scheduling() {
    run_table("sched", tables::sched::fixtures());
}

#[test]
fn connection_table() {
    run_table("conns", tables::conns::fixtures());
}

#[test]
fn traffic_counters() {
    run_table("stats", tables::stats::fixtures());
}

/// The kernel refuses XDP test input shorter than an Ethernet header (EINVAL), so a frame cut
/// inside the Ethernet header cannot be a fixture; the shortest one is the 14-byte frame in the
/// `parse` table. This pins that down, so the gap is known rather than assumed.
#[test]
fn frames_shorter_than_ethernet_are_refused_by_the_kernel() {
    let director = harness::Director::load();
    let frame = world::http(1, packet::SYN).bytes();
    let err = director
        .run(&frame[..13])
        .expect_err("a 13-byte XDP test input was accepted");
    match &err {
        aya::programs::ProgramError::SyscallError(e) => {
            // EINVAL
            assert_eq!(
                e.io_error.kind(),
                std::io::ErrorKind::InvalidInput,
                "{err:?}"
            );
        }
        other => panic!("expected EINVAL from BPF_PROG_TEST_RUN, got {other:?}"),
    }
}
