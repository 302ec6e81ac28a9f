//! The frames the per-packet benchmarks send: Ethernet + IPv4 + TCP with correct checksums,
//! and IP-in-IP as a director sends it to a TUN real server.

use std::net::{Ipv4Addr, Ipv6Addr};

pub type Mac = [u8; 6];

pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
/// Ethernet's minimum frame without the FCS: shorter frames arrive padded to it.
const MIN_FRAME: usize = 60;

/// RFC 1071 ones'-complement sum folded to 16 bits, not yet complemented.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        acc += u32::from(word);
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

fn checksum(data: &[u8], acc: u32) -> u16 {
    !(sum16(data, acc) as u16)
}

/// An IPv4 header (no options) in front of `payload`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A TCP segment (20-byte header) with its checksum over the pseudo-header.
pub fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    if flags & ACK != 0 {
        t[8..12].copy_from_slice(&2000u32.to_be_bytes());
    }
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(data);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
    pseudo.extend_from_slice(&(t.len() as u16).to_be_bytes());
    let c = checksum(&t, sum16(&pseudo, 0));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// An Ethernet frame carrying `ip`, padded to the minimum frame size.
pub fn ethernet(dst: Mac, src: Mac, ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f.extend_from_slice(ip);
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

/// A TCP frame from `src:sport` to `dst:dport`.
#[expect(clippy::too_many_arguments, reason = "one frame, every field named")]
pub fn tcp_frame(
    dmac: Mac,
    smac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let seg = tcp(src, dst, sport, dport, flags, data);
    ethernet(dmac, smac, &ipv4(src, dst, IPPROTO_TCP, &seg))
}

/// A TCP frame over IPv6 from `[src]:sport` to `[dst]:dport` (no extension headers).
#[expect(clippy::too_many_arguments, reason = "a frame, spelled out")]
pub fn tcp6_frame(
    dmac: Mac,
    smac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut t = tcp(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        sport,
        dport,
        flags,
        data,
    );
    t[16..18].copy_from_slice(&[0, 0]);
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(t.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
    let c = checksum(&t, sum16(&pseudo, 0));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(t.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[IPPROTO_TCP, 64]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&t);
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f.extend_from_slice(&ip);
    f
}

/// `inner` (an Ethernet frame carrying IPv4) wrapped in IP-in-IP from `outer_src` to
/// `outer_dst`, as lb's TUN forwarding sends it.
pub fn ipip(
    dmac: Mac,
    smac: Mac,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    inner: &[u8],
) -> Vec<u8> {
    let ip_len = u16::from_be_bytes([inner[16], inner[17]]) as usize;
    let inner_ip = &inner[14..14 + ip_len];
    ethernet(
        dmac,
        smac,
        &ipv4(outer_src, outer_dst, IPPROTO_IPIP, inner_ip),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_tcp_checksum_verifies_to_zero() {
        let a: Ipv6Addr = "2001:db8:51::7".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:10::10".parse().unwrap();
        let frame = tcp6_frame([2; 6], [4; 6], a, b, 40000, 80, SYN, b"");
        assert_eq!(frame.len(), 14 + 40 + 20);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&a.octets());
        pseudo.extend_from_slice(&b.octets());
        pseudo.extend_from_slice(&20u32.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(checksum(&frame[54..], sum16(&pseudo, 0)), 0);
    }

    #[test]
    fn checksums_verify_to_zero() {
        let a = Ipv4Addr::new(198, 51, 100, 7);
        let b = Ipv4Addr::new(203, 0, 113, 10);
        let frame = tcp_frame([2; 6], [4; 6], a, b, 40000, 80, SYN, b"");
        assert_eq!(frame.len(), 60);
        let ip = &frame[14..34];
        assert_eq!(checksum(ip, 0), 0);
        let seg = &frame[34..54];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&a.octets());
        pseudo.extend_from_slice(&b.octets());
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        assert_eq!(checksum(seg, sum16(&pseudo, 0)), 0);
    }

    #[test]
    fn ipip_carries_the_inner_packet_unpadded() {
        let a = Ipv4Addr::new(198, 51, 100, 7);
        let b = Ipv4Addr::new(203, 0, 113, 10);
        let inner = tcp_frame([2; 6], [4; 6], a, b, 40000, 80, ACK, b"");
        let outer = ipip([6; 6], [2; 6], b, Ipv4Addr::new(10, 0, 0, 5), &inner);
        assert_eq!(&outer[14 + 9..14 + 10], &[IPPROTO_IPIP]);
        assert_eq!(u16::from_be_bytes([outer[16], outer[17]]), 60);
        assert_eq!(&outer[34..74], &inner[14..54]);
    }
}
