//! A small packet builder: a frame is a value (Ethernet → IPv4/IPv6/ARP → TCP/UDP/ICMP/IP-in-IP)
//! whose fields a fixture states and whose bytes, lengths and checksums are computed on
//! [`Frame::bytes`]. Malformed packets are built by overriding a computed field (`ihl`,
//! `total_len`, `version`, checksums) or by cutting the bytes short ([`cut`]).
//!
//! Expected outputs are built the same way: the input frame with its rewrites applied (new
//! MACs for DR; an outer header around it for TUN; new addresses/ports for NAT), so a fixture
//! reads as "this packet, changed like so".

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    checksum,
    wire::{
        ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, IPPROTO_ICMP, IPPROTO_IPIP,
        IPPROTO_TCP, IPPROTO_UDP, Mac, field,
    },
};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// An Ethernet II frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub dst: Mac,
    pub src: Mac,
    pub body: L3,
    /// Zero-pad the frame to at least this many bytes (60 is Ethernet's minimum without FCS);
    /// 0 for no padding.
    pub min_len: usize,
}

/// What an Ethernet frame carries.
#[derive(Clone, Debug)]
pub enum L3 {
    Ipv4(Ipv4),
    Ipv6(Ipv6),
    Arp(Arp),
    /// An 802.1Q tag in front of another EtherType.
    Vlan {
        tci: u16,
        inner: Box<L3>,
    },
    Raw {
        ethertype: u16,
        bytes: Vec<u8>,
    },
}

impl Frame {
    pub fn new(dst: Mac, src: Mac, body: impl Into<L3>) -> Self {
        Self {
            dst,
            src,
            body: body.into(),
            min_len: 0,
        }
    }

    /// The same frame between other MACs (what DR does to it).
    pub fn with_macs(mut self, dst: Mac, src: Mac) -> Self {
        self.dst = dst;
        self.src = src;
        self
    }

    pub fn padded_to(mut self, min_len: usize) -> Self {
        self.min_len = min_len;
        self
    }

    /// The IPv4 packet inside.
    pub fn ipv4(&self) -> &Ipv4 {
        match &self.body {
            L3::Ipv4(ip) => ip,
            other => panic!("not an IPv4 frame: {other:?}"),
        }
    }

    /// The IPv4 packet inside, for fixtures that tweak it.
    pub fn ipv6_mut(&mut self) -> &mut Ipv6 {
        match &mut self.body {
            L3::Ipv6(ip) => ip,
            other => panic!("not an IPv6 frame: {other:?}"),
        }
    }

    pub fn ipv4_mut(&mut self) -> &mut Ipv4 {
        match &mut self.body {
            L3::Ipv4(ip) => ip,
            other => panic!("not an IPv4 frame: {other:?}"),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.src);
        self.body.emit(&mut out);
        if out.len() < self.min_len {
            out.resize(self.min_len, 0);
        }
        out
    }
}

impl L3 {
    fn emit(&self, out: &mut Vec<u8>) {
        match self {
            L3::Ipv4(ip) => {
                out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                out.extend_from_slice(&ip.bytes());
            }
            L3::Ipv6(ip) => {
                out.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                out.extend_from_slice(&ip.bytes());
            }
            L3::Arp(arp) => {
                out.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
                out.extend_from_slice(&arp.bytes());
            }
            L3::Vlan { tci, inner } => {
                out.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                out.extend_from_slice(&tci.to_be_bytes());
                inner.emit(out);
            }
            L3::Raw { ethertype, bytes } => {
                out.extend_from_slice(&ethertype.to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
}

impl From<Ipv4> for L3 {
    fn from(ip: Ipv4) -> Self {
        L3::Ipv4(ip)
    }
}
impl From<Ipv6> for L3 {
    fn from(ip: Ipv6) -> Self {
        L3::Ipv6(ip)
    }
}
impl From<Arp> for L3 {
    fn from(arp: Arp) -> Self {
        L3::Arp(arp)
    }
}

/// The first `len` bytes of a frame: a truncated packet.
pub fn cut(mut bytes: Vec<u8>, len: usize) -> Vec<u8> {
    assert!(len <= bytes.len(), "cutting {} bytes to {len}", bytes.len());
    bytes.truncate(len);
    bytes
}

/// An IPv4 packet. Lengths, protocol and checksums are computed unless overridden.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// In 8-byte units.
    pub frag_offset: u16,
    pub ttl: u8,
    /// Raw option bytes; the builder pads them with End-of-Options to a multiple of 4.
    pub options: Vec<u8>,
    pub payload: L4,
    /// Overrides, to build malformed headers.
    pub version: u8,
    pub ihl: Option<u8>,
    pub total_len: Option<u16>,
    pub header_checksum: Option<u16>,
}

/// What an IP packet carries.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
    /// IP-in-IP (LVS TUN): a whole IPv4 packet as the payload.
    Ipip(Box<Ipv4>),
    Raw {
        proto: u8,
        bytes: Vec<u8>,
    },
}

impl Ipv4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, payload: impl Into<L4>) -> Self {
        Self {
            src,
            dst,
            tos: 0,
            ident: 0x1c46,
            dont_fragment: true,
            more_fragments: false,
            frag_offset: 0,
            ttl: 64,
            options: Vec::new(),
            payload: payload.into(),
            version: 4,
            ihl: None,
            total_len: None,
            header_checksum: None,
        }
    }

    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }

    pub fn fragment(mut self, more_fragments: bool, offset_units: u16) -> Self {
        self.dont_fragment = false;
        self.more_fragments = more_fragments;
        self.frag_offset = offset_units;
        self
    }

    pub fn header_len(&self) -> usize {
        field::ipv4::MIN_LEN + self.options.len().div_ceil(4) * 4
    }

    pub fn bytes(&self) -> Vec<u8> {
        let header_len = self.header_len();
        assert!(header_len <= 60, "IPv4 options longer than 40 bytes");
        let payload = self.payload.emit(&Pseudo::V4 {
            src: self.src,
            dst: self.dst,
        });
        let total_len = self
            .total_len
            .unwrap_or((header_len + payload.len()) as u16);
        let ihl = self.ihl.unwrap_or((header_len / 4) as u8);

        let mut h = vec![0u8; header_len];
        h[field::ipv4::VER_IHL] = self.version << 4 | (ihl & 0x0f);
        h[field::ipv4::TOS] = self.tos;
        h[field::ipv4::TOTAL_LEN].copy_from_slice(&total_len.to_be_bytes());
        h[field::ipv4::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        let mut flags_frag = self.frag_offset & field::ipv4::OFFSET_MASK;
        if self.dont_fragment {
            flags_frag |= field::ipv4::DF;
        }
        if self.more_fragments {
            flags_frag |= field::ipv4::MF;
        }
        h[field::ipv4::FLAGS_FRAG].copy_from_slice(&flags_frag.to_be_bytes());
        h[field::ipv4::TTL] = self.ttl;
        h[field::ipv4::PROTO] = self.payload.proto();
        h[field::ipv4::SRC].copy_from_slice(&self.src.octets());
        h[field::ipv4::DST].copy_from_slice(&self.dst.octets());
        h[field::ipv4::MIN_LEN..field::ipv4::MIN_LEN + self.options.len()]
            .copy_from_slice(&self.options);
        let sum = self
            .header_checksum
            .unwrap_or_else(|| checksum::checksum(&h));
        h[field::ipv4::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(&payload);
        h
    }
}

/// Whose addresses a TCP/UDP checksum covers.
pub enum Pseudo {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Pseudo {
    fn sum(&self, proto: u8, len: usize) -> u64 {
        match *self {
            Pseudo::V4 { src, dst } => checksum::pseudo_v4(src, dst, proto, len as u16),
            Pseudo::V6 { src, dst } => checksum::pseudo_v6(src, dst, proto, len as u32),
        }
    }
}

impl L4 {
    pub fn proto(&self) -> u8 {
        match self {
            L4::Tcp(_) => IPPROTO_TCP,
            L4::Udp(_) => IPPROTO_UDP,
            L4::Icmp(_) => IPPROTO_ICMP,
            L4::Ipip(_) => IPPROTO_IPIP,
            L4::Raw { proto, .. } => *proto,
        }
    }

    fn emit(&self, pseudo: &Pseudo) -> Vec<u8> {
        match self {
            L4::Tcp(tcp) => tcp.bytes(pseudo),
            L4::Udp(udp) => udp.bytes(pseudo),
            L4::Icmp(icmp) => icmp.bytes(),
            L4::Ipip(inner) => inner.bytes(),
            L4::Raw { bytes, .. } => bytes.clone(),
        }
    }
}

impl From<Tcp> for L4 {
    fn from(tcp: Tcp) -> Self {
        L4::Tcp(tcp)
    }
}
impl From<Udp> for L4 {
    fn from(udp: Udp) -> Self {
        L4::Udp(udp)
    }
}
impl From<Icmp> for L4 {
    fn from(icmp: Icmp) -> Self {
        L4::Icmp(icmp)
    }
}
impl From<Ipv4> for L4 {
    fn from(inner: Ipv4) -> Self {
        L4::Ipip(Box::new(inner))
    }
}

#[derive(Clone, Debug)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub urgent: u16,
    /// Raw option bytes; padded with End-of-Options to a multiple of 4.
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
    pub checksum: Option<u16>,
}

impl Tcp {
    pub fn new(sport: u16, dport: u16, flags: u8) -> Self {
        Self {
            sport,
            dport,
            seq: 0x1000_0001,
            ack: if flags & ACK != 0 { 0x2000_0001 } else { 0 },
            flags,
            window: 64240,
            urgent: 0,
            options: Vec::new(),
            payload: Vec::new(),
            checksum: None,
        }
    }

    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    fn bytes(&self, pseudo: &Pseudo) -> Vec<u8> {
        let header_len = field::tcp::MIN_LEN + self.options.len().div_ceil(4) * 4;
        assert!(header_len <= 60, "TCP options longer than 40 bytes");
        let mut s = vec![0u8; header_len];
        s[field::tcp::SPORT].copy_from_slice(&self.sport.to_be_bytes());
        s[field::tcp::DPORT].copy_from_slice(&self.dport.to_be_bytes());
        s[field::tcp::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        s[field::tcp::ACK].copy_from_slice(&self.ack.to_be_bytes());
        s[field::tcp::DATA_OFF] = ((header_len / 4) as u8) << 4;
        s[field::tcp::FLAGS] = self.flags;
        s[field::tcp::WINDOW].copy_from_slice(&self.window.to_be_bytes());
        s[field::tcp::URGENT].copy_from_slice(&self.urgent.to_be_bytes());
        s[field::tcp::MIN_LEN..field::tcp::MIN_LEN + self.options.len()]
            .copy_from_slice(&self.options);
        s.extend_from_slice(&self.payload);
        let sum = self.checksum.unwrap_or_else(|| {
            checksum::finish(checksum::sum(pseudo.sum(IPPROTO_TCP, s.len()), &s))
        });
        s[field::tcp::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        s
    }
}

#[derive(Clone, Debug)]
pub struct Udp {
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
    pub checksum: Option<u16>,
}

impl Udp {
    pub fn new(sport: u16, dport: u16, payload: &[u8]) -> Self {
        Self {
            sport,
            dport,
            payload: payload.to_vec(),
            checksum: None,
        }
    }

    fn bytes(&self, pseudo: &Pseudo) -> Vec<u8> {
        let len = field::udp::HEADER_LEN + self.payload.len();
        let mut d = vec![0u8; field::udp::HEADER_LEN];
        d[field::udp::SPORT].copy_from_slice(&self.sport.to_be_bytes());
        d[field::udp::DPORT].copy_from_slice(&self.dport.to_be_bytes());
        d[field::udp::LEN].copy_from_slice(&(len as u16).to_be_bytes());
        d.extend_from_slice(&self.payload);
        let sum = self.checksum.unwrap_or_else(|| {
            // A computed zero is sent as all ones: zero means "no checksum" (RFC 768).
            match checksum::finish(checksum::sum(pseudo.sum(IPPROTO_UDP, len), &d)) {
                0 => 0xffff,
                sum => sum,
            }
        });
        d[field::udp::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        d
    }
}

#[derive(Clone, Debug)]
pub struct Icmp {
    pub ty: u8,
    pub code: u8,
    /// The type-specific four bytes after the checksum (identifier and sequence for echo).
    pub rest: [u8; 4],
    pub payload: Vec<u8>,
}

impl Icmp {
    pub fn echo_request(ident: u16, seq: u16, payload: &[u8]) -> Self {
        let [i0, i1] = ident.to_be_bytes();
        let [s0, s1] = seq.to_be_bytes();
        Self {
            ty: 8,
            code: 0,
            rest: [i0, i1, s0, s1],
            payload: payload.to_vec(),
        }
    }

    /// Destination unreachable, fragmentation needed and DF set (type 3, code 4), with the
    /// next-hop MTU (RFC 1191) and `quoted`: the original IP header and 8 bytes of its payload
    /// (RFC 792).
    pub fn frag_needed(next_hop_mtu: u16, quoted: &[u8]) -> Self {
        let [m0, m1] = next_hop_mtu.to_be_bytes();
        Self {
            ty: 3,
            code: 4,
            rest: [0, 0, m0, m1],
            payload: quoted.to_vec(),
        }
    }

    /// Time exceeded in transit (11/0) quoting `quoted`.
    pub fn time_exceeded(quoted: &[u8]) -> Self {
        Self {
            ty: 11,
            code: 0,
            rest: [0; 4],
            payload: quoted.to_vec(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut m = vec![0u8; field::icmp::HEADER_LEN];
        m[field::icmp::TYPE] = self.ty;
        m[field::icmp::CODE] = self.code;
        m[field::icmp::REST].copy_from_slice(&self.rest);
        m.extend_from_slice(&self.payload);
        let sum = checksum::checksum(&m);
        m[field::icmp::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        m
    }
}

#[derive(Clone, Debug)]
pub struct Ipv6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    /// Extension headers between the fixed header and the payload, in order: each its type
    /// (0 hop-by-hop, 43 routing, 44 fragment, 60 destination options) and its bytes, whose
    /// first (the next header) is filled in.
    pub extensions: Vec<(u8, Vec<u8>)>,
    pub payload: L4,
    /// Bytes sent in place of the emitted payload (a later fragment's), if any; the next
    /// header still says the payload's protocol.
    pub raw_payload: Option<Vec<u8>>,
}

impl Ipv6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, payload: impl Into<L4>) -> Self {
        Self {
            src,
            dst,
            hop_limit: 64,
            extensions: Vec::new(),
            payload: payload.into(),
            raw_payload: None,
        }
    }

    /// With an extension header of `kind` and `len` bytes (a multiple of 8; hop-by-hop,
    /// routing and destination options carry their length, in 8-byte units after the first
    /// 8, in byte 1; the rest is padding: PadN).
    pub fn with_extension(mut self, kind: u8, len: usize) -> Self {
        assert!(len >= 8 && len.is_multiple_of(8));
        let mut bytes = vec![0u8; len];
        bytes[1] = (len / 8 - 1) as u8;
        // PadN over the rest (RFC 8200 4.2), so the options are well-formed.
        bytes[2] = 1;
        bytes[3] = (len - 4) as u8;
        self.extensions.push((kind, bytes));
        self
    }

    /// With a fragment header: `offset` in bytes (a multiple of 8), `more` fragments, `id`.
    pub fn with_fragment(mut self, offset: u16, more: bool, id: u32) -> Self {
        let mut bytes = vec![0u8; 8];
        bytes[2..4].copy_from_slice(&(offset | u16::from(more)).to_be_bytes());
        bytes[4..8].copy_from_slice(&id.to_be_bytes());
        self.extensions.push((44, bytes));
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let payload = match &self.raw_payload {
            Some(raw) => raw.clone(),
            None => self.payload.emit(&Pseudo::V6 {
                src: self.src,
                dst: self.dst,
            }),
        };
        let mut chain = Vec::new();
        let kinds: Vec<u8> = self.extensions.iter().map(|(kind, _)| *kind).collect();
        for (i, (_, bytes)) in self.extensions.iter().enumerate() {
            let mut bytes = bytes.clone();
            bytes[0] = kinds.get(i + 1).copied().unwrap_or(self.payload.proto());
            chain.extend_from_slice(&bytes);
        }
        let mut h = vec![0u8; field::ipv6::LEN];
        h[field::ipv6::VER_TC_FLOW].copy_from_slice(&(6u32 << 28).to_be_bytes());
        h[field::ipv6::PAYLOAD_LEN]
            .copy_from_slice(&((chain.len() + payload.len()) as u16).to_be_bytes());
        h[field::ipv6::NEXT_HEADER] = kinds.first().copied().unwrap_or(self.payload.proto());
        h[field::ipv6::HOP_LIMIT] = self.hop_limit;
        h[field::ipv6::SRC].copy_from_slice(&self.src.octets());
        h[field::ipv6::DST].copy_from_slice(&self.dst.octets());
        h.extend_from_slice(&chain);
        h.extend_from_slice(&payload);
        h
    }
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Clone, Debug)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

impl Arp {
    pub fn request(sender_mac: Mac, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Self {
        Self {
            op: 1,
            sender_mac,
            sender_ip,
            target_mac: [0; 6],
            target_ip,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut a = vec![0u8; field::arp::LEN];
        a[field::arp::HTYPE].copy_from_slice(&1u16.to_be_bytes());
        a[field::arp::PTYPE].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        a[field::arp::HLEN] = 6;
        a[field::arp::PLEN] = 4;
        a[field::arp::OPER].copy_from_slice(&self.op.to_be_bytes());
        a[field::arp::SHA].copy_from_slice(&self.sender_mac);
        a[field::arp::SPA].copy_from_slice(&self.sender_ip.octets());
        a[field::arp::THA].copy_from_slice(&self.target_mac);
        a[field::arp::TPA].copy_from_slice(&self.target_ip.octets());
        a
    }
}

#[cfg(test)]
mod tests {
    //! The builder checked against frames written out by hand (and against the views).
    use super::*;
    use crate::wire::{self, Ipv4Packet, TcpSegment};

    const A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
    const B: Mac = [0x02, 0, 0, 0, 0, 0x0b];

    #[test]
    fn tcp_syn_byte_for_byte() {
        let mut tcp = Tcp::new(0x1234, 80, SYN);
        tcp.seq = 1;
        tcp.window = 0x7210;
        let mut ip = Ipv4::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), tcp);
        ip.ident = 0;
        let frame = Frame::new(B, A, ip).bytes();
        #[rustfmt::skip]
        let expected: [u8; 54] = [
            0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00,
            // IPv4: 45 00 0028 0000 4000 40 06 csum 0a000001 0a000002
            0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x26, 0xce,
            0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
            // TCP: 1234 0050 seq 1 ack 0 off 5 SYN win 7210 csum urg 0
            0x12, 0x34, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
            0x50, 0x02, 0x72, 0x10, 0x17, 0x4b, 0x00, 0x00,
        ];
        assert_eq!(
            frame,
            expected,
            "\n{}",
            wire::hexdump_diff(&expected, &frame)
        );
        assert!(wire::checksum_problems(&frame).is_empty());
    }

    #[test]
    fn views_read_back_what_the_builder_wrote() {
        let tcp = Tcp::new(40000, 443, SYN | ACK)
            .options(&[2, 4, 5, 0xb4])
            .payload(b"hi");
        let ip = Ipv4::new(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 2),
            tcp,
        )
        .options(&[0x94, 0x04, 0, 0]);
        let frame = Frame::new(A, B, ip).padded_to(128).bytes();
        assert_eq!(frame.len(), 128);
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(ip.header_len(), 24);
        assert_eq!(ip.total_len(), 24 + 24 + 2);
        assert_eq!(ip.options(), [0x94, 0x04, 0, 0]);
        let tcp = TcpSegment::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (tcp.sport(), tcp.dport(), tcp.flags()),
            (40000, 443, SYN | ACK)
        );
        assert_eq!(tcp.payload(), b"hi");
        assert!(wire::checksum_problems(&frame).is_empty());
    }

    #[test]
    fn checksum_problems_are_found() {
        let udp = Udp::new(5353, 53, b"query");
        let good = Frame::new(
            A,
            B,
            Ipv4::new([1, 2, 3, 4].into(), [5, 6, 7, 8].into(), udp),
        );
        assert!(wire::checksum_problems(&good.bytes()).is_empty());
        let mut bad_ip = good.clone();
        bad_ip.ipv4_mut().header_checksum = Some(0x1234);
        assert_eq!(wire::checksum_problems(&bad_ip.bytes()).len(), 1);
        let mut bad_udp = good.bytes();
        *bad_udp.last_mut().unwrap() ^= 0xff;
        assert_eq!(wire::checksum_problems(&bad_udp).len(), 1);
    }

    #[test]
    fn checksum_problems_look_into_icmp_error_quotes() {
        let answer = Ipv4::new(
            [192, 0, 2, 53].into(),
            [198, 51, 100, 7].into(),
            Udp::new(53, 40000, b"answer"),
        );
        // The ICMP checksum is right in each: only the quote is at fault.
        let error = |quoted: &Ipv4| {
            let icmp = Icmp::frag_needed(1400, &quoted.bytes());
            Frame::new(A, B, Ipv4::new([198, 51, 100, 1].into(), quoted.src, icmp)).bytes()
        };
        assert!(wire::checksum_problems(&error(&answer)).is_empty());
        let mut bad_header = answer.clone();
        bad_header.header_checksum = Some(0x1234);
        let problems = wire::checksum_problems(&error(&bad_header));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("quoted IPv4 header"),
            "{problems:?}"
        );
        let mut bad_udp = answer.clone();
        let L4::Udp(udp) = &mut bad_udp.payload else {
            unreachable!()
        };
        udp.checksum = Some(0x1234);
        let problems = wire::checksum_problems(&error(&bad_udp));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("quoted UDP"), "{problems:?}");
    }

    #[test]
    fn ipip_and_ipv6_and_arp() {
        let inner = Ipv4::new(
            [1, 1, 1, 1].into(),
            [2, 2, 2, 2].into(),
            Udp::new(1, 2, b"x"),
        );
        let inner_len = inner.bytes().len();
        let outer = Ipv4::new([3, 3, 3, 3].into(), [4, 4, 4, 4].into(), inner);
        let frame = Frame::new(A, B, outer).bytes();
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(ip.proto(), IPPROTO_IPIP);
        assert_eq!(usize::from(ip.total_len()), 20 + inner_len);
        assert!(wire::checksum_problems(&frame).is_empty());

        let (src, dst) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let v6 = Ipv6::new(src, dst, Tcp::new(1, 80, SYN));
        let frame = Frame::new(A, B, v6).bytes();
        assert_eq!(frame.len(), 14 + 40 + 20);
        assert_eq!(frame[12..14], [0x86, 0xdd]);
        assert!(
            wire::describe(&frame).contains("tcp 1 > 80 [S]"),
            "{}",
            wire::describe(&frame)
        );
        assert!(!wire::describe(&frame).contains("BAD"));

        let arp = Frame::new(
            [0xff; 6],
            A,
            Arp::request(A, [1, 2, 3, 4].into(), [1, 2, 3, 5].into()),
        );
        assert_eq!(arp.padded_to(60).bytes().len(), 60);
    }

    #[test]
    fn hexdump_diff_marks_differing_bytes() {
        let diff = wire::hexdump_diff(&[1, 2, 3], &[1, 9, 3, 4]);
        assert!(diff.contains("length: expected 3, actual 4"));
        assert!(diff.contains("- 0000  01 02 03"));
        assert!(diff.contains("+ 0000  01 09 03 04"));
        assert!(diff.contains("           ^^    ^^"), "{diff}");
    }
}
