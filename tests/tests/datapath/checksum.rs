//! The Internet checksum, written out independently of the data path (RFC 1071) so that the
//! fixtures check the program's arithmetic rather than share it: the ones' complement of the
//! ones' complement sum of 16-bit big-endian words, an odd trailing byte padded with zero.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones' complement sum of `bytes` as big-endian 16-bit words, added to `initial`.
/// Kept unfolded in a `u64` (no carry can be lost for any frame size we build).
pub fn sum(initial: u64, bytes: &[u8]) -> u64 {
    let mut acc = initial;
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds the carries back in (RFC 1071 §4.1, "end-around carry").
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for data summing (unfolded) to `acc`.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The checksum of `bytes` (with the checksum field itself zeroed by the caller).
pub fn checksum(bytes: &[u8]) -> u16 {
    finish(sum(0, bytes))
}

/// Sum of the IPv4 pseudo-header TCP and UDP checksums cover (RFC 793 §3.1, RFC 768).
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u16) -> u64 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + u64::from(proto) + u64::from(l4_len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, l4_len: u32) -> u64 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff) + u64::from(next_header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_worked_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (carries folded).
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &bytes)), 0xddf2);
        assert_eq!(checksum(&bytes), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic captured header (192.168.0.1 → 192.168.0.199, UDP), checksum b861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&header), 0xb861);
        // With the checksum in place the header sums to all ones, i.e. checks to zero.
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&header), 0);
    }

    #[test]
    fn odd_length_pads_with_a_zero_byte() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn byte_order_independence_is_not_assumed() {
        // Words are big-endian: swapping bytes within every word swaps the result's bytes
        // (RFC 1071 §2(B)), which also catches a little-endian summation.
        let a = [0x01, 0x02, 0x03, 0x04, 0xf0, 0x0f];
        let b = [0x02, 0x01, 0x04, 0x03, 0x0f, 0xf0];
        assert_eq!(checksum(&a), checksum(&b).swap_bytes());
        assert_eq!(checksum(&a), !(0x0102u16 + 0x0304 + 0xf00f));
    }
}
