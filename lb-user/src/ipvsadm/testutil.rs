//! Test helpers: a fixed name table instead of the system's resolver, and argument vectors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::names::{Names, ServicesDb};
use crate::model::Protocol;

/// Knows `web1` = 10.0.0.1 (reverse: `web1.example.com`), a long-named 10.0.0.2, 2001:db8::1
/// (reverse only, `web6.example.com`: ipvsadm looks names up as IPv4 only), and a few services;
/// nothing else resolves.
pub struct FakeNames {
    services: ServicesDb,
}

pub const LONG_NAME: &str = "a-very-long-host-name.backend.example.com";

impl FakeNames {
    pub fn new() -> Self {
        FakeNames {
            services: ServicesDb::parse(
                "ssh 22/tcp\ntelnet 23/tcp\nhttp 80/tcp www\ndomain 53/tcp\ndomain 53/udp\nhttps 443/tcp\n",
            ),
        }
    }
}

impl Names for FakeNames {
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        match name {
            "web1" | "web1.example.com" => Some(Ipv4Addr::new(10, 0, 0, 1)),
            LONG_NAME => Some(Ipv4Addr::new(10, 0, 0, 2)),
            _ => None,
        }
    }
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        match addr {
            IpAddr::V4(v4) => match v4.octets() {
                [10, 0, 0, 1] => Some("web1.example.com".to_owned()),
                [10, 0, 0, 2] => Some(LONG_NAME.to_owned()),
                _ => None,
            },
            IpAddr::V6(v6) if v6 == Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1) => {
                Some("web6.example.com".to_owned())
            }
            IpAddr::V6(_) => None,
        }
    }
    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.services.port(name, protocol)
    }
    fn service_name(&self, port: u16, protocol: Protocol) -> Option<String> {
        self.services.name(port, protocol).map(str::to_owned)
    }
}

/// Splits a command line on blanks, as the shell would for these simple cases.
pub fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}
