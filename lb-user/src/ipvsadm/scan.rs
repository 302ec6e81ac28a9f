//! Number and address scanning with the C library's rules, so that `lbadm` accepts exactly the
//! spellings ipvsadm accepts: ipvsadm reads numbers with `strtol` (leading blanks and a sign
//! allowed, nothing after the digits) and addresses with `inet_aton` (which also takes the
//! short and hexadecimal/octal forms such as `10.1` or `0x7f.1`).

use std::net::Ipv4Addr;

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// ipvsadm's `string_to_number`: a base-10 `strtol` that must consume the whole string and land
/// in `min..=max`.
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let bytes = s.as_bytes();
    let mut i = bytes.iter().take_while(|&&b| is_c_space(b)).count();
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = &bytes[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // strtol saturates (ERANGE) past a long; anything that long is out of every range here.
    let mut value: i64 = 0;
    for &d in digits {
        value = value.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    let value = if negative { -value } else { value };
    (min..=max).contains(&value).then_some(value)
}

/// ipvsadm's `str_is_digit`: true for a string of decimal digits only, including "".
pub fn is_all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// glibc's `inet_aton`: one to four parts separated by dots, each decimal, octal (leading
/// `0`) or hexadecimal (`0x`); the last part fills the remaining bytes. Trailing blanks and
/// whatever follows them are ignored, as glibc does.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let bytes = s.as_bytes();
    let mut parts: Vec<u32> = Vec::with_capacity(4);
    let mut i = 0;
    let last = loop {
        if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let mut base = 10;
        if bytes[i] == b'0' {
            i += 1;
            if matches!(bytes.get(i), Some(b'x' | b'X')) {
                base = 16;
                i += 1;
            } else {
                base = 8;
            }
        }
        let mut value: u64 = 0;
        while let Some(&c) = bytes.get(i) {
            let digit = match c {
                b'0'..=b'9' if base != 8 || c < b'8' => u64::from(c - b'0'),
                b'8' | b'9' => return None,
                b'a'..=b'f' if base == 16 => u64::from(c - b'a' + 10),
                b'A'..=b'F' if base == 16 => u64::from(c - b'A' + 10),
                _ => break,
            };
            value = value * base + digit;
            if value > u64::from(u32::MAX) {
                return None;
            }
            i += 1;
        }
        // `value` fits in u32: checked in the loop.
        let value = u32::try_from(value).ok()?;
        if bytes.get(i) == Some(&b'.') {
            if parts.len() == 3 || value > 0xff {
                return None;
            }
            parts.push(value);
            i += 1;
        } else {
            break value;
        }
    };
    if let Some(&c) = bytes.get(i)
        && !is_c_space(c)
    {
        return None;
    }
    // Bits left for the last part: 32, 24, 16 or 8.
    let last_bits = 32 - 8 * parts.len() as u32;
    if last_bits < 32 && last >> last_bits != 0 {
        return None;
    }
    let high = parts
        .iter()
        .enumerate()
        .fold(0u32, |acc, (n, &p)| acc | p << (24 - 8 * n as u32));
    Some(Ipv4Addr::from(high | last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_like_strtol() {
        assert_eq!(string_to_number("3", 0, 65535), Some(3));
        assert_eq!(string_to_number(" +7", 0, 65535), Some(7));
        assert_eq!(string_to_number("65535", 0, 65535), Some(65535));
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(string_to_number("-1", 0, 65535), None);
        assert_eq!(string_to_number("-1", -5, 5), Some(-1));
        assert_eq!(string_to_number("", 0, 65535), None);
        assert_eq!(string_to_number("+", 0, 65535), None);
        assert_eq!(string_to_number("3x", 0, 65535), None);
        assert_eq!(string_to_number("3 ", 0, 65535), None);
        assert_eq!(string_to_number("0x10", 0, 65535), None);
        assert_eq!(
            string_to_number("99999999999999999999999", 0, i64::MAX),
            None
        );
    }

    #[test]
    fn digit_strings() {
        assert!(is_all_digits("80"));
        assert!(is_all_digits(""));
        assert!(!is_all_digits("1.2.3.4"));
    }

    #[test]
    fn addresses_like_inet_aton() {
        let a = |s: &str| inet_aton(s);
        assert_eq!(a("192.168.1.99"), Some(Ipv4Addr::new(192, 168, 1, 99)));
        assert_eq!(a("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a("10.1.2"), Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(a("127.65535"), Some(Ipv4Addr::new(127, 0, 255, 255)));
        assert_eq!(a("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(a("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(a("3232235876"), Some(Ipv4Addr::new(192, 168, 1, 100)));
        assert_eq!(a("1.2.3.4 trailing"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(a("256.1.1.1"), None);
        assert_eq!(a("1.2.3.256"), None);
        assert_eq!(a("1.2.3.4.5"), None);
        assert_eq!(a("09.1.1.1"), None);
        assert_eq!(a("1.2.3."), None);
        assert_eq!(a("web1"), None);
        assert_eq!(a(""), None);
        assert_eq!(a("4294967296"), None);
    }
}
