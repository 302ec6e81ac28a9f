//! IPVS's connection synchronisation protocol, version 1, on the wire (the kernel's
//! `net/netfilter/ipvs/ip_vs_sync.c`): what a master multicasts and a backup reads. Pure:
//! bytes in, connections out, and back.
//!
//! A message is an 8-byte header followed by `nr_conns` connection entries:
//!
//! ```text
//! header   0: reserved (0: version 0 readers drop the message)  1: syncid  2-3: size (BE)
//!          4: nr_conns  5: version (1)  6-7: spare (0)
//! entry    0: type (bit 0: IPv6)  1: protocol  2-3: version (top 4 bits, 0) | size (12 bits)
//!          4-7: flags  8-9: state  10-11: cport  12-13: vport  14-15: dport
//!          16-19: fwmark  20-23: timeout (seconds)  24-: caddr, vaddr, daddr (4 or 16 bytes)
//!          then options: type, length, data (sequence data, persistence-engine data/name)
//! ```
//!
//! Each entry after the first starts on a 4-byte boundary (zero padding in between); the
//! sizes count the padding in the header's size but not in the entry's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kernel's default multicast group (`IP_VS_SYNC_GROUP`) and port (`IP_VS_SYNC_PORT`).
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;
/// `SYNC_PROTO_VER`.
pub const VERSION: u8 = 1;
/// `struct ip_vs_sync_mesg`.
pub const HEADER_LEN: usize = 8;
/// `struct ip_vs_sync_v4` and `struct ip_vs_sync_v6`.
pub const CONN_V4_LEN: usize = 36;
pub const CONN_V6_LEN: usize = 72;
/// `struct ip_vs_sync_conn_options`: two `struct ip_vs_seq` of three 32-bit words.
const SEQ_OPTIONS_LEN: usize = 24;
/// `IP_VS_PEDATA_MAXLEN`, `IP_VS_PENAME_MAXLEN`.
pub const PE_DATA_MAXLEN: usize = 255;
pub const PE_NAME_MAXLEN: usize = 16;

/// Entry type bit (`STYPE_F_INET6`).
const TYPE_INET6: u8 = 1;
/// `SVER_SHIFT`, `SVER_MASK`.
const SIZE_MASK: u16 = 0x0fff;
const VERSION_SHIFT: u16 = 12;
/// Option types (`IPVS_OPT_*`), and the bit that makes an unknown option skippable.
const OPT_SEQ_DATA: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
const OPT_F_PARAM: u8 = 1 << (7 - 1);

/// A connection's flags (`IP_VS_CONN_F_*`, `include/uapi/linux/ip_vs.h`).
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const BYPASS: u32 = 0x0004;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// The bits a backup keeps of what it receives (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
}

/// `struct ip_vs_seq`: TCP sequence adjustments (IPVS's application helpers, FTP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seq {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// One connection (or persistence template, [`flags::TEMPLATE`]) of a sync message. All three
/// addresses are of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConn {
    pub protocol: u8,
    pub flags: u32,
    /// The protocol's state number (IPVS's TCP states; 0 for UDP and templates).
    pub state: u16,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwmark: u32,
    /// The connection's timeout in its state, in seconds.
    pub timeout: u32,
    /// In and out sequence adjustments (`IPVS_OPT_SEQ_DATA`).
    pub seq: Option<(Seq, Seq)>,
    /// Persistence-engine data and name (`IPVS_OPT_PE_DATA`, `IPVS_OPT_PE_NAME`).
    pub pe_data: Option<Vec<u8>>,
    pub pe_name: Option<Vec<u8>>,
}

impl SyncConn {
    fn is_v6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// The entry's length without padding, or `None` when it cannot be sent: addresses of
    /// mixed families (IPVS does not synchronise those either), options too long.
    pub fn wire_len(&self) -> Option<usize> {
        let v6 = self.is_v6();
        if self.vaddr.is_ipv6() != v6 || self.daddr.is_ipv6() != v6 {
            return None;
        }
        let mut len = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
        if self.seq.is_some() {
            len += 2 + SEQ_OPTIONS_LEN;
        }
        if let Some(data) = &self.pe_data {
            if data.is_empty() || data.len() > PE_DATA_MAXLEN {
                return None;
            }
            len += 2 + data.len();
            if let Some(name) = &self.pe_name {
                if name.is_empty() || name.len() > PE_NAME_MAXLEN {
                    return None;
                }
                len += 2 + name.len();
            }
        }
        (len <= usize::from(SIZE_MASK)).then_some(len)
    }

    /// Appends the entry (no padding) to `out`; `len` is [`SyncConn::wire_len`].
    fn encode_into(&self, len: usize, out: &mut Vec<u8>) {
        out.push(if self.is_v6() { TYPE_INET6 } else { 0 });
        out.push(self.protocol);
        out.extend_from_slice(&(len as u16 & SIZE_MASK).to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.state.to_be_bytes());
        out.extend_from_slice(&self.cport.to_be_bytes());
        out.extend_from_slice(&self.vport.to_be_bytes());
        out.extend_from_slice(&self.dport.to_be_bytes());
        out.extend_from_slice(&self.fwmark.to_be_bytes());
        out.extend_from_slice(&self.timeout.to_be_bytes());
        for addr in [self.caddr, self.vaddr, self.daddr] {
            match addr {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        if let Some((seq_in, seq_out)) = &self.seq {
            out.extend_from_slice(&[OPT_SEQ_DATA, SEQ_OPTIONS_LEN as u8]);
            for s in [seq_in, seq_out] {
                out.extend_from_slice(&s.init_seq.to_be_bytes());
                out.extend_from_slice(&s.delta.to_be_bytes());
                out.extend_from_slice(&s.previous_delta.to_be_bytes());
            }
        }
        if let Some(data) = &self.pe_data {
            out.extend_from_slice(&[OPT_PE_DATA, data.len() as u8]);
            out.extend_from_slice(data);
            if let Some(name) = &self.pe_name {
                out.extend_from_slice(&[OPT_PE_NAME, name.len() as u8]);
                out.extend_from_slice(name);
            }
        }
    }
}

/// Packs `conns` into as few messages of at most `max_len` bytes (the daemon's
/// `sync_maxlen`) as they fit, as the kernel fills its sync buffers: entries in order, a
/// new message when the next entry does not fit (a single entry larger than `max_len` gets a
/// message of its own), at most 255 entries a message (`nr_conns` is one byte). Entries
/// that cannot be sent ([`SyncConn::wire_len`]) are left out.
pub fn pack(syncid: u8, conns: &[SyncConn], max_len: usize) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut count: u8 = 0;
    let finish = |buf: &mut Vec<u8>, count: &mut u8, messages: &mut Vec<Vec<u8>>| {
        if *count > 0 {
            let len = buf.len() as u16;
            buf[2..4].copy_from_slice(&len.to_be_bytes());
            buf[4] = *count;
            messages.push(std::mem::take(buf));
        }
        *count = 0;
    };
    for conn in conns {
        let Some(len) = conn.wire_len() else {
            continue;
        };
        let pad = (4 - current.len() % 4) % 4;
        if count > 0 && (current.len() + pad + len > max_len || count == u8::MAX) {
            finish(&mut current, &mut count, &mut messages);
        }
        if count == 0 {
            current = vec![0, syncid, 0, 0, 0, VERSION, 0, 0];
        } else {
            current.resize(current.len() + pad, 0);
        }
        conn.encode_into(len, &mut current);
        count += 1;
    }
    finish(&mut current, &mut count, &mut messages);
    messages
}

/// Why a message, or the rest of it, was dropped (the kernel's "BACKUP, ..." messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message header too short")]
    HeaderTooShort,
    #[error("bogus message size")]
    BadSize,
    #[error("not a version 1 message (version 0 is not read)")]
    NotVersion1,
    #[error("dropping the rest of the message: too small for an entry")]
    TooSmall,
    #[error("dropping the rest of the message: entry larger than the message")]
    EntryBeyondMessage,
    #[error("dropping the rest of the message: unknown entry version {0}")]
    EntryVersion(u16),
    #[error("dropping the rest of the message: unknown entry type {0}")]
    EntryType(u8),
    #[error("dropping the rest of the message: entry shorter than its addresses")]
    EntryTooShort,
    #[error("dropping the rest of the message: bad option")]
    BadOption,
}

/// A message as read: its syncid, the entries that decoded, how many were skipped (an
/// unknown mandatory option, as the kernel skips them), and the error that cut it short.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub syncid: u8,
    pub conns: Vec<SyncConn>,
    pub skipped: usize,
    pub error: Option<DecodeError>,
}

/// Whether a backup of `backup_syncid` takes a message of `syncid`: 0 takes every message
/// (the kernel's check).
pub fn syncid_matches(backup_syncid: u8, syncid: u8) -> bool {
    backup_syncid == 0 || backup_syncid == syncid
}

/// Reads a message with the kernel's checks (`ip_vs_process_message`,
/// `ip_vs_proc_sync_conn`). A message that is not one at all is an error; an entry that does
/// not decode drops it and the rest of the message, the entries before it kept (the kernel
/// has applied them by then).
pub fn decode(buf: &[u8]) -> Result<Decoded, DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::HeaderTooShort);
    }
    if usize::from(u16::from_be_bytes([buf[2], buf[3]])) != buf.len() {
        return Err(DecodeError::BadSize);
    }
    if buf.len() < HEADER_LEN || buf[0] != 0 || buf[5] != VERSION || buf[6] != 0 || buf[7] != 0 {
        return Err(DecodeError::NotVersion1);
    }
    let mut decoded = Decoded {
        syncid: buf[1],
        ..Decoded::default()
    };
    let mut at = HEADER_LEN;
    for _ in 0..buf[4] {
        match decode_conn(buf, at) {
            Ok((conn, next)) => {
                if let Some(conn) = conn {
                    decoded.conns.push(conn);
                } else {
                    decoded.skipped += 1;
                }
                at = next;
            }
            Err(e) => {
                decoded.error = Some(e);
                break;
            }
        }
    }
    Ok(decoded)
}

/// The entry at `at`: `None` when it is to be skipped; and where the next one starts.
fn decode_conn(buf: &[u8], at: usize) -> Result<(Option<SyncConn>, usize), DecodeError> {
    if at + CONN_V4_LEN > buf.len() {
        return Err(DecodeError::TooSmall);
    }
    let e = &buf[at..];
    let be16 = |i: usize| u16::from_be_bytes([e[i], e[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
    let ver_size = be16(2);
    let size = usize::from(ver_size & SIZE_MASK);
    let end = at + size;
    if end > buf.len() {
        return Err(DecodeError::EntryBeyondMessage);
    }
    if ver_size >> VERSION_SHIFT != 0 {
        return Err(DecodeError::EntryVersion(ver_size >> VERSION_SHIFT));
    }
    let v6 = match e[0] {
        t if t & TYPE_INET6 != 0 => true,
        0 => false,
        t => return Err(DecodeError::EntryType(t)),
    };
    let base = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
    if base > size {
        return Err(DecodeError::EntryTooShort);
    }
    let addr = |i: usize| -> IpAddr {
        if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(&e[24 + 16 * i..40 + 16 * i]);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                e[24 + 4 * i],
                e[25 + 4 * i],
                e[26 + 4 * i],
                e[27 + 4 * i],
            ))
        }
    };
    let mut conn = SyncConn {
        protocol: e[1],
        flags: be32(4),
        state: be16(8),
        cport: be16(10),
        vport: be16(12),
        dport: be16(14),
        fwmark: be32(16),
        timeout: be32(20),
        caddr: addr(0),
        vaddr: addr(1),
        daddr: addr(2),
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    let next = at + size.div_ceil(4) * 4;
    let mut p = at + base;
    while p < end {
        if p + 2 > end {
            return Err(DecodeError::BadOption);
        }
        let (kind, len) = (buf[p], usize::from(buf[p + 1]));
        p += 2;
        if len == 0 || p + len > end {
            return Err(DecodeError::BadOption);
        }
        let data = &buf[p..p + len];
        match kind & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if len != SEQ_OPTIONS_LEN || conn.seq.is_some() {
                    return Err(DecodeError::BadOption);
                }
                let word = |i: usize| {
                    u32::from_be_bytes([
                        data[4 * i],
                        data[4 * i + 1],
                        data[4 * i + 2],
                        data[4 * i + 3],
                    ])
                };
                let seq = |i: usize| Seq {
                    init_seq: word(i),
                    delta: word(i + 1),
                    previous_delta: word(i + 2),
                };
                conn.seq = Some((seq(0), seq(3)));
            }
            OPT_PE_DATA => {
                if conn.pe_data.is_some() {
                    return Err(DecodeError::BadOption);
                }
                conn.pe_data = Some(data.to_vec());
            }
            OPT_PE_NAME => {
                if len > PE_NAME_MAXLEN || conn.pe_name.is_some() {
                    return Err(DecodeError::BadOption);
                }
                conn.pe_name = Some(data.to_vec());
            }
            // An unknown option the entry cannot do without: the kernel skips the entry.
            _ if kind & OPT_F_PARAM == 0 => return Ok((None, next)),
            _ => {}
        }
        p += len;
    }
    Ok((Some(conn), next))
}

#[cfg(test)]
mod tests;
