//! The hashes of IPVS's hashing schedulers: `sh` (source hashing), `dh` (destination hashing)
//! and `mh` (Maglev hashing). The data path hashes a new connection's packet with them to find
//! its slot; user space uses the same functions to lay out the tables those slots index.
//!
//! They are IPVS's own functions, so a client lands in the slot it would on an IPVS director:
//! - `sh`, `dh` (`ip_vs_sh.c`, `ip_vs_dh.c`): the kernel's `hash_32` (multiply by the 32-bit
//!   golden ratio, keep the top bits) of the host-order address, plus the host-order port for
//!   `sh-port`.
//! - `mh` (`ip_vs_mh.c`): `hsiphash` of the same sum under IPVS's *fixed* keys (its
//!   `generate_hash_secret` sets constants, not random bytes), so the table and the lookup are
//!   deterministic: two directors with the same configuration agree. On 64-bit kernels
//!   `hsiphash` is SipHash-1-3, which is what is implemented here; 32-bit kernels use
//!   HalfSipHash-1-3 and give other tables.
//!
//! Addresses and ports are taken in network byte order, exactly as they sit in the packet
//! (`u32::from_ne_bytes(octets)`). Everything is straight-line integer arithmetic (multiply,
//! add, xor, shifts, rotates, one remainder by a constant) the BPF verifier accepts: no loops,
//! no memory, no allocation.

use crate::MAX_TABLE_LEN;

/// `log2` of [`SH_TABLE_SIZE`] (IPVS's `CONFIG_IP_VS_SH_TAB_BITS` default).
pub const SH_TABLE_BITS: u32 = 8;
/// Buckets of an `sh` table.
pub const SH_TABLE_SIZE: u32 = 1 << SH_TABLE_BITS;
/// `log2` of [`DH_TABLE_SIZE`] (IPVS's `CONFIG_IP_VS_DH_TAB_BITS` default).
pub const DH_TABLE_BITS: u32 = 8;
/// Buckets of a `dh` table.
pub const DH_TABLE_SIZE: u32 = 1 << DH_TABLE_BITS;
/// Slots of an `mh` lookup table: IPVS's default prime (`CONFIG_IP_VS_MH_TAB_INDEX` 12 picks
/// 4093 from 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071). Maglev needs a
/// prime so that every skip visits every slot.
pub const MH_TABLE_SIZE: u32 = 4093;

const _: () = assert!(SH_TABLE_SIZE <= MAX_TABLE_LEN);
const _: () = assert!(DH_TABLE_SIZE <= MAX_TABLE_LEN);
const _: () = assert!(MH_TABLE_SIZE <= MAX_TABLE_LEN);

/// The kernel's `GOLDEN_RATIO_32` (`include/linux/hash.h`).
const GOLDEN_RATIO_32: u32 = 0x61c8_8647;

/// IPVS's `mh` key for the lookup and for each real server's starting offset (`hash1`).
const MH_KEY_OFFSET: [u64; 2] = [2_654_435_761, 2_654_435_761];
/// IPVS's `mh` key for each real server's skip (`hash2`).
const MH_KEY_SKIP: [u64; 2] = [2_654_446_892, 2_654_446_892];

/// The `sh` bucket (`0..SH_TABLE_SIZE`) of a client: `ip_vs_sh_hashkey` with offset 0. The
/// source port counts only with `sh-port`.
#[inline(always)]
pub const fn sh_bucket(saddr: u32, sport: u16, with_port: bool) -> u32 {
    hash_32(address_key(saddr, sport, with_port), SH_TABLE_BITS)
}

/// The `dh` bucket (`0..DH_TABLE_SIZE`) of a destination address: `ip_vs_dh_hashkey`.
#[inline(always)]
pub const fn dh_bucket(daddr: u32) -> u32 {
    hash_32(u32::from_be(daddr), DH_TABLE_BITS)
}

/// The `mh` slot (`0..MH_TABLE_SIZE`) of a client: `ip_vs_mh_hashkey` with offset 0, modulo
/// the table size. The source port counts only with `mh-port`.
#[inline(always)]
pub const fn mh_index(saddr: u32, sport: u16, with_port: bool) -> u32 {
    hsiphash_u32(address_key(saddr, sport, with_port), MH_KEY_OFFSET) % MH_TABLE_SIZE
}

/// Where a real server's Maglev preference list starts (`0..MH_TABLE_SIZE`) and how far it
/// steps (`1..MH_TABLE_SIZE`), from its address and port as `ip_vs_mh_permutate` derives them.
/// Only user space needs this; it lives here beside [`mh_index`] because both use IPVS's keys.
pub const fn mh_offset_skip(addr: u32, port: u16) -> (u32, u32) {
    let key = address_key(addr, port, true);
    let offset = hsiphash_u32(key, MH_KEY_OFFSET) % MH_TABLE_SIZE;
    let skip = hsiphash_u32(key, MH_KEY_SKIP) % (MH_TABLE_SIZE - 1) + 1;
    (offset, skip)
}

/// What IPVS hashes: `ntohs(port) + ntohl(addr)` (wrapping, as C's unsigned int).
#[inline(always)]
const fn address_key(addr: u32, port: u16, with_port: bool) -> u32 {
    let port = if with_port {
        u16::from_be(port) as u32
    } else {
        0
    };
    port.wrapping_add(u32::from_be(addr))
}

/// A hash of a flow (addresses, both ports in one word, protocol), for spreading flows over
/// paths and queues (GUE's UDP source port): each input word goes through the murmur3
/// finaliser into the next, so that every bit of every field reaches every bit of the hash.
/// Not IPVS's (the kernel's `skb_get_hash` is seeded at random per boot); only stable per
/// flow and well spread.
#[inline(always)]
pub const fn flow_hash(saddr: u32, daddr: u32, ports: u32, proto: u32) -> u32 {
    let mut h = fmix32(saddr ^ 0x9e37_79b9);
    h = fmix32(h ^ daddr);
    h = fmix32(h ^ ports);
    fmix32(h ^ proto)
}

/// murmur3's 32-bit finaliser: a bijection with full avalanche.
#[inline(always)]
const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The kernel's `hash_32`: multiplicative (Fibonacci) hashing, whose high bits are the
/// well-mixed ones. `bits` is 1..=32.
#[inline(always)]
const fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// The kernel's `hsiphash(&v, 4, key)` on a 64-bit kernel: SipHash-1-3 of the four bytes of
/// `v` (little-endian, as on x86-64 and arm64), truncated to 32 bits.
#[inline(always)]
const fn hsiphash_u32(v: u32, key: [u64; 2]) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575 ^ key[0],
        0x646f_7261_6e64_6f6d ^ key[1],
        0x6c79_6765_6e65_7261 ^ key[0],
        0x7465_6462_7974_6573 ^ key[1],
    ];
    // A four-byte message is all tail: the final block carries the length in its top byte.
    let b = (4u64 << 56) | v as u64;
    s[3] ^= b;
    s = sip_round(s);
    s[0] ^= b;
    s[2] ^= 0xff;
    s = sip_round(s);
    s = sip_round(s);
    s = sip_round(s);
    (s[0] ^ s[1] ^ s[2] ^ s[3]) as u32
}

/// One SipRound.
#[inline(always)]
const fn sip_round([mut v0, mut v1, mut v2, mut v3]: [u64; 4]) -> [u64; 4] {
    v0 = v0.wrapping_add(v1);
    v1 = v1.rotate_left(13) ^ v0;
    v0 = v0.rotate_left(32);
    v2 = v2.wrapping_add(v3);
    v3 = v3.rotate_left(16) ^ v2;
    v0 = v0.wrapping_add(v3);
    v3 = v3.rotate_left(21) ^ v0;
    v2 = v2.wrapping_add(v1);
    v1 = v1.rotate_left(17) ^ v2;
    v2 = v2.rotate_left(32);
    [v0, v1, v2, v3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Network-order address, as the data path reads it from the packet.
    const fn addr(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from_ne_bytes([a, b, c, d])
    }

    #[test]
    fn hsiphash_matches_the_kernel_self_test() {
        // lib/test_siphash.c (64-bit): key 00..0f, message 00 01 02 03 -> vector [4].
        let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        assert_eq!(
            hsiphash_u32(u32::from_le_bytes([0, 1, 2, 3]), key),
            0x88d3_8328
        );
    }

    #[test]
    fn hash_32_is_the_golden_ratio_multiply() {
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(2, 8), 0xc3);
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
    }

    #[test]
    fn sh_hashes_the_host_order_address_and_optionally_the_port() {
        let client = addr(0, 0, 0, 1);
        let port = 1u16.to_be();
        assert_eq!(sh_bucket(client, port, false), hash_32(1, 8));
        assert_eq!(sh_bucket(client, port, true), hash_32(2, 8));
        // Without sh-port the port is ignored entirely.
        assert_eq!(
            sh_bucket(client, 0, false),
            sh_bucket(client, 0xffff, false)
        );
    }

    #[test]
    fn dh_hashes_the_host_order_destination() {
        assert_eq!(dh_bucket(addr(0, 0, 0, 2)), hash_32(2, 8));
        assert_eq!(dh_bucket(addr(10, 1, 2, 3)), hash_32(0x0a01_0203, 8));
    }

    #[test]
    fn mh_uses_ipvs_keys_and_the_port_only_when_asked() {
        let client = addr(192, 168, 1, 10);
        let key = 0xc0a8_010a;
        assert_eq!(
            mh_index(client, 80u16.to_be(), false),
            hsiphash_u32(key, MH_KEY_OFFSET) % MH_TABLE_SIZE
        );
        assert_eq!(
            mh_index(client, 80u16.to_be(), true),
            hsiphash_u32(key + 80, MH_KEY_OFFSET) % MH_TABLE_SIZE
        );
        assert_eq!(mh_index(client, 1, false), mh_index(client, 2, false));
    }

    #[test]
    fn gue_source_ports_stay_in_range_and_spread_over_flows() {
        use crate::tunnel::{SPORT_END, SPORT_MIN, source_port};
        let mut seen = [false; 4096];
        let mut distinct = 0;
        for sport in 0..4096u16 {
            let port = u16::from_be(source_port(
                addr(192, 0, 2, 10),
                addr(203, 0, 113, 80),
                (40000 + sport).to_be(),
                80u16.to_be(),
                6,
            ));
            assert!((SPORT_MIN as u32..SPORT_END).contains(&(port as u32)));
            let bucket = usize::from(port) % seen.len();
            if !seen[bucket] {
                seen[bucket] = true;
                distinct += 1;
            }
        }
        // 4,096 flows into 4,096 buckets: a good hash fills about 63% of them.
        assert!(distinct > 2400, "only {distinct} buckets of 4096 used");
        // One flow, one port.
        let one = || source_port(addr(10, 0, 0, 1), addr(10, 0, 0, 2), 1, 2, 17);
        assert_eq!(one(), one());
        assert_ne!(
            one(),
            source_port(addr(10, 0, 0, 1), addr(10, 0, 0, 2), 1, 2, 6)
        );
    }

    #[test]
    fn address_key_wraps_like_c() {
        assert_eq!(address_key(addr(255, 255, 255, 255), 2u16.to_be(), true), 1);
    }

    #[test]
    fn indices_are_in_range() {
        let mut x: u32 = 0x1234_5678;
        for i in 0..100_000u32 {
            // A cheap LCG walks addresses and ports all over the space.
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let port = (x >> 7) as u16;
            assert!(sh_bucket(x, port, i % 2 == 0) < SH_TABLE_SIZE);
            assert!(dh_bucket(x) < DH_TABLE_SIZE);
            assert!(mh_index(x, port, i % 2 == 0) < MH_TABLE_SIZE);
            let (offset, skip) = mh_offset_skip(x, port);
            assert!(offset < MH_TABLE_SIZE);
            assert!((1..MH_TABLE_SIZE).contains(&skip));
        }
        for extreme in [0, u32::MAX] {
            assert!(sh_bucket(extreme, u16::MAX, true) < SH_TABLE_SIZE);
            assert!(dh_bucket(extreme) < DH_TABLE_SIZE);
            assert!(mh_index(extreme, u16::MAX, true) < MH_TABLE_SIZE);
        }
    }

    #[test]
    fn mh_index_spreads_clients_evenly() {
        // 2^20 distinct clients, 256 per slot on average (Poisson, sd 16): every slot within
        // +-30% of the mean (about 5 sd), which a badly mixing hash or a byte-order slip
        // would miss. (Distinct keys: IPVS sums address and port, so address/port pairs can
        // collide by design.)
        let mut counts = [0u32; MH_TABLE_SIZE as usize];
        for host in 0..(1u32 << 20) {
            let saddr = (0x0a00_0000 | host).to_be();
            counts[mh_index(saddr, 0, false) as usize] += 1;
        }
        let mean = (1u32 << 20) / MH_TABLE_SIZE;
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(
            *min > mean * 7 / 10 && *max < mean * 13 / 10,
            "{min}..{max}, mean {mean}"
        );
    }
}
