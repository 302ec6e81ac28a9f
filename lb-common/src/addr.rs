//! Addresses of either family in one fixed-size form, as IPVS keeps them (`union
//! nf_inet_addr`): four 32-bit words in network order. An IPv4 address is the first word, the
//! other three zero; the family travels beside it ([`AF_INET`], [`AF_INET6`]) wherever the two
//! could be confused (map keys carry it).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `AF_INET`, as IPVS and the kernel's netlink number it.
pub const AF_INET: u8 = 2;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;

/// An IPv4 or IPv6 address, network order, word by word.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Addr(pub [u32; 4]);

impl Addr {
    /// All zero: no address (and IPv4 0.0.0.0).
    pub const ZERO: Addr = Addr([0; 4]);

    /// An IPv4 address given as it sits in a packet (network order).
    #[inline(always)]
    pub const fn v4(addr: u32) -> Addr {
        Addr([addr, 0, 0, 0])
    }

    /// The IPv4 address, network order (the first word).
    #[inline(always)]
    pub const fn ipv4(&self) -> u32 {
        self.0[0]
    }

    /// The four words XORed into one, as IPVS folds an IPv6 address before hashing it
    /// (`ip_vs_sh_hashkey`, `ip_vs_dh_hashkey`, `ip_vs_mh_hashkey`); an IPv4 address folds to
    /// itself, so one expression serves both families.
    #[inline(always)]
    pub const fn fold(&self) -> u32 {
        self.0[0] ^ self.0[1] ^ self.0[2] ^ self.0[3]
    }

    /// Word by word AND: the network part under a mask in the same form.
    #[inline(always)]
    pub const fn and(&self, mask: &Addr) -> Addr {
        Addr([
            self.0[0] & mask.0[0],
            self.0[1] & mask.0[1],
            self.0[2] & mask.0[2],
            self.0[3] & mask.0[3],
        ])
    }

    /// The mask of an IPv6 prefix of `len` bits (at most 128), network order.
    pub const fn prefix_mask(len: u32) -> Addr {
        let mut words = [0u32; 4];
        let mut i = 0;
        while i < 4 {
            let start = 32 * i as u32;
            words[i] = if len >= start + 32 {
                u32::MAX
            } else if len <= start {
                0
            } else {
                (u32::MAX << (32 - (len - start))).to_be()
            };
            i += 1;
        }
        Addr(words)
    }

    /// Its 16 bytes, as in an IPv6 header.
    #[inline(always)]
    pub const fn octets(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let mut i = 0;
        while i < 4 {
            let word = self.0[i].to_ne_bytes();
            out[4 * i] = word[0];
            out[4 * i + 1] = word[1];
            out[4 * i + 2] = word[2];
            out[4 * i + 3] = word[3];
            i += 1;
        }
        out
    }

    /// From an IPv6 header's 16 bytes.
    #[inline(always)]
    pub const fn from_octets(b: [u8; 16]) -> Addr {
        Addr([
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        ])
    }

    /// The address as `family` ([`AF_INET`] or [`AF_INET6`]) reads it.
    pub fn to_ip(&self, family: u8) -> IpAddr {
        if family == AF_INET6 {
            IpAddr::V6(Ipv6Addr::from(self.octets()))
        } else {
            IpAddr::V4(Ipv4Addr::from(u32::from_be(self.0[0])))
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Addr {
        Addr::v4(u32::from(ip).to_be())
    }
}

impl From<Ipv6Addr> for Addr {
    fn from(ip: Ipv6Addr) -> Addr {
        Addr::from_octets(ip.octets())
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => v4.into(),
            IpAddr::V6(v6) => v6.into(),
        }
    }
}

/// The family of `ip`.
pub const fn family_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_round_trip() {
        let v4: IpAddr = "192.168.10.99".parse().unwrap();
        let v6: IpAddr = "2001:db8::a:1".parse().unwrap();
        assert_eq!(Addr::from(v4).to_ip(AF_INET), v4);
        assert_eq!(Addr::from(v6).to_ip(AF_INET6), v6);
        assert_eq!(
            Addr::from(v4).ipv4(),
            u32::from_ne_bytes([192, 168, 10, 99])
        );
        assert_eq!(Addr::from(v4).0[1..], [0, 0, 0]);
        assert_eq!(Addr::from(v6).octets(), v6_octets(&v6));
    }

    fn v6_octets(ip: &IpAddr) -> [u8; 16] {
        match ip {
            IpAddr::V6(v6) => v6.octets(),
            IpAddr::V4(_) => unreachable!(),
        }
    }

    #[test]
    fn an_ipv4_address_folds_to_itself() {
        let a = Addr::from("10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(a.fold(), a.ipv4());
        let b = Addr::from("2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(b.fold(), b.0[0] ^ b.0[1] ^ b.0[2] ^ b.0[3]);
    }

    #[test]
    fn prefix_masks() {
        let ip = |s: &str| Addr::from(s.parse::<Ipv6Addr>().unwrap());
        assert_eq!(Addr::prefix_mask(128), Addr([u32::MAX; 4]));
        assert_eq!(Addr::prefix_mask(0), Addr::ZERO);
        assert_eq!(Addr::prefix_mask(64), ip("ffff:ffff:ffff:ffff::"));
        assert_eq!(Addr::prefix_mask(56), ip("ffff:ffff:ffff:ff00::"));
        assert_eq!(Addr::prefix_mask(33), ip("ffff:ffff:8000::"));
        assert_eq!(
            ip("2001:db8:1:2:3::9").and(&Addr::prefix_mask(48)),
            ip("2001:db8:1::")
        );
    }
}
