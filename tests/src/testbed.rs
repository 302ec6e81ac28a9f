//! The seeds' LVS topologies in network namespaces: a client, a director and real servers
//! plugged into switches, built from scratch and torn down when the [`Testbed`] is dropped
//! (also when a test panics). [`Topology`] picks the set-up:
//!
//! ```text
//! Dr, Tun (seeds 000, 003, 004): one LAN, bridge br0 in <prefix>-switch
//!   client .10 -- director .11 (+ VIP .99/32 on eth0) -- rs1 .12, rs2 .13, ... (VIP on lo)
//!   Tun: each real server runs `lbd decap --iface eth0` (no ipip module here).
//!   With a backup director (seed 002): director2 .9 on the same LAN, and the VIP on neither
//!   director: VRRP (keepalived, started by the test) puts it on the master's eth0.
//!
//! Nat (seed 001): a two-NIC director between two LANs
//!   br0, subnet S:    client .10 -- director ext0 .11 (+ VIP S.99/32)
//!   br1, subnet S+1:  director int0 .1 -- rs1 .12, rs2 .13, ...  (default via .1)
//!   ip_forward=1 on the director; the client has no route to the inside.
//!
//! NatOneArm: a one-NIC director on the real servers' LAN, clients behind a router
//!   br0, subnet S:    client .10 (default via .1) -- router eth0 .1
//!   br1, subnet S+1:  router eth1 .1 -- director .11 (+ VIP S+1.99/32, default via .1)
//!                     -- rs1 .12, rs2 .13, ...  (default via the director, .11)
//! ```
//!
//! Every host sees its switch through its own interfaces (`eth0`; the two-NIC director's
//! `ext0` and `int0`); the bridges and their ports live in their own namespace, so nothing
//! touches the host's interfaces and the address ranges cannot clash with the host's
//! networks. Every real server runs nginx answering with its name on [`SERVICE_PORT`] and
//! [`UNSERVED_PORT`] (and files under `/files/`, see [`Testbed::publish_file`]), a TCP echo on
//! [`ECHO_PORT`] and a UDP echo on [`UDP_ECHO_PORT`] (see [`crate::echo`]).
//!
//! DR and TUN real servers carry the VIP on `lo` with `arp_ignore=1`, `arp_announce=2` and
//! `rp_filter=0` (seeds 000, 003 and 004). NAT real servers have only their own address and
//! the director as their gateway (seed 001).

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddrV4},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::{
    cmd::{self, Daemon, Ran},
    echo::{self, Datagram, ECHO_PORT, UDP_ECHO_PORT},
    http::{self, Load, LoadGen, Tally},
    lbd::{self, Lbd, LbdFiles, XdpMode},
    netns::{self, Netns},
    tap::{Counter, SwitchCounters},
    tools, wait, xdp_pass,
};

/// The port of the service the tests configure (seed 000: `-t VIP:80`).
pub const SERVICE_PORT: u16 = 80;
/// A port every real server also answers on, but that no test configures as a service: a
/// request to `VIP:UNSERVED_PORT` that the director wrongly forwarded would get a real
/// server's reply instead of the director's refusal. NAT tests map `VIP:80` to it.
pub const UNSERVED_PORT: u16 = 8080;
/// The interface name every host uses towards its switch.
pub const HOST_IFACE: &str = "eth0";
/// The two-NIC NAT director's interfaces (seed 001's external and internal NICs).
pub const NAT_EXTERNAL_IFACE: &str = "ext0";
pub const NAT_INTERNAL_IFACE: &str = "int0";
/// The one-arm NAT router's interface on the real servers' LAN.
const ROUTER_INSIDE_IFACE: &str = "eth1";

const CLIENT_HOST: u8 = 10;
const DIRECTOR_HOST: u8 = 11;
/// The second director of a pair (seed 002), below the real servers' numbers.
const DIRECTOR2_HOST: u8 = 9;
const FIRST_RS_HOST: u8 = 12;
const VIP_HOST: u8 = 99;
/// The gateway's host number: the two-NIC director's inside address, the one-arm router's.
const GATEWAY_HOST: u8 = 1;

/// How long a freshly built topology may take to carry traffic.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Prefix of the namespaces and directories of testbeds made by tests: `lbt-<pid>-<n>`.
pub(crate) const TEST_PREFIX: &str = "lbt";

pub(crate) static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Which LVS set-up to build; see the module documentation for the pictures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Topology {
    /// LVS-DR (seeds 000, 004): one LAN, the VIP on the real servers' `lo`.
    #[default]
    Dr,
    /// LVS-TUN (seeds 000, 003): the DR LAN, and `lbd decap` on every real server to take
    /// the director's IP-in-IP packets apart (this kernel has no `ipip` module).
    Tun,
    /// LVS-NAT with a two-NIC director between the client's and the real servers' networks
    /// (seed 001).
    Nat,
    /// LVS-NAT with a one-NIC director on the real servers' LAN; the client is on another
    /// network behind a router.
    NatOneArm,
}

impl Topology {
    /// The director's interfaces, the ones lbd attaches to: the client's side first.
    pub fn director_ifaces(self) -> &'static [&'static str] {
        match self {
            Topology::Nat => &[NAT_EXTERNAL_IFACE, NAT_INTERNAL_IFACE],
            Topology::Dr | Topology::Tun | Topology::NatOneArm => &[HOST_IFACE],
        }
    }

    /// Whether the real servers sit on a network of their own (`br1`, subnet + 1).
    pub fn separate_rs_network(self) -> bool {
        matches!(self, Topology::Nat | Topology::NatOneArm)
    }

    /// Whether real servers carry the VIP on `lo` (DR and TUN) or only their own address
    /// (NAT).
    pub fn vip_on_real_servers(self) -> bool {
        matches!(self, Topology::Dr | Topology::Tun)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Topology::Dr => "LVS-DR, one LAN",
            Topology::Tun => "LVS-TUN, one LAN, `lbd decap` on the real servers",
            Topology::Nat => "LVS-NAT, two-NIC director",
            Topology::NatOneArm => "LVS-NAT, one-NIC director, client behind a router",
        }
    }
}

/// One interface of a host, plugged into a switch port.
#[derive(Clone, Debug)]
pub struct Leg {
    /// The interface's name in the host (`eth0`, `int0`, ...).
    pub iface: String,
    pub ip: Ipv4Addr,
    /// The bridge it is plugged into (`br0`, `br1`).
    pub bridge: String,
    /// The name of its switch port (the other end of the veth) in the switch namespace.
    pub switch_port: String,
}

/// One machine of the topology: a namespace with interfaces plugged into the switch.
pub struct Host {
    /// The role: `client`, `director`, `router`, `rs1`, ...
    pub name: String,
    pub ns: Netns,
    /// Its address on its first leg: the client's side for the director and the router.
    pub ip: Ipv4Addr,
    /// The name of its first leg's switch port in the switch namespace.
    pub switch_port: String,
    /// Every leg, the first one first.
    pub legs: Vec<Leg>,
}

impl Host {
    /// A host named `name` in a new namespace `<prefix>-<name>`, not plugged in yet.
    pub fn new(name: &str, prefix: &str) -> Host {
        Host {
            name: name.to_owned(),
            ns: Netns::create(&format!("{prefix}-{name}")),
            ip: Ipv4Addr::UNSPECIFIED,
            switch_port: String::new(),
            legs: Vec::new(),
        }
    }

    /// The first leg's interface name.
    pub fn iface(&self) -> &str {
        &self.legs[0].iface
    }

    /// The MAC address of the first leg's interface.
    pub fn mac(&self) -> String {
        let out = self
            .ns
            .run(&["cat", &format!("/sys/class/net/{}/address", self.iface())]);
        out.trim().to_owned()
    }

    /// Adds a route in this host: `ip route add DEST via GW`.
    pub fn route(&self, dest: &str, via: Ipv4Addr) {
        self.ns
            .run(&["ip", "route", "add", dest, "via", &via.to_string()]);
    }
}

/// Plugs `host` into `bridge` of the `switch` namespace: a veth whose switch end is `port`
/// and whose host end is `iface` with address `ip/24`; the first leg becomes the host's
/// address.
pub fn plug(switch: &Netns, host: &mut Host, bridge: &str, port: &str, iface: &str, ip: Ipv4Addr) {
    // Created in the switch namespace with the host's end moved straight into the
    // host's namespace, so names never collide with the host's interfaces.
    switch.run(&[
        "ip",
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        iface,
        "netns",
        host.ns.name(),
    ]);
    switch.run(&["ip", "link", "set", "dev", port, "master", bridge, "up"]);
    host.ns
        .run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", iface]);
    host.ns.run(&["ip", "link", "set", "dev", iface, "up"]);
    // A veth leaves TCP checksums to be completed "by the NIC" (CHECKSUM_PARTIAL).
    // Native XDP sees raw frames without that note, so a frame it sends back on
    // would reach the real server with a wrong checksum and be dropped; and NAT
    // updates checksums incrementally, so they must be complete to begin with.
    // Frames from a real wire are complete: make every host send them that way.
    host.ns.run(&["ethtool", "-K", iface, "tx", "off"]);
    if host.legs.is_empty() {
        host.ip = ip;
        host.switch_port = port.to_owned();
    }
    host.legs.push(Leg {
        iface: iface.to_owned(),
        ip,
        bridge: bridge.to_owned(),
        switch_port: port.to_owned(),
    });
}

/// Configures and builds a [`Testbed`].
#[derive(Clone, Debug)]
pub struct TestbedBuilder {
    topology: Topology,
    real_servers: usize,
    xdp_mode: XdpMode,
    prefix: Option<String>,
    subnet: Option<Ipv4Addr>,
    backup_director: bool,
    vip_is_director_address: bool,
    ipv6: bool,
}

impl Default for TestbedBuilder {
    fn default() -> Self {
        Self {
            topology: Topology::default(),
            real_servers: 2,
            xdp_mode: XdpMode::default(),
            prefix: None,
            subnet: None,
            backup_director: false,
            vip_is_director_address: false,
            ipv6: false,
        }
    }
}

/// The IPv6 twin of an IPv4 test address `a.b.c.d`: `fd00:0:b:c::d` in a /64 of its own per
/// IPv4 /24, so that hosts on one LAN share a prefix in both families.
pub fn v6_of(ip: Ipv4Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(0xfd00, 0, o[1].into(), o[2].into(), 0, 0, 0, o[3].into())
}

/// `base` (`a.b.c.0`) with the last octet `host`.
pub(crate) fn at(base: Ipv4Addr, host: u8) -> Ipv4Addr {
    let o = base.octets();
    Ipv4Addr::new(o[0], o[1], o[2], host)
}

impl TestbedBuilder {
    /// Which set-up to build (default [`Topology::Dr`]).
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// How many real servers (`rs1`..`rsN`) to create; 2 by default. They all run nginx and
    /// the echo services; which ones serve the VIP is up to the test's lbadm commands.
    pub fn real_servers(mut self, n: usize) -> Self {
        assert!((1..=80).contains(&n), "1 to 80 real servers");
        self.real_servers = n;
        self
    }

    /// How lbd will attach XDP to the director's interfaces (default [`XdpMode::Skb`]). For
    /// native modes the testbed attaches an XDP_PASS program to each of the director's switch
    /// ports.
    pub fn xdp_mode(mut self, mode: XdpMode) -> Self {
        self.xdp_mode = mode;
        self
    }

    /// NAT only: the VIP is the director's own external address, as in seed 001 (the
    /// director's kernel owns it: what lb does not balance, it answers itself), instead of
    /// an address of its own.
    pub fn vip_is_director_address(mut self) -> Self {
        self.vip_is_director_address = true;
        self
    }

    /// Adds a second director, `director2`, on the same LAN as the first (seed 002's pair of
    /// directors; DR and TUN only). Neither director then gets the VIP: whichever VRRP makes
    /// master adds it (the test runs keepalived in both), and lbd runs on both.
    pub fn backup_director(mut self) -> Self {
        self.backup_director = true;
        self
    }

    /// Names namespaces `<prefix>-client`, `<prefix>-director`, ... instead of a unique
    /// per-test prefix. Building fails if such namespaces already exist.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_owned());
        self
    }

    /// The /24 to number hosts in (`a.b.c.0`); by default `10.<100 + n>.0.0`. Topologies
    /// with a separate real-server network number it in the next /24 (`a.b.c+1.0`).
    /// Dual stack: every interface gets the IPv6 twin of its address ([`v6_of`], `nodad`),
    /// the VIP's twin goes where the VIP goes (the director, the real servers' `lo` in DR and
    /// TUN), and nginx listens on IPv6 too.
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    pub fn subnet(mut self, subnet: Ipv4Addr) -> Self {
        let o = subnet.octets();
        assert_eq!(
            o[3], 0,
            "subnet {subnet} must be a /24 base address (x.y.z.0)"
        );
        self.subnet = Some(subnet);
        self
    }

    /// Creates the topology and waits until every real server's nginx and echo services
    /// answer (from the client in DR and TUN, over plain bridging; from the director in NAT,
    /// where the client cannot reach the real servers without lbd) and, in TUN, every real
    /// server's decapsulator is attached. Panics, cleaning up, if anything fails.
    #[track_caller]
    pub fn build(self) -> Testbed {
        tools::require_environment();
        sweep_stale_testbeds();

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let prefix = self
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{TEST_PREFIX}-{}-{id}", std::process::id()));
        let subnet = self
            .subnet
            .unwrap_or_else(|| Ipv4Addr::new(10, 100 + (id % 100) as u8, 0, 0));
        let topology = self.topology;
        assert!(
            !self.backup_director || matches!(topology, Topology::Dr | Topology::Tun),
            "a backup director is for the one-LAN topologies (DR, TUN), not {topology:?}"
        );
        let rs_subnet = if topology.separate_rs_network() {
            let o = subnet.octets();
            assert!(
                o[2] < 255,
                "subnet {subnet}: the real servers' network would be the next /24"
            );
            Ipv4Addr::new(o[0], o[1], o[2] + 1, 0)
        } else {
            subnet
        };

        let taken: Vec<String> = netns::list()
            .into_iter()
            .filter(|name| name.starts_with(&format!("{prefix}-")))
            .collect();
        assert!(
            taken.is_empty(),
            "network namespaces {taken:?} already exist (another testbed with prefix {prefix:?} \
             is running, or one was killed: `lab clean --prefix {prefix}` removes them)"
        );
        let dir = TempDir::create(&prefix);
        let switch = Netns::create(&format!("{prefix}-switch"));
        let client_bridge = "br0";
        let rs_bridge = if topology.separate_rs_network() {
            "br1"
        } else {
            "br0"
        };
        for bridge in [client_bridge, rs_bridge] {
            if switch
                .try_run(&["ip", "link", "show", bridge], None)
                .success()
            {
                continue;
            }
            switch.run(&["ip", "link", "add", bridge, "type", "bridge"]);
            switch.run(&["ip", "link", "set", "dev", bridge, "up"]);
        }

        let ipv6 = self.ipv6;
        let plug = |host: &mut Host, bridge: &str, port: &str, iface: &str, ip: Ipv4Addr| {
            plug(&switch, host, bridge, port, iface, ip);
            if ipv6 {
                // nodad: usable at once (duplicate address detection would hold it a second).
                let v6 = format!("{}/64", v6_of(ip));
                host.ns
                    .run(&["ip", "-6", "addr", "add", &v6, "dev", iface, "nodad"]);
            }
        };

        let mut client = Host::new("client", &prefix);
        plug(
            &mut client,
            client_bridge,
            "client",
            HOST_IFACE,
            at(subnet, CLIENT_HOST),
        );
        // Load generators open many short connections from the client.
        client
            .ns
            .sysctl("net.ipv4.ip_local_port_range", "1024 65535");

        let mut director = Host::new("director", &prefix);
        let mut router = None;
        let (vip, rs_gateway) = match topology {
            Topology::Dr | Topology::Tun => {
                plug(
                    &mut director,
                    client_bridge,
                    "director",
                    HOST_IFACE,
                    at(subnet, DIRECTOR_HOST),
                );
                (at(subnet, VIP_HOST), None)
            }
            Topology::Nat => {
                // Seed 001: eth1 192.168.10.100/24 outside, eth0 172.16.20.150/16 inside.
                plug(
                    &mut director,
                    client_bridge,
                    "director",
                    NAT_EXTERNAL_IFACE,
                    at(subnet, DIRECTOR_HOST),
                );
                plug(
                    &mut director,
                    rs_bridge,
                    "director-int",
                    NAT_INTERNAL_IFACE,
                    at(rs_subnet, GATEWAY_HOST),
                );
                director.ns.sysctl("net.ipv4.ip_forward", "1");
                if self.ipv6 {
                    // Also what lets the data path's IPv6 FIB lookups answer.
                    director.ns.sysctl("net.ipv6.conf.all.forwarding", "1");
                }
                let vip = if self.vip_is_director_address {
                    at(subnet, DIRECTOR_HOST)
                } else {
                    at(subnet, VIP_HOST)
                };
                (vip, Some(at(rs_subnet, GATEWAY_HOST)))
            }
            Topology::NatOneArm => {
                let mut r = Host::new("router", &prefix);
                plug(
                    &mut r,
                    client_bridge,
                    "router",
                    HOST_IFACE,
                    at(subnet, GATEWAY_HOST),
                );
                plug(
                    &mut r,
                    rs_bridge,
                    "router-in",
                    ROUTER_INSIDE_IFACE,
                    at(rs_subnet, GATEWAY_HOST),
                );
                r.ns.sysctl("net.ipv4.ip_forward", "1");
                client.route("default", at(subnet, GATEWAY_HOST));
                plug(
                    &mut director,
                    rs_bridge,
                    "director",
                    HOST_IFACE,
                    at(rs_subnet, DIRECTOR_HOST),
                );
                director.route("default", at(rs_subnet, GATEWAY_HOST));
                director.ns.sysctl("net.ipv4.ip_forward", "1");
                router = Some(r);
                (at(rs_subnet, VIP_HOST), Some(at(rs_subnet, DIRECTOR_HOST)))
            }
        };
        let director2 = self.backup_director.then(|| {
            let mut d = Host::new("director2", &prefix);
            plug(
                &mut d,
                client_bridge,
                "director2",
                HOST_IFACE,
                at(subnet, DIRECTOR2_HOST),
            );
            d
        });
        assert!(
            !self.vip_is_director_address || self.topology == Topology::Nat,
            "vip_is_director_address is for the NAT topology"
        );
        if director2.is_none() && !self.vip_is_director_address {
            // Seed 000: `ifconfig enp0s3:0 VIP netmask 255.255.255.255 up` on the director;
            // seed 001's VIP is an address of the external NIC too. A pair's VIP is VRRP's.
            director.ns.run(&[
                "ip",
                "addr",
                "add",
                &format!("{vip}/32"),
                "dev",
                director.iface(),
            ]);
            if self.ipv6 {
                // Deprecated at once (preferred_lft 0), as IPv6 VIPs usually are: still an
                // address of the director, but never chosen as the source of its own
                // connections. Source selection prefers the /128 VIP's longer match
                // otherwise, and the director's health checks would come from the VIP, which
                // the real servers answer to their own lo.
                director.ns.run(&[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{}/128", v6_of(vip)),
                    "dev",
                    director.iface(),
                    "nodad",
                    "preferred_lft",
                    "0",
                ]);
            }
        }

        let mut real_servers = Vec::new();
        for i in 1..=self.real_servers {
            let mut rs = Host::new(&format!("rs{i}"), &prefix);
            let name = rs.name.clone();
            plug(
                &mut rs,
                rs_bridge,
                &name,
                HOST_IFACE,
                at(rs_subnet, FIRST_RS_HOST + (i - 1) as u8),
            );
            if topology.vip_on_real_servers() {
                // Seed 004's real server script: VIP on lo, answer ARP only for addresses of
                // the receiving interface, announce only the outgoing interface's address.
                // Seeds 000 and 003 (TUN): no reverse-path filtering.
                rs.ns
                    .run(&["ip", "addr", "add", &format!("{vip}/32"), "dev", "lo"]);
                // IPv6 needs no arp_ignore: neighbour solicitations are answered only for
                // addresses of the interface they arrive on, not for lo's.
                if self.ipv6 {
                    let vip6 = format!("{}/128", v6_of(vip));
                    rs.ns.run(&["ip", "-6", "addr", "add", &vip6, "dev", "lo"]);
                }
                for conf in ["all", "default", "lo", HOST_IFACE] {
                    rs.ns
                        .sysctl(&format!("net.ipv4.conf.{conf}.arp_ignore"), "1");
                    rs.ns
                        .sysctl(&format!("net.ipv4.conf.{conf}.arp_announce"), "2");
                }
                for conf in ["all", "lo", HOST_IFACE] {
                    rs.ns
                        .sysctl(&format!("net.ipv4.conf.{conf}.rp_filter"), "0");
                }
            }
            if let Some(gateway) = rs_gateway {
                // Seed 001: `route add default gw 172.16.20.150 dev eth0`.
                rs.route("default", gateway);
                if self.ipv6 {
                    let via = v6_of(gateway).to_string();
                    rs.ns
                        .run(&["ip", "-6", "route", "add", "default", "via", &via]);
                }
            }
            real_servers.push(rs);
        }

        let peer_pass: Vec<OwnedFd> = if self.xdp_mode.is_native() {
            director
                .legs
                .iter()
                .chain(director2.iter().flat_map(|d| &d.legs))
                .map(|leg| {
                    xdp_pass::attach(switch.name(), &leg.switch_port).unwrap_or_else(|e| {
                        panic!(
                            "attaching XDP_PASS to the director's switch port {}: {e}",
                            leg.switch_port
                        )
                    })
                })
                .collect()
        } else {
            Vec::new()
        };

        let mut servers = Vec::new();
        let mut decap = Vec::new();
        for rs in &real_servers {
            let rs_dir = dir.path().join(&rs.name);
            std::fs::create_dir_all(rs_dir.join("files")).expect("create real server dir");
            let conf = http::nginx_config_families(
                &rs_dir,
                &rs.name,
                &[SERVICE_PORT, UNSERVED_PORT],
                self.ipv6,
            );
            servers.push(http::start_nginx(&rs.ns, &rs_dir, &conf));
            servers.push(echo::start_tcp_echo(&rs.ns, &rs_dir, &rs.name));
            servers.push(echo::start_udp_echo(&rs.ns, &rs_dir, &rs.name, rs.ip));
            if topology.vip_on_real_servers() {
                servers.push(echo::start_udp_echo(&rs.ns, &rs_dir, &rs.name, vip));
            }
            if topology == Topology::Tun {
                decap.push(lbd::start_decap(
                    &rs.ns,
                    HOST_IFACE,
                    XdpMode::Skb,
                    &rs_dir.join("decap.log"),
                ));
            }
        }

        let mut testbed = Testbed {
            lbd: None,
            decap,
            servers,
            client,
            director,
            director2,
            router,
            real_servers,
            peer_pass,
            switch,
            dir,
            lbd_files: None,
            prefix,
            topology,
            subnet,
            rs_subnet,
            vip,
            xdp_mode: self.xdp_mode,
            loads: 0,
            ipv6: self.ipv6,
        };
        testbed.lbd_files = Some(LbdFiles::in_dir(testbed.dir.path()));
        testbed.wait_ready();
        testbed
    }
}

/// An LVS topology in network namespaces; see the module documentation. Dropping it stops
/// lbd (SIGTERM), kills every process in its namespaces, deletes them and its temporary
/// directory.
pub struct Testbed {
    // Fields drop in this order: lbd first (clean detach), then the real servers'
    // decapsulators and servers, the hosts' namespaces, the switch, the files.
    lbd: Option<Lbd>,
    decap: Vec<Daemon>,
    servers: Vec<Daemon>,
    pub client: Host,
    pub director: Host,
    /// The second director of a pair ([`TestbedBuilder::backup_director`]).
    pub director2: Option<Host>,
    /// The router between the client's network and the director's (one-arm NAT only).
    pub router: Option<Host>,
    pub real_servers: Vec<Host>,
    #[expect(
        dead_code,
        reason = "held, never read: closing the BPF links detaches the XDP_PASS programs"
    )]
    peer_pass: Vec<OwnedFd>,
    switch: Netns,
    dir: TempDir,
    lbd_files: Option<LbdFiles>,
    prefix: String,
    topology: Topology,
    subnet: Ipv4Addr,
    rs_subnet: Ipv4Addr,
    vip: Ipv4Addr,
    xdp_mode: XdpMode,
    loads: u32,
    /// Built with [`TestbedBuilder::ipv6`].
    ipv6: bool,
}

impl Testbed {
    pub fn builder() -> TestbedBuilder {
        TestbedBuilder::default()
    }

    /// The prefix of this testbed's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The client's network (`a.b.c.0`/24).
    pub fn subnet(&self) -> Ipv4Addr {
        self.subnet
    }

    /// The real servers' network: the client's in DR and TUN, the next /24 in NAT.
    pub fn rs_subnet(&self) -> Ipv4Addr {
        self.rs_subnet
    }

    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    pub fn xdp_mode(&self) -> XdpMode {
        self.xdp_mode
    }

    /// The testbed's temporary directory (configs, logs, lbd's socket and state).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn vip(&self) -> Ipv4Addr {
        self.vip
    }

    /// `VIP:port`, as lbadm takes it after `-t`.
    pub fn vip_port(&self, port: u16) -> String {
        format!("{}:{port}", self.vip)
    }

    /// The VIP's IPv6 twin (a testbed built with [`TestbedBuilder::ipv6`]).
    #[track_caller]
    pub fn vip6(&self) -> Ipv6Addr {
        assert!(self.ipv6, "not a dual-stack testbed: build it with .ipv6()");
        v6_of(self.vip)
    }

    /// `[VIP6]:port`, as lbadm takes it after `-t` and curl in a URL.
    pub fn vip6_port(&self, port: u16) -> String {
        format!("[{}]:{port}", self.vip6())
    }

    /// Real server `i`'s IPv6 address.
    pub fn rip6(&self, i: usize) -> Ipv6Addr {
        assert!(self.ipv6, "not a dual-stack testbed: build it with .ipv6()");
        v6_of(self.rs(i).ip)
    }

    /// The client's IPv6 address.
    pub fn client6(&self) -> Ipv6Addr {
        assert!(self.ipv6, "not a dual-stack testbed: build it with .ipv6()");
        v6_of(self.client.ip)
    }

    /// How many requests real server `i` has served that were addressed to `[VIP6]:port`
    /// (nginx logs an IPv6 `$server_addr` without brackets).
    pub fn served_via_vip6(&self, i: usize, port: u16) -> usize {
        self.served(i, &format!("{}:{port}", self.vip6()))
    }

    /// [`Testbed::served_via_vip6`] for every real server, in order.
    pub fn served_via_vip6_all(&self, port: u16) -> Vec<usize> {
        (1..=self.real_servers.len())
            .map(|i| self.served_via_vip6(i, port))
            .collect()
    }

    /// Real server `i`, counting from 1 like the names (`rs1`).
    #[track_caller]
    pub fn rs(&self, i: usize) -> &Host {
        assert!(
            (1..=self.real_servers.len()).contains(&i),
            "no real server rs{i} (this testbed has {})",
            self.real_servers.len()
        );
        &self.real_servers[i - 1]
    }

    /// Real server `i`'s address as text, for lbadm's `-r`.
    pub fn rip(&self, i: usize) -> String {
        self.rs(i).ip.to_string()
    }

    /// The director's interfaces, as given to lbd (`--iface` each).
    pub fn director_ifaces(&self) -> &'static [&'static str] {
        self.topology.director_ifaces()
    }

    // ----- lbd and lbadm -----

    pub fn lbd_files(&self) -> &LbdFiles {
        self.lbd_files.as_ref().expect("set at build")
    }

    /// Starts lbd on the director's interfaces with this testbed's XDP mode, socket and
    /// state file, and waits until it answers.
    #[track_caller]
    pub fn start_lbd(&mut self) {
        self.start_lbd_with(&[]);
    }

    /// [`Testbed::start_lbd`] with `extra` arguments for lbd.
    pub fn start_lbd_with(&mut self, extra: &[&str]) {
        assert!(self.lbd.is_none(), "lbd is already running");
        let lbd = Lbd::start_with(
            &self.director.ns,
            self.director_ifaces(),
            self.xdp_mode,
            self.lbd_files(),
            extra,
        );
        self.lbd = Some(lbd);
    }

    /// Stops lbd with SIGTERM and returns its exit status.
    #[track_caller]
    pub fn stop_lbd(&mut self) -> ExitStatus {
        self.lbd.take().expect("lbd is not running").stop()
    }

    /// Whether lbd is running (false once it exited, also unexpectedly).
    pub fn lbd_running(&mut self) -> bool {
        self.lbd.as_mut().is_some_and(|lbd| lbd.daemon.is_running())
    }

    /// Everything lbd printed so far (all runs).
    pub fn lbd_log(&self) -> String {
        std::fs::read_to_string(&self.lbd_files().log).unwrap_or_default()
    }

    /// Runs `lbadm ARGS` in the director, feeding it `stdin`, without judging the outcome.
    pub fn try_lbadm(&self, args: &[&str], stdin: Option<&str>) -> Ran {
        lbd::lbadm(&self.director.ns, &self.lbd_files().socket, args, stdin)
    }

    /// Runs `lbadm ARGS` in the director and returns its stdout; panics with its stderr and
    /// lbd's recent log if it fails.
    #[track_caller]
    pub fn lbadm(&self, args: &[&str]) -> String {
        self.lbadm_stdin(args, None)
    }

    /// [`Testbed::lbadm`] with `stdin` fed to it (for `-R`).
    #[track_caller]
    pub fn lbadm_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let ran = self.try_lbadm(args, stdin);
        assert!(
            ran.success(),
            "lbadm failed:\n{ran}\nlbd log:\n{}",
            cmd::tail(&self.lbd_log(), 30)
        );
        ran.stdout
    }

    /// Runs `lbadm ARGS` in the director with the socket given by `LBD_SOCKET` instead of
    /// `--socket`.
    pub fn try_lbadm_env(&self, args: &[&str]) -> Ran {
        let lbadm = tools::binary("lbadm").display().to_string();
        let env = format!("LBD_SOCKET={}", self.lbd_files().socket.display());
        let mut argv = vec!["env", env.as_str(), lbadm.as_str()];
        argv.extend_from_slice(args);
        self.director.ns.try_run(&argv, None)
    }

    /// Whether an XDP program is attached to the director's first interface.
    pub fn director_xdp_attached(&self) -> bool {
        lbd::xdp_attached(&self.director.ns, self.director.iface())
    }

    /// The data path's event counters (`DP_STATS`, summed over CPUs) of the XDP program on
    /// the director's first interface, indexed as `lb_common::Stat`.
    pub fn data_path_counters(&self) -> Result<Vec<u64>, String> {
        lbd::data_path_counters(&self.director.ns, self.director.iface())
    }

    /// Asserts that every real server's `lbd decap` took packets apart (its `decap` counter),
    /// naming the real server and its counters otherwise.
    #[track_caller]
    pub fn assert_each_real_server_decapsulated(&self) {
        for rs in &self.real_servers {
            let counters = lbd::data_path_counters(&rs.ns, HOST_IFACE)
                .unwrap_or_else(|e| panic!("{}'s decapsulator counters: {e}", rs.name));
            let decapsulated = lbd::stat(&counters, lb_common::Stat::Decap);
            assert!(
                decapsulated > 0,
                "{}'s `lbd decap` decapsulated nothing: {}",
                rs.name,
                lbd::name_counters(&counters)
            );
        }
    }

    /// The director's non-zero data-path counters by name (`rx=12 tx_nat=5 ...`), or why
    /// they cannot be read: for failure messages.
    pub fn data_path_summary(&self) -> String {
        match self.data_path_counters() {
            Ok(counters) => lbd::name_counters(&counters),
            Err(e) => format!("(data-path counters unavailable: {e})"),
        }
    }

    // ----- traffic -----

    /// Requests `url` `n` times from the client, a new connection each time, and returns who
    /// answered, in order.
    pub fn curl(&self, url: &str, n: usize) -> Tally {
        let argv = http::curl_argv(url, n);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        http::parse_curl(n, self.client.ns.try_run(&argv, None))
    }

    /// Requests `http://VIP:port/` `n` times from the client.
    pub fn curl_vip(&self, port: u16, n: usize) -> Tally {
        self.curl(&format!("http://{}/", self.vip_port(port)), n)
    }

    /// One plain `curl URL` from the client, as a user would type it.
    pub fn curl_once(&self, url: &str) -> Ran {
        self.client.ns.try_run(
            &["curl", "--silent", "--show-error", "--max-time", "5", url],
            None,
        )
    }

    /// Writes `contents` to every real server's nginx as `http://ADDR:PORT/files/<name>`.
    pub fn publish_file(&self, name: &str, contents: &[u8]) {
        assert!(
            !name.contains('/') && !name.starts_with('.'),
            "plain file name: {name:?}"
        );
        for rs in &self.real_servers {
            let path = self.dir.path().join(&rs.name).join("files").join(name);
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
    }

    /// Downloads `url` from the client with curl (one connection) and returns the body, or
    /// curl's failure.
    pub fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let path = self.dir.path().join("client-download");
        let _ = std::fs::remove_file(&path);
        let out = path.display().to_string();
        let ran = self.client.ns.try_run(
            &[
                "curl",
                "--silent",
                "--show-error",
                "--fail",
                "--connect-timeout",
                "3",
                "--max-time",
                "60",
                "--output",
                &out,
                url,
            ],
            None,
        );
        if !ran.success() {
            return Err(ran.to_string());
        }
        std::fs::read(&path).map_err(|e| format!("reading {out}: {e}"))
    }

    /// One exchange with a TCP echo from the client: connects to `addr`, sends `line`, and
    /// returns all it got (`"<real server>\n<line>\n"`).
    pub fn tcp_echo(&self, addr: SocketAddrV4, line: &str) -> Result<String, String> {
        echo::tcp_exchange(&self.client.ns, addr, line)
    }

    /// [`Testbed::tcp_echo`] to `VIP:port`.
    pub fn tcp_echo_vip(&self, port: u16, line: &str) -> Result<String, String> {
        self.tcp_echo(SocketAddrV4::new(self.vip, port), line)
    }

    /// One datagram from a new client socket to `VIP:port` and the first answer, with the
    /// address it came from (sent again from the same socket, up to 3 times, if lost).
    pub fn udp_echo_vip(&self, port: u16, line: &str) -> Result<Datagram, String> {
        echo::udp_exchange(&self.client.ns, SocketAddrV4::new(self.vip, port), line, 3)
    }

    /// How many requests real server `i` has served that were addressed to `local`
    /// (`addr:port`), from its nginx access log.
    pub fn served(&self, i: usize, local: &str) -> usize {
        http::count_served(&self.access_log(i), local, None)
    }

    /// How many requests real server `i` has served that were addressed to `local` and came
    /// from the client's own address (what LVS-NAT keeps, unlike a proxy).
    pub fn served_from_client(&self, i: usize, local: &str) -> usize {
        http::count_served(&self.access_log(i), local, Some(self.client.ip))
    }

    fn access_log(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.rs(i).name).join("access.log")
    }

    /// How many requests real server `i` has served that were addressed to `VIP:port`.
    pub fn served_via_vip(&self, i: usize, port: u16) -> usize {
        self.served(i, &self.vip_port(port))
    }

    /// [`Testbed::served_via_vip`] for every real server, in order.
    pub fn served_via_vip_all(&self, port: u16) -> Vec<usize> {
        (1..=self.real_servers.len())
            .map(|i| self.served_via_vip(i, port))
            .collect()
    }

    /// How many requests each real server has served at its own address and `port` (in
    /// LVS-NAT, requests to the VIP arrive rewritten to that), in order.
    pub fn served_at_rip_all(&self, port: u16) -> Vec<usize> {
        (1..=self.real_servers.len())
            .map(|i| self.served(i, &format!("{}:{port}", self.rip(i))))
            .collect()
    }

    /// How many TCP connections the client has opened so far (`Tcp: ActiveOpens` of its
    /// namespace, /proc/net/snmp): every connect() that sent a SYN, once however often the SYN
    /// was retransmitted. What a director's `Conns` must match for the client's traffic.
    pub fn client_tcp_active_opens(&self) -> u64 {
        let snmp = self.client.ns.run(&["cat", "/proc/net/snmp"]);
        tcp_snmp(&snmp, "ActiveOpens")
            .unwrap_or_else(|| panic!("no Tcp ActiveOpens in the client's /proc/net/snmp:\n{snmp}"))
    }

    /// Counters on the switch (see [`crate::tap`]); they count from now on.
    pub fn switch_counters(&self, counters: &[Counter]) -> SwitchCounters {
        SwitchCounters::install(&self.switch, counters)
    }

    /// Starts a load generator on the client against `url`.
    pub fn start_load(&mut self, kind: LoadGen, url: &str) -> Load {
        self.loads += 1;
        let out = self.dir.path().join(format!("load-{}.out", self.loads));
        let err = self.dir.path().join(format!("load-{}.err", self.loads));
        let argv = kind.argv(url);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let daemon = Daemon::spawn(
            &format!("{:?} on the client", kind),
            self.client.ns.argv(&argv),
            &out,
            &err,
        );
        Load { kind, daemon }
    }

    /// Panics if a real server's nginx, echo service or decapsulator has exited.
    #[track_caller]
    pub fn assert_servers_running(&mut self) {
        for daemon in self.servers.iter_mut().chain(self.decap.iter_mut()) {
            daemon.assert_running();
        }
    }

    /// The host the readiness probes run on: the client where it reaches the real servers
    /// by plain bridging, else the director (NAT: the client has no route to them).
    fn prober(&self) -> &Host {
        if self.topology.separate_rs_network() {
            &self.director
        } else {
            &self.client
        }
    }

    fn wait_ready(&mut self) {
        if self.topology == Topology::Tun {
            for i in 0..self.real_servers.len() {
                let rs = &self.real_servers[i];
                let decap = &mut self.decap[i];
                wait::wait_ok(
                    format!("`lbd decap` to attach to {}'s {HOST_IFACE}", rs.name),
                    lbd::LBD_START_TIMEOUT,
                    || {
                        decap.assert_running();
                        if lbd::xdp_attached(&rs.ns, HOST_IFACE) {
                            Ok(())
                        } else {
                            Err(format!("no XDP program on {HOST_IFACE} yet"))
                        }
                    },
                );
            }
        }
        for i in 1..=self.real_servers.len() {
            let name = self.rs(i).name.clone();
            let rip = self.rs(i).ip;
            let url = format!("http://{rip}:{SERVICE_PORT}/");
            let prober = self.prober().name.clone();
            wait::wait_ok(
                format!("{prober} to reach {name}'s nginx and echo services at {rip}"),
                READY_TIMEOUT,
                || {
                    for daemon in &mut self.servers {
                        daemon.assert_running();
                    }
                    let ns = &self.prober().ns;
                    let argv = http::curl_argv(&url, 1);
                    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                    let tally = http::parse_curl(1, ns.try_run(&argv, None));
                    if tally.names() != [name.as_str()] {
                        return Err(format!("nginx: {tally}"));
                    }
                    let tcp = echo::tcp_exchange(ns, SocketAddrV4::new(rip, ECHO_PORT), "ready")?;
                    if tcp != format!("{name}\nready\n") {
                        return Err(format!("TCP echo answered {tcp:?}"));
                    }
                    let udp =
                        echo::udp_exchange(ns, SocketAddrV4::new(rip, UDP_ECHO_PORT), "ready", 1)?;
                    if udp.text != format!("{name} ready\n") {
                        return Err(format!("UDP echo answered {udp:?}"));
                    }
                    Ok(())
                },
            );
        }
        // The client reaches the directors by plain routing: on its LAN, or through the
        // router. This also leaves each director knowing the next hop back to the client.
        let directors = std::iter::once(&self.director).chain(&self.director2);
        for (name, ip) in directors
            .map(|d| (d.name.clone(), d.ip))
            .collect::<Vec<_>>()
        {
            wait::wait_ok(
                format!("the client to reach the {name} at {ip}"),
                READY_TIMEOUT,
                || {
                    let ran = self
                        .client
                        .ns
                        .try_run(&["ping", "-c", "1", "-W", "1", &ip.to_string()], None);
                    if ran.success() {
                        Ok(())
                    } else {
                        Err(ran.to_string())
                    }
                },
            );
        }
    }

    /// A description of the topology: namespaces, addresses, files.
    pub fn describe(&self) -> String {
        let mut text = format!("  topology  {}\n", self.topology.describe());
        let line = |host: &Host, extra: &str| {
            let legs: Vec<String> = host
                .legs
                .iter()
                .map(|leg| format!("{} {}", leg.iface, leg.ip))
                .collect();
            format!(
                "  {:<9} {:<34} namespace {:<24} {extra}\n",
                host.name,
                legs.join(", "),
                host.ns.name()
            )
        };
        text += &line(&self.client, "");
        if let Some(router) = &self.router {
            text += &line(router, "ip_forward=1");
        }
        let forward = if self.topology.separate_rs_network() {
            ", ip_forward=1"
        } else {
            ""
        };
        let mode = self.xdp_mode.as_arg();
        match &self.director2 {
            None => {
                text += &line(
                    &self.director,
                    &format!(
                        "VIP {}/32 on {}, lbd --xdp-mode {mode}{forward}",
                        self.vip,
                        self.director.iface()
                    ),
                );
            }
            Some(director2) => {
                for d in [&self.director, director2] {
                    text += &line(
                        d,
                        &format!("VIP {} when VRRP master, lbd --xdp-mode {mode}", self.vip),
                    );
                }
            }
        }
        for rs in &self.real_servers {
            let mut extra = String::new();
            if self.topology.vip_on_real_servers() {
                extra += &format!("VIP {}/32 on lo, ", self.vip);
            } else if let Some(gw) = self.rs_gateway() {
                extra += &format!("default via {gw}, ");
            }
            if self.topology == Topology::Tun {
                extra += "lbd decap, ";
            }
            extra += &format!(
                "nginx/tcp {SERVICE_PORT},{UNSERVED_PORT}, echo tcp {ECHO_PORT} udp \
                 {UDP_ECHO_PORT} answer \"{}\"",
                rs.name
            );
            text += &line(rs, &extra);
        }
        let bridges = if self.topology.separate_rs_network() {
            "bridges br0 (client), br1 (reals)"
        } else {
            "bridge br0"
        };
        text += &format!(
            "  switch    {bridges:<34} namespace {}\n",
            self.switch.name()
        );
        text += &format!("  files     {}\n", self.dir.path().display());
        text
    }

    /// The real servers' default gateway (NAT topologies).
    fn rs_gateway(&self) -> Option<Ipv4Addr> {
        match self.topology {
            Topology::Dr | Topology::Tun => None,
            Topology::Nat => Some(self.director.legs[1].ip),
            Topology::NatOneArm => Some(self.director.ip),
        }
    }

    fn dump_diagnostics(&mut self) {
        eprintln!("---- lb-tests: testbed {} at the failure ----", self.prefix);
        eprint!("{}", self.describe());
        eprintln!("lbd log:\n{}", cmd::tail(&self.lbd_log(), 40));
        if self.lbd_running() {
            let ran = self.try_lbadm(&["-Ln", "--stats"], None);
            eprintln!("lbadm -Ln --stats:\n{}", ran.stdout);
            eprintln!(
                "director data-path counters (DP_STATS): {}",
                self.data_path_summary()
            );
        }
        let mut probes: Vec<Vec<&str>> = Vec::new();
        for iface in self.director_ifaces() {
            probes.push(vec![
                "ip",
                "-details",
                "-statistics",
                "link",
                "show",
                "dev",
                iface,
            ]);
        }
        probes.push(vec!["ip", "route", "show"]);
        probes.push(vec!["ip", "neigh", "show"]);
        for argv in &probes {
            let ran = self.director.ns.try_run(argv, None);
            eprintln!(
                "director $ {}\n{}{}",
                cmd::shell_words(argv),
                ran.stdout,
                ran.stderr
            );
        }
        if let Some(director2) = &self.director2 {
            // Which director holds the VIP, and where the client sends it.
            let argv = ["ip", "-brief", "address", "show"];
            for host in [&self.director, director2] {
                let ran = host.ns.try_run(&argv, None);
                eprintln!(
                    "{} $ {}\n{}{}",
                    host.name,
                    argv.join(" "),
                    ran.stdout,
                    ran.stderr
                );
            }
            let ran = self.client.ns.try_run(&["ip", "neigh", "show"], None);
            eprintln!("client $ ip neigh show\n{}{}", ran.stdout, ran.stderr);
        }
        for rs in &self.real_servers {
            let rs_dir = self.dir.path().join(&rs.name);
            let text = std::fs::read_to_string(rs_dir.join("error.log")).unwrap_or_default();
            if text.contains("[emerg]") || text.contains("[alert]") || text.contains("[crit]") {
                eprintln!("{} nginx error log:\n{}", rs.name, cmd::tail(&text, 10));
            }
            if self.topology == Topology::Tun {
                let log = std::fs::read_to_string(rs_dir.join("decap.log")).unwrap_or_default();
                eprintln!("{} lbd decap log:\n{}", rs.name, cmd::tail(&log, 10));
            }
        }
        eprintln!("---- end of testbed {} ----", self.prefix);
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_diagnostics();
        }
        // Fields then drop in declaration order; see the struct.
    }
}

/// The `Tcp:` counter `name` of a /proc/net/snmp text (a header line of names, then a line
/// of values).
fn tcp_snmp(snmp: &str, name: &str) -> Option<u64> {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let names = tcp.next()?.split_whitespace();
    let values = tcp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// A directory under the system temp dir, removed with its contents on drop unless
/// `LB_TESTS_KEEP_DIR` is set.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn create(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("lb-testbed-{prefix}"));
        // A leftover of a killed run with the same prefix.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("LB_TESTS_KEEP_DIR").is_some() {
            eprintln!("lb-tests: keeping {}", self.path.display());
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("lb-tests: removing {}: {e}", self.path.display());
        }
    }
}

/// Removes the namespaces and directories of test testbeds whose process is gone (killed
/// before its destructors ran). Names carry the owner's pid: `lbt-<pid>-<n>-<role>`.
pub(crate) fn sweep_stale_testbeds() {
    let owner_gone = |name: &str| -> bool {
        let Some(rest) = name.strip_prefix(&format!("{TEST_PREFIX}-")) else {
            return false;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            return false;
        };
        pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
    };
    for name in netns::list() {
        if owner_gone(&name)
            && let Err(e) = netns::delete(&name)
        {
            eprintln!("lb-tests: removing stale namespace {name}: {e}");
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix("lb-testbed-")
                && owner_gone(rest)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Deletes every namespace named `<prefix>-*` and the testbed directory for `prefix`: for
/// cleaning up after a lab that was killed. Returns the namespaces removed.
pub fn remove_leftovers(prefix: &str) -> Vec<String> {
    let mut removed = Vec::new();
    for name in netns::list() {
        if name.starts_with(&format!("{prefix}-")) {
            match netns::delete(&name) {
                Ok(()) => removed.push(name),
                Err(e) => eprintln!("removing namespace {name}: {e}"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("lb-testbed-{prefix}")));
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_counters_from_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Tcp: RtoAlgorithm RtoMin ActiveOpens PassiveOpens\n\
                    Tcp: 1 200 5010 3\n\
                    Udp: InDatagrams\nUdp: 7\n";
        assert_eq!(tcp_snmp(snmp, "ActiveOpens"), Some(5010));
        assert_eq!(tcp_snmp(snmp, "PassiveOpens"), Some(3));
        assert_eq!(tcp_snmp(snmp, "InDatagrams"), None);
    }
}
