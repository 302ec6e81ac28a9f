//! Read-only views of the frames the program hands back, smoltcp style: field offsets are named
//! once, in the `field` modules, a view is made with `new_checked` (which checks every length
//! its accessors rely on) and its accessors cannot panic afterwards.
//!
//! The fixtures compare output frames byte for byte; these views exist to explain a mismatch
//! ([`describe`]) and to check that forwarded frames still carry valid checksums
//! ([`checksum_problems`]), which matters once rewrites (NAT, encapsulation) touch headers.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
};

use super::checksum;

pub type Mac = [u8; 6];

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// Byte ranges of each header's fields.
pub mod field {
    pub type Field = std::ops::Range<usize>;

    pub mod eth {
        use super::Field;
        pub const DST: Field = 0..6;
        pub const SRC: Field = 6..12;
        pub const ETHERTYPE: Field = 12..14;
        pub const LEN: usize = 14;
    }

    pub mod ipv4 {
        use super::Field;
        pub const VER_IHL: usize = 0;
        pub const TOS: usize = 1;
        pub const TOTAL_LEN: Field = 2..4;
        pub const IDENT: Field = 4..6;
        pub const FLAGS_FRAG: Field = 6..8;
        pub const TTL: usize = 8;
        pub const PROTO: usize = 9;
        pub const CHECKSUM: Field = 10..12;
        pub const SRC: Field = 12..16;
        pub const DST: Field = 16..20;
        pub const MIN_LEN: usize = 20;
        /// Flags/fragment-offset bits.
        pub const DF: u16 = 0x4000;
        pub const MF: u16 = 0x2000;
        pub const OFFSET_MASK: u16 = 0x1fff;
    }

    pub mod ipv6 {
        use super::Field;
        pub const VER_TC_FLOW: Field = 0..4;
        pub const PAYLOAD_LEN: Field = 4..6;
        pub const NEXT_HEADER: usize = 6;
        pub const HOP_LIMIT: usize = 7;
        pub const SRC: Field = 8..24;
        pub const DST: Field = 24..40;
        pub const LEN: usize = 40;
    }

    pub mod tcp {
        use super::Field;
        pub const SPORT: Field = 0..2;
        pub const DPORT: Field = 2..4;
        pub const SEQ: Field = 4..8;
        pub const ACK: Field = 8..12;
        pub const DATA_OFF: usize = 12;
        pub const FLAGS: usize = 13;
        pub const WINDOW: Field = 14..16;
        pub const CHECKSUM: Field = 16..18;
        pub const URGENT: Field = 18..20;
        pub const MIN_LEN: usize = 20;
    }

    pub mod udp {
        use super::Field;
        pub const SPORT: Field = 0..2;
        pub const DPORT: Field = 2..4;
        pub const LEN: Field = 4..6;
        pub const CHECKSUM: Field = 6..8;
        pub const HEADER_LEN: usize = 8;
    }

    pub mod icmp {
        use super::Field;
        pub const TYPE: usize = 0;
        pub const CODE: usize = 1;
        pub const CHECKSUM: Field = 2..4;
        pub const REST: Field = 4..8;
        pub const HEADER_LEN: usize = 8;
    }

    pub mod arp {
        use super::Field;
        pub const HTYPE: Field = 0..2;
        pub const PTYPE: Field = 2..4;
        pub const HLEN: usize = 4;
        pub const PLEN: usize = 5;
        pub const OPER: Field = 6..8;
        pub const SHA: Field = 8..14;
        pub const SPA: Field = 14..18;
        pub const THA: Field = 18..24;
        pub const TPA: Field = 24..28;
        pub const LEN: usize = 28;
    }
}

fn be16(bytes: &[u8], at: field::Field) -> u16 {
    u16::from_be_bytes([bytes[at.start], bytes[at.start + 1]])
}

fn be32(bytes: &[u8], at: field::Field) -> u32 {
    u32::from_be_bytes(bytes[at].try_into().expect("4-byte field"))
}

fn mac(bytes: &[u8], at: field::Field) -> Mac {
    bytes[at].try_into().expect("6-byte field")
}

pub fn fmt_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An Ethernet II frame.
pub struct EthernetFrame<'a>(&'a [u8]);

impl<'a> EthernetFrame<'a> {
    pub fn new_checked(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() >= field::eth::LEN).then_some(Self(bytes))
    }
    pub fn dst(&self) -> Mac {
        mac(self.0, field::eth::DST)
    }
    pub fn src(&self) -> Mac {
        mac(self.0, field::eth::SRC)
    }
    pub fn ethertype(&self) -> u16 {
        be16(self.0, field::eth::ETHERTYPE)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[field::eth::LEN..]
    }
}

/// An IPv4 packet whose fixed header and options are all present.
pub struct Ipv4Packet<'a>(&'a [u8]);

impl<'a> Ipv4Packet<'a> {
    pub fn new_checked(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < field::ipv4::MIN_LEN {
            return None;
        }
        let header_len = usize::from(bytes[field::ipv4::VER_IHL] & 0x0f) * 4;
        (header_len >= field::ipv4::MIN_LEN && bytes.len() >= header_len).then_some(Self(bytes))
    }
    pub fn version(&self) -> u8 {
        self.0[field::ipv4::VER_IHL] >> 4
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.0[field::ipv4::VER_IHL] & 0x0f) * 4
    }
    pub fn tos(&self) -> u8 {
        self.0[field::ipv4::TOS]
    }
    pub fn total_len(&self) -> u16 {
        be16(self.0, field::ipv4::TOTAL_LEN)
    }
    pub fn ident(&self) -> u16 {
        be16(self.0, field::ipv4::IDENT)
    }
    pub fn flags_frag(&self) -> u16 {
        be16(self.0, field::ipv4::FLAGS_FRAG)
    }
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (field::ipv4::MF | field::ipv4::OFFSET_MASK) != 0
    }
    pub fn ttl(&self) -> u8 {
        self.0[field::ipv4::TTL]
    }
    pub fn proto(&self) -> u8 {
        self.0[field::ipv4::PROTO]
    }
    pub fn checksum(&self) -> u16 {
        be16(self.0, field::ipv4::CHECKSUM)
    }
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.0, field::ipv4::SRC))
    }
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.0, field::ipv4::DST))
    }
    pub fn header(&self) -> &'a [u8] {
        &self.0[..self.header_len()]
    }
    pub fn options(&self) -> &'a [u8] {
        &self.0[field::ipv4::MIN_LEN..self.header_len()]
    }
    /// The payload as far as both the total length and the buffer reach (the frame may
    /// carry Ethernet padding after it, or be cut short).
    pub fn payload(&self) -> &'a [u8] {
        let end = usize::from(self.total_len()).clamp(self.header_len(), self.0.len());
        &self.0[self.header_len()..end]
    }
    /// Whether the buffer holds all `total_len` bytes.
    pub fn is_complete(&self) -> bool {
        usize::from(self.total_len()) >= self.header_len()
            && self.0.len() >= usize::from(self.total_len())
    }
}

/// A TCP segment whose header (with options) is all present.
pub struct TcpSegment<'a>(&'a [u8]);

impl<'a> TcpSegment<'a> {
    pub fn new_checked(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < field::tcp::MIN_LEN {
            return None;
        }
        let header_len = usize::from(bytes[field::tcp::DATA_OFF] >> 4) * 4;
        (header_len >= field::tcp::MIN_LEN && bytes.len() >= header_len).then_some(Self(bytes))
    }
    pub fn sport(&self) -> u16 {
        be16(self.0, field::tcp::SPORT)
    }
    pub fn dport(&self) -> u16 {
        be16(self.0, field::tcp::DPORT)
    }
    pub fn seq(&self) -> u32 {
        be32(self.0, field::tcp::SEQ)
    }
    pub fn ack(&self) -> u32 {
        be32(self.0, field::tcp::ACK)
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.0[field::tcp::DATA_OFF] >> 4) * 4
    }
    pub fn flags(&self) -> u8 {
        self.0[field::tcp::FLAGS]
    }
    pub fn window(&self) -> u16 {
        be16(self.0, field::tcp::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.0, field::tcp::CHECKSUM)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[self.header_len()..]
    }
}

/// A UDP datagram whose header is present.
pub struct UdpDatagram<'a>(&'a [u8]);

impl<'a> UdpDatagram<'a> {
    pub fn new_checked(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() >= field::udp::HEADER_LEN).then_some(Self(bytes))
    }
    pub fn sport(&self) -> u16 {
        be16(self.0, field::udp::SPORT)
    }
    pub fn dport(&self) -> u16 {
        be16(self.0, field::udp::DPORT)
    }
    pub fn len(&self) -> u16 {
        be16(self.0, field::udp::LEN)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.0, field::udp::CHECKSUM)
    }
}

/// TCP flags as tcpdump prints them.
pub fn fmt_tcp_flags(flags: u8) -> String {
    const NAMES: [(u8, char); 8] = [
        (0x01, 'F'),
        (0x02, 'S'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, '.'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
    ];
    let s: String = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, c)| *c)
        .collect();
    if s.is_empty() { "none".into() } else { s }
}

/// One line per layer, tcpdump-like, for failure messages. Never panics, whatever the bytes.
pub fn describe(frame: &[u8]) -> String {
    let mut out = String::new();
    let Some(eth) = EthernetFrame::new_checked(frame) else {
        return format!("{} bytes: shorter than an Ethernet header", frame.len());
    };
    let _ = write!(
        out,
        "{} bytes: eth {} > {} type {:#06x}",
        frame.len(),
        fmt_mac(&eth.src()),
        fmt_mac(&eth.dst()),
        eth.ethertype()
    );
    match eth.ethertype() {
        ETHERTYPE_IPV4 => describe_ipv4(&mut out, eth.payload(), 0),
        ETHERTYPE_IPV6 => describe_ipv6(&mut out, eth.payload()),
        ETHERTYPE_ARP => describe_arp(&mut out, eth.payload()),
        _ => {}
    }
    out
}

fn describe_ipv4(out: &mut String, bytes: &[u8], depth: usize) {
    let indent = "  ".repeat(depth + 1);
    let Some(ip) = Ipv4Packet::new_checked(bytes) else {
        let _ = write!(
            out,
            "\n{indent}ipv4: truncated or bad ihl ({} bytes)",
            bytes.len()
        );
        return;
    };
    let header_ok = checksum::checksum(ip.header()) == 0;
    let _ = write!(
        out,
        "\n{indent}ipv{} {} > {} proto {} ihl {} len {} id {:#06x} flags/frag {:#06x} ttl {} tos {:#04x} csum {:#06x}{}",
        ip.version(),
        ip.src(),
        ip.dst(),
        ip.proto(),
        ip.header_len() / 4,
        ip.total_len(),
        ip.ident(),
        ip.flags_frag(),
        ip.ttl(),
        ip.tos(),
        ip.checksum(),
        if header_ok { "" } else { " (BAD)" }
    );
    if !ip.options().is_empty() {
        let _ = write!(out, " options {:02x?}", ip.options());
    }
    if ip.is_fragment() {
        return;
    }
    let payload = ip.payload();
    // A truncated packet (an ICMP error's quote) has no checksum to judge.
    let pseudo = |len: usize| {
        ip.is_complete()
            .then(|| checksum::pseudo_v4(ip.src(), ip.dst(), ip.proto(), len as u16))
    };
    match ip.proto() {
        IPPROTO_TCP => describe_tcp(out, payload, pseudo(payload.len()), &indent),
        IPPROTO_UDP => describe_udp(out, payload, pseudo(payload.len()), &indent),
        IPPROTO_IPIP => describe_ipv4(out, payload, depth + 1),
        IPPROTO_ICMP if payload.len() >= field::icmp::HEADER_LEN => {
            let _ = write!(
                out,
                "\n{indent}icmp type {} code {} csum {:#06x}{}",
                payload[field::icmp::TYPE],
                payload[field::icmp::CODE],
                be16(payload, field::icmp::CHECKSUM),
                if checksum::checksum(payload) == 0 {
                    ""
                } else {
                    " (BAD)"
                }
            );
            if ICMP_ERRORS.contains(&payload[field::icmp::TYPE]) {
                let _ = write!(out, " rest {:02x?}, quoting:", &payload[field::icmp::REST]);
                describe_ipv4(out, &payload[field::icmp::HEADER_LEN..], depth + 1);
            }
        }
        _ => {}
    }
}

fn describe_ipv6(out: &mut String, bytes: &[u8]) {
    if bytes.len() < field::ipv6::LEN {
        let _ = write!(out, "\n  ipv6: truncated ({} bytes)", bytes.len());
        return;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[field::ipv6::SRC]).expect("16 bytes"));
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[field::ipv6::DST]).expect("16 bytes"));
    let next = bytes[field::ipv6::NEXT_HEADER];
    let _ = write!(
        out,
        "\n  ipv6 {src} > {dst} next {next} payload len {} hop limit {}",
        be16(bytes, field::ipv6::PAYLOAD_LEN),
        bytes[field::ipv6::HOP_LIMIT]
    );
    let payload = &bytes[field::ipv6::LEN..];
    let pseudo = checksum::pseudo_v6(src, dst, next, payload.len() as u32);
    match next {
        IPPROTO_TCP => describe_tcp(out, payload, Some(pseudo), "  "),
        IPPROTO_UDP => describe_udp(out, payload, Some(pseudo), "  "),
        _ => {}
    }
}

fn describe_tcp(out: &mut String, bytes: &[u8], pseudo: Option<u64>, indent: &str) {
    let Some(tcp) = TcpSegment::new_checked(bytes) else {
        let _ = write!(out, "\n{indent}tcp: truncated ({} bytes)", bytes.len());
        if bytes.len() >= 4 {
            let _ = write!(
                out,
                " {} > {}",
                be16(bytes, field::tcp::SPORT),
                be16(bytes, field::tcp::DPORT)
            );
        }
        return;
    };
    let ok = pseudo.is_none_or(|p| checksum::finish(checksum::sum(p, bytes)) == 0);
    let _ = write!(
        out,
        "\n{indent}tcp {} > {} [{}] seq {} ack {} win {} hlen {} csum {:#06x}{} payload {}",
        tcp.sport(),
        tcp.dport(),
        fmt_tcp_flags(tcp.flags()),
        tcp.seq(),
        tcp.ack(),
        tcp.window(),
        tcp.header_len(),
        tcp.checksum(),
        if ok { "" } else { " (BAD)" },
        tcp.payload().len()
    );
}

fn describe_udp(out: &mut String, bytes: &[u8], pseudo: Option<u64>, indent: &str) {
    let Some(udp) = UdpDatagram::new_checked(bytes) else {
        let _ = write!(out, "\n{indent}udp: truncated ({} bytes)", bytes.len());
        return;
    };
    let ok = udp.checksum() == 0
        || pseudo.is_none_or(|p| checksum::finish(checksum::sum(p, bytes)) == 0);
    let _ = write!(
        out,
        "\n{indent}udp {} > {} len {} csum {:#06x}{}",
        udp.sport(),
        udp.dport(),
        udp.len(),
        udp.checksum(),
        if ok { "" } else { " (BAD)" }
    );
}

fn describe_arp(out: &mut String, bytes: &[u8]) {
    if bytes.len() < field::arp::LEN {
        let _ = write!(out, "\n  arp: truncated ({} bytes)", bytes.len());
        return;
    }
    let spa = Ipv4Addr::from(be32(bytes, field::arp::SPA));
    let tpa = Ipv4Addr::from(be32(bytes, field::arp::TPA));
    let _ = write!(
        out,
        "\n  arp op {} {} ({}) asks/tells {} ({})",
        be16(bytes, field::arp::OPER),
        spa,
        fmt_mac(&mac(bytes, field::arp::SHA)),
        tpa,
        fmt_mac(&mac(bytes, field::arp::THA))
    );
}

/// Checksum errors in an IPv4 frame: the header checksum, and the TCP/UDP/ICMP checksum when
/// the packet is whole and not a fragment. Recurses into IP-in-IP and into the packet an ICMP
/// error quotes. Empty when all is well (or when the frame is not IPv4, or too short to judge).
pub fn checksum_problems(frame: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(eth) = EthernetFrame::new_checked(frame)
        && eth.ethertype() == ETHERTYPE_IPV4
    {
        ipv4_checksum_problems(eth.payload(), "", &mut problems);
    }
    problems
}

fn ipv4_checksum_problems(bytes: &[u8], prefix: &str, problems: &mut Vec<String>) {
    let Some(ip) = Ipv4Packet::new_checked(bytes) else {
        return;
    };
    header_checksum_problems(&ip, prefix, problems);
    if ip.is_fragment() || !ip.is_complete() {
        return;
    }
    let payload = ip.payload();
    let pseudo = checksum::pseudo_v4(ip.src(), ip.dst(), ip.proto(), payload.len() as u16);
    let (name, at) = match ip.proto() {
        IPPROTO_TCP if payload.len() >= field::tcp::MIN_LEN => ("TCP", field::tcp::CHECKSUM),
        IPPROTO_UDP if payload.len() >= field::udp::HEADER_LEN => {
            if be16(payload, field::udp::CHECKSUM) == 0 {
                return; // no checksum (RFC 768)
            }
            ("UDP", field::udp::CHECKSUM)
        }
        IPPROTO_ICMP if payload.len() >= field::icmp::HEADER_LEN => {
            if checksum::checksum(payload) != 0 {
                problems.push(format!("{prefix}ICMP checksum is wrong"));
            }
            if ICMP_ERRORS.contains(&payload[field::icmp::TYPE]) {
                quote_checksum_problems(&payload[field::icmp::HEADER_LEN..], prefix, problems);
            }
            return;
        }
        IPPROTO_IPIP => {
            return ipv4_checksum_problems(payload, &format!("{prefix}inner "), problems);
        }
        _ => return,
    };
    if checksum::finish(checksum::sum(pseudo, payload)) != 0 {
        let mut zeroed = payload.to_vec();
        zeroed[at.clone()].fill(0);
        problems.push(format!(
            "{prefix}{name} checksum is {:#06x}, should be {:#06x}",
            be16(payload, at),
            checksum::finish(checksum::sum(pseudo, &zeroed))
        ));
    }
}

/// ICMP types whose message quotes the offending packet (RFC 792): destination unreachable,
/// source quench, time exceeded, parameter problem.
const ICMP_ERRORS: [u8; 4] = [3, 4, 11, 12];

/// The packet an ICMP error quotes: its IP header checksum, and its UDP checksum when the quote
/// holds the whole datagram. A quoted TCP checksum is not judged: when IPVS (and lb) translate
/// a quote for NAT they leave it as the sender computed it.
fn quote_checksum_problems(bytes: &[u8], prefix: &str, problems: &mut Vec<String>) {
    let prefix = format!("{prefix}quoted ");
    match Ipv4Packet::new_checked(bytes) {
        Some(ip) if ip.proto() == IPPROTO_TCP => header_checksum_problems(&ip, &prefix, problems),
        Some(_) => ipv4_checksum_problems(bytes, &prefix, problems),
        None => {}
    }
}

fn header_checksum_problems(ip: &Ipv4Packet, prefix: &str, problems: &mut Vec<String>) {
    if checksum::checksum(ip.header()) != 0 {
        let mut zeroed = ip.header().to_vec();
        zeroed[field::ipv4::CHECKSUM].fill(0);
        problems.push(format!(
            "{prefix}IPv4 header checksum is {:#06x}, should be {:#06x}",
            ip.checksum(),
            checksum::checksum(&zeroed)
        ));
    }
}

/// A hexdump of `expected` against `actual`, 16 bytes a row: equal rows once, differing rows
/// as a `-` (expected) / `+` (actual) pair with `^^` under each differing byte.
pub fn hexdump_diff(expected: &[u8], actual: &[u8]) -> String {
    let mut out = String::new();
    if expected.len() != actual.len() {
        let _ = writeln!(
            out,
            "length: expected {}, actual {}",
            expected.len(),
            actual.len()
        );
    }
    let rows = expected.len().max(actual.len()).div_ceil(16);
    let row = |bytes: &[u8], start: usize| -> String {
        (start..start + 16)
            .map(|i| bytes.get(i).map_or("  ".to_owned(), |b| format!("{b:02x}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for r in 0..rows {
        let start = r * 16;
        let differs: Vec<bool> = (start..start + 16)
            .map(|i| expected.get(i) != actual.get(i))
            .collect();
        if differs.iter().any(|d| *d) {
            let _ = writeln!(out, "- {start:04x}  {}", row(expected, start));
            let _ = writeln!(out, "+ {start:04x}  {}", row(actual, start));
            let marks: String = differs
                .iter()
                .map(|d| if *d { "^^" } else { "  " })
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(out, "        {}", marks.trim_end());
        } else {
            let _ = writeln!(out, "  {start:04x}  {}", row(expected, start));
        }
    }
    out
}

/// A plain hexdump, 16 bytes a row.
pub fn hexdump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(r, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            format!("  {:04x}  {}\n", r * 16, hex.join(" "))
        })
        .collect()
}
