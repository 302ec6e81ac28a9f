//! Host and service names, the lookups ipvsadm makes with `gethostbyname`/`gethostbyaddr` and
//! `getservbyname`/`getservbyport`.
//!
//! Parsing and formatting take a [`Names`] so they stay pure and testable: `lbadm` passes
//! [`SystemNames`] (the resolver and `/etc/services`), tests pass a fixed table, and
//! [`NoNames`] resolves nothing (every address and port stays numeric).

use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs},
    sync::OnceLock,
};

use crate::model::Protocol;

/// The name lookups ipvsadm makes.
pub trait Names {
    /// A host name to its (first) IPv4 address, as `gethostbyname`.
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr>;
    /// The name of an address of either family, if it has one, as `gethostbyaddr`.
    fn host_name(&self, addr: IpAddr) -> Option<String>;
    /// A service name (`http`) to its port for the protocol, as `getservbyname`.
    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16>;
    /// The official name of a port for the protocol, as `getservbyport`.
    fn service_name(&self, port: u16, protocol: Protocol) -> Option<String>;
}

/// Resolves nothing: addresses and ports stay numeric, host and service names are refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNames;

impl Names for NoNames {
    fn host_addr(&self, _name: &str) -> Option<Ipv4Addr> {
        None
    }
    fn host_name(&self, _addr: IpAddr) -> Option<String> {
        None
    }
    fn service_port(&self, _name: &str, _protocol: Protocol) -> Option<u16> {
        None
    }
    fn service_name(&self, _port: u16, _protocol: Protocol) -> Option<String> {
        None
    }
}

/// The system's resolver (NSS through getaddrinfo/getnameinfo) and `/etc/services`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemNames;

/// Where the service names live; read once per process.
const SERVICES_FILE: &str = "/etc/services";

fn system_services() -> &'static ServicesDb {
    static DB: OnceLock<ServicesDb> = OnceLock::new();
    // A missing or unreadable file just means no names, as getservbyname would say.
    DB.get_or_init(|| {
        ServicesDb::parse(&std::fs::read_to_string(SERVICES_FILE).unwrap_or_default())
    })
}

impl Names for SystemNames {
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        if name.is_empty() {
            return None;
        }
        (name, 0u16)
            .to_socket_addrs()
            .ok()?
            .find_map(|sa| match sa {
                SocketAddr::V4(v4) => Some(*v4.ip()),
                SocketAddr::V6(_) => None,
            })
    }

    fn host_name(&self, addr: IpAddr) -> Option<String> {
        // SAFETY: all-zero bytes are a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            IpAddr::V4(v4) => {
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(v4).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sa) };
                size_of::<libc::sockaddr_in>()
            }
            IpAddr::V6(v6) => {
                let sa = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.octets(),
                    },
                    sin6_scope_id: 0,
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sa) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        let mut host = [0 as libc::c_char; libc::NI_MAXHOST as usize];
        // SAFETY: `storage` holds a valid sockaddr of the family's exact length `len`; `host`
        // is a writable buffer of the length passed; no service buffer is asked for (null, 0).
        let rc = unsafe {
            libc::getnameinfo(
                (&raw const storage).cast::<libc::sockaddr>(),
                len as libc::socklen_t,
                host.as_mut_ptr(),
                host.len() as libc::socklen_t,
                std::ptr::null_mut(),
                0,
                // Only a real name: ipvsadm prints the address itself when there is none.
                libc::NI_NAMEREQD,
            )
        };
        if rc != 0 {
            return None;
        }
        // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
        let name = unsafe { CStr::from_ptr(host.as_ptr()) };
        name.to_str().ok().map(str::to_owned)
    }

    fn service_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        system_services().port(name, protocol)
    }

    fn service_name(&self, port: u16, protocol: Protocol) -> Option<String> {
        system_services().name(port, protocol).map(str::to_owned)
    }
}

/// One line of `/etc/services`: `name port/protocol [aliases...] [# comment]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ServiceEntry {
    name: String,
    aliases: Vec<String>,
    port: u16,
    protocol: String,
}

/// The contents of an `/etc/services` file, searched as the C library does: first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicesDb {
    entries: Vec<ServiceEntry>,
}

impl ServicesDb {
    /// Parses the file's text; malformed lines are skipped as the C library skips them.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|line| {
                let line = line.split('#').next().unwrap_or_default();
                let mut fields = line.split_whitespace();
                let name = fields.next()?;
                let (port, protocol) = fields.next()?.split_once('/')?;
                Some(ServiceEntry {
                    name: name.to_owned(),
                    port: port.parse().ok()?,
                    protocol: protocol.to_owned(),
                    aliases: fields.map(str::to_owned).collect(),
                })
            })
            .collect();
        ServicesDb { entries }
    }

    fn protocol_name(protocol: Protocol) -> &'static str {
        match protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// `getservbyname`: the official name or an alias.
    pub fn port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        let proto = Self::protocol_name(protocol);
        self.entries
            .iter()
            .find(|e| {
                e.protocol == proto && (e.name == name || e.aliases.iter().any(|a| a == name))
            })
            .map(|e| e.port)
    }

    /// `getservbyport`: the official name.
    pub fn name(&self, port: u16, protocol: Protocol) -> Option<&str> {
        let proto = Self::protocol_name(protocol);
        self.entries
            .iter()
            .find(|e| e.protocol == proto && e.port == port)
            .map(|e| e.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "\
# Network services, Internet style
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
telnet\t\t23/tcp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
broken line
https\t\t443/tcp
https\t\t443/udp
";

    #[test]
    fn services_by_name_and_alias() {
        let db = ServicesDb::parse(SERVICES);
        assert_eq!(db.port("http", Protocol::Tcp), Some(80));
        assert_eq!(db.port("www", Protocol::Tcp), Some(80));
        assert_eq!(db.port("http", Protocol::Udp), None);
        assert_eq!(db.port("domain", Protocol::Udp), Some(53));
        assert_eq!(db.port("broken", Protocol::Tcp), None);
        assert_eq!(db.port("nope", Protocol::Tcp), None);
    }

    #[test]
    fn services_by_port() {
        let db = ServicesDb::parse(SERVICES);
        assert_eq!(db.name(80, Protocol::Tcp), Some("http"));
        assert_eq!(db.name(443, Protocol::Udp), Some("https"));
        assert_eq!(db.name(8080, Protocol::Tcp), None);
    }

    #[test]
    fn no_names_resolves_nothing() {
        assert_eq!(NoNames.host_addr("localhost"), None);
        assert_eq!(NoNames.host_name(Ipv4Addr::LOCALHOST.into()), None);
        assert_eq!(NoNames.service_port("http", Protocol::Tcp), None);
        assert_eq!(NoNames.service_name(80, Protocol::Tcp), None);
    }

    #[test]
    fn system_resolves_localhost_both_ways() {
        // /etc/hosts always maps localhost; NSS answers from it without the network.
        assert_eq!(
            SystemNames.host_addr("localhost"),
            Some(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(SystemNames.host_addr(""), None);
        assert!(SystemNames.host_name(Ipv4Addr::LOCALHOST.into()).is_some());
    }
}
