//! Internet checksum helpers (RFC 1071 sums, RFC 1624 incremental updates), shared by the
//! data path and the tests' expectations.
//!
//! Values are taken exactly as they sit in the packet, read with native byte order
//! (`u16::from_ne_bytes`, `u32::from_ne_bytes`): the one's-complement sum is byte-order
//! independent, so no swapping is needed as long as the checksum field is read the same way.

/// Folds a 32-bit accumulator into 16 bits (end-around carry).
#[inline(always)]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit field changes from `old` to `new`.
#[inline(always)]
pub const fn replace16(check: u16, old: u16, new: u16) -> u16 {
    !fold(!check as u32 + !old as u32 + new as u32)
}

/// The checksum after a 32-bit field (an address) changes from `old` to `new`.
#[inline(always)]
pub const fn replace32(check: u16, old: u32, new: u32) -> u16 {
    let sum = !check as u32 + (!old & 0xffff) + (!old >> 16) + (new & 0xffff) + (new >> 16);
    !fold(sum)
}

/// The checksum after a 128-bit field (an IPv6 address, as four words) changes.
#[inline(always)]
pub const fn replace128(check: u16, old: &[u32; 4], new: &[u32; 4]) -> u16 {
    // 17 terms of at most 16 bits: the sum fits in 21 bits, and `fold` folds twice.
    let mut sum = !check as u32;
    let mut i = 0;
    while i < 4 {
        sum += (!old[i] & 0xffff) + (!old[i] >> 16) + (new[i] & 0xffff) + (new[i] >> 16);
        i += 1;
    }
    !fold(sum)
}

/// UDP's rule: a zero checksum means "none" and stays zero; a computed zero is sent as 0xffff.
#[inline(always)]
pub const fn udp_fixup(old: u16, updated: u16) -> u16 {
    if old == 0 {
        0
    } else if updated == 0 {
        0xffff
    } else {
        updated
    }
}

/// Checksum of an IPv4 header of ten 16-bit words (no options), with its checksum field zero.
#[inline(always)]
pub fn ipv4_header(words: &[u16; 10]) -> u16 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < 10 {
        sum += words[i] as u32;
        i += 1;
    }
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 over big-endian words, as a reference.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum = 0u32;
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += word as u32;
        }
        !fold(sum)
    }

    fn header(src: [u8; 4], dst: [u8; 4]) -> [u8; 20] {
        let mut h = [
            0x45, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        let c = reference(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn incremental_address_change_matches_full_recompute() {
        let before = header([192, 168, 10, 1], [192, 168, 10, 100]);
        let after = header([192, 168, 10, 1], [172, 16, 20, 100]);
        let old_check = u16::from_ne_bytes([before[10], before[11]]);
        let old = u32::from_ne_bytes([192, 168, 10, 100]);
        let new = u32::from_ne_bytes([172, 16, 20, 100]);
        let updated = replace32(old_check, old, new);
        assert_eq!(updated.to_ne_bytes(), [after[10], after[11]]);
    }

    #[test]
    fn incremental_port_change_matches_full_recompute() {
        let mut data = [0u8; 8];
        data[..2].copy_from_slice(&80u16.to_be_bytes());
        let check = reference(&data);
        let mut changed = data;
        changed[..2].copy_from_slice(&8080u16.to_be_bytes());
        let updated = replace16(
            u16::from_ne_bytes(check.to_be_bytes()),
            u16::from_ne_bytes(80u16.to_be_bytes()),
            u16::from_ne_bytes(8080u16.to_be_bytes()),
        );
        assert_eq!(updated.to_ne_bytes(), reference(&changed).to_be_bytes());
    }

    #[test]
    fn full_header_checksum() {
        let h = header([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut words = [0u16; 10];
        for (i, w) in words.iter_mut().enumerate() {
            *w = u16::from_ne_bytes([h[2 * i], h[2 * i + 1]]);
        }
        words[5] = 0;
        assert_eq!(ipv4_header(&words).to_ne_bytes(), [h[10], h[11]]);
    }

    #[test]
    fn incremental_ipv6_address_change_matches_full_recompute() {
        // A pseudo-header-like run: two addresses and some payload words.
        let mut before = [0u8; 40];
        for (i, b) in before.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let mut after = before;
        let new: [u8; 16] = core::array::from_fn(|i| 0xf0 ^ (i as u8 * 13));
        after[16..32].copy_from_slice(&new);
        let words = |b: &[u8]| -> [u32; 4] {
            core::array::from_fn(|i| u32::from_ne_bytes(b[4 * i..4 * i + 4].try_into().unwrap()))
        };
        let check = u16::from_ne_bytes(reference(&before).to_be_bytes());
        let updated = replace128(check, &words(&before[16..32]), &words(&after[16..32]));
        assert_eq!(updated.to_ne_bytes(), reference(&after).to_be_bytes());
    }

    #[test]
    fn udp_zero_checksum_rules() {
        assert_eq!(udp_fixup(0, 0x1234), 0);
        assert_eq!(udp_fixup(0x1111, 0), 0xffff);
        assert_eq!(udp_fixup(0x1111, 0x2222), 0x2222);
    }
}
