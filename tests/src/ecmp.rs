//! Scale-out: several active directors behind a router that spreads flows over them by ECMP,
//! each director announcing the VIP to the router over BGP through its own BIRD (`lbd
//! --bird-vips`), with BFD for quick failure detection.
//!
//! ```text
//! br0, subnet S:    client .10 (default via .1) -- router eth0 .1
//! br1, subnet S+1:  router eth1 .1 (BIRD: BGP + BFD to each director, ECMP routes,
//!                                   fib_multipath_hash_policy=1, ip_forward=1)
//!                   -- d1 .11, d2 .12, d3 .13 [, d4 .14]  (lbd DR, mh, sloppy_tcp=1; BIRD)
//!                   -- rs1 .21, rs2 .22, rs3 .23  (VIP on lo, default via the router)
//! VIP: S+2 .99/32, announced by each director's BIRD, never on an interface of a director
//! ```
//!
//! The router learns one /32 route for the VIP from each director and installs them as one
//! multipath route (BIRD's kernel protocol with `merge paths`); the kernel hashes each flow's
//! addresses and ports over the next hops. Each director forwards by DR to the real servers
//! on br1, which answer the client through the router. With Maglev hashing (`mh`) every
//! director sends a flow to the same real server, and with `sloppy_tcp` a director picks up a
//! flow mid-stream when ECMP moves it (a director gone, drained or added): no connection
//! synchronisation is needed. With another scheduler ([`EcmpOptions::scheduler`]), the
//! directors synchronise their connections instead ([`EcmpOptions::sync`]).
//!
//! Dropping an [`EcmpLab`] stops every lbd and BIRD, the servers, and removes the namespaces.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::Duration,
};

use crate::{
    SERVICE_PORT,
    cmd::{self, Daemon, Ran},
    http::{self, Load, LoadGen, Tally},
    lbd::{self, Lbd, LbdFiles, XdpMode},
    netns::{self, Netns},
    testbed::{self, Host, TempDir, at},
    tools, wait,
};

const CLIENT_HOST: u8 = 10;
const GATEWAY_HOST: u8 = 1;
const FIRST_DIRECTOR_HOST: u8 = 11;
const FIRST_RS_HOST: u8 = 21;
const VIP_HOST: u8 = 99;
/// The router's and the directors' autonomous systems (private ASNs).
pub const ROUTER_AS: u32 = 65000;
pub const DIRECTOR_AS: u32 = 65001;
/// Client ports the kernel gives to no connection of its choosing (wrk's, curl's): a test
/// binds its own connections to them, each to a port no other connection used before.
pub const RESERVED_CLIENT_PORTS: std::ops::RangeInclusive<u16> = 40000..=44999;
/// The sync group's id, when the lab's directors synchronise their connections.
const SYNCID: &str = "5";
/// BFD's transmit interval and multiplier: a silent peer is down after 3 x 100 ms.
const BFD_INTERVAL_MS: u32 = 100;
const BFD_MULTIPLIER: u32 = 3;

/// How long a freshly built topology may take to carry traffic, BGP to come up, health
/// checks to list every real server.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to build an [`EcmpLab`].
#[derive(Clone, Debug)]
pub struct EcmpOptions {
    /// Namespace prefix; by default a unique per-test one (`lbt-<pid>-<n>`).
    pub prefix: Option<String>,
    /// The first of the three /24s (`a.b.c.0`); by default `10.<100 + n>.0.0`.
    pub subnet: Option<Ipv4Addr>,
    /// Directors to create (`d1`..`dN`); [`EcmpLab::start`] starts the first `running`.
    pub directors: usize,
    pub running: usize,
    pub real_servers: usize,
    /// The service's scheduler (`lb_algo`): `mh` (with `mh-port`) by default.
    pub scheduler: String,
    /// Each director runs a sync master and a sync backup on `eth0` (one group for all), so
    /// that a flow ECMP moves finds its connection on the director it lands on.
    pub sync: bool,
}

impl Default for EcmpOptions {
    fn default() -> Self {
        EcmpOptions {
            prefix: None,
            subnet: None,
            directors: 3,
            running: 3,
            real_servers: 3,
            scheduler: "mh".to_owned(),
            sync: false,
        }
    }
}

/// One director: its host, files, and its lbd and BIRD while they run.
pub struct EcmpDirector {
    // lbd first (a clean stop withdraws its VIPs), then BIRD.
    lbd: Option<Lbd>,
    bird: Option<Daemon>,
    pub host: Host,
    pub files: LbdFiles,
    pub dir: PathBuf,
}

impl EcmpDirector {
    pub fn name(&self) -> &str {
        &self.host.name
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.host.ip
    }

    pub fn bird_socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }

    pub fn vips_file(&self) -> PathBuf {
        self.dir.join("lb-vips.conf")
    }

    pub fn running(&mut self) -> bool {
        self.lbd.as_mut().is_some_and(|l| l.daemon.is_running())
    }
}

/// The scale-out topology; see the module documentation.
pub struct EcmpLab {
    // Drop order: directors (lbd, BIRD), the router's BIRD, the servers, the hosts'
    // namespaces, the switch, the files.
    pub directors: Vec<EcmpDirector>,
    router_bird: Option<Daemon>,
    servers: Vec<Daemon>,
    pub client: Host,
    pub router: Host,
    pub real_servers: Vec<Host>,
    switch: Netns,
    dir: TempDir,
    prefix: String,
    subnet: Ipv4Addr,
    vip: Ipv4Addr,
    scheduler: String,
    sync: bool,
}

impl EcmpLab {
    /// Builds the topology, starts the real servers, the router's BIRD and the first
    /// `options.running` directors, and waits until the router has a next hop for the VIP
    /// through each of them.
    #[track_caller]
    pub fn start(options: &EcmpOptions) -> EcmpLab {
        tools::require_environment();
        assert!(
            cmd::on_path("bird") && cmd::on_path("birdc"),
            "BIRD is not installed: run `cargo xtask setup` (Debian package bird2)"
        );
        assert!((1..=9).contains(&options.directors) && options.running <= options.directors);
        assert!((1..=9).contains(&options.real_servers));
        testbed::sweep_stale_testbeds();
        let id = testbed::NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let prefix = options
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{}-{}-{id}", testbed::TEST_PREFIX, std::process::id()));
        let subnet = options
            .subnet
            .unwrap_or_else(|| Ipv4Addr::new(10, 100 + (id % 100) as u8, 0, 0));
        let o = subnet.octets();
        assert!(
            o[3] == 0 && o[2] < 254,
            "subnet {subnet}: a /24 base with two /24s after it"
        );
        let inside = Ipv4Addr::new(o[0], o[1], o[2] + 1, 0);
        let vip = Ipv4Addr::new(o[0], o[1], o[2] + 2, VIP_HOST);
        let taken: Vec<String> = netns::list()
            .into_iter()
            .filter(|name| name.starts_with(&format!("{prefix}-")))
            .collect();
        assert!(
            taken.is_empty(),
            "network namespaces {taken:?} already exist (`lab clean --prefix {prefix}` removes \
             them)"
        );

        let dir = TempDir::create(&prefix);
        let switch = Netns::create(&format!("{prefix}-switch"));
        for bridge in ["br0", "br1"] {
            switch.run(&["ip", "link", "add", bridge, "type", "bridge"]);
            switch.run(&["ip", "link", "set", "dev", bridge, "up"]);
        }
        let mut client = Host::new("client", &prefix);
        testbed::plug(
            &switch,
            &mut client,
            "br0",
            "client",
            "eth0",
            at(subnet, CLIENT_HOST),
        );
        client.route("default", at(subnet, GATEWAY_HOST));
        client
            .ns
            .sysctl("net.ipv4.ip_local_port_range", "1024 65535");
        client.ns.sysctl(
            "net.ipv4.ip_local_reserved_ports",
            &format!(
                "{}-{}",
                RESERVED_CLIENT_PORTS.start(),
                RESERVED_CLIENT_PORTS.end()
            ),
        );
        // A small receive window: a download that is read slowly keeps sending data (and the
        // client its ACKs through the directors) for as long as it lasts, instead of landing
        // in the client's buffer at once.
        client.ns.sysctl("net.ipv4.tcp_rmem", "4096 32768 32768");

        let mut router = Host::new("router", &prefix);
        testbed::plug(
            &switch,
            &mut router,
            "br0",
            "router",
            "eth0",
            at(subnet, GATEWAY_HOST),
        );
        testbed::plug(
            &switch,
            &mut router,
            "br1",
            "router-in",
            "eth1",
            at(inside, GATEWAY_HOST),
        );
        router.ns.sysctl("net.ipv4.ip_forward", "1");
        // ECMP over the flow's addresses and ports (layer 4), not only its addresses.
        router.ns.sysctl("net.ipv4.fib_multipath_hash_policy", "1");
        for conf in ["all", "default", "eth0", "eth1"] {
            router
                .ns
                .sysctl(&format!("net.ipv4.conf.{conf}.rp_filter"), "0");
        }

        let mut directors = Vec::new();
        for i in 1..=options.directors {
            let name = format!("d{i}");
            let mut host = Host::new(&name, &prefix);
            let ip = at(inside, FIRST_DIRECTOR_HOST + (i - 1) as u8);
            testbed::plug(&switch, &mut host, "br1", &name, "eth0", ip);
            host.route("default", at(inside, GATEWAY_HOST));
            let ddir = dir.path().join(&name);
            std::fs::create_dir_all(&ddir).expect("director dir");
            directors.push(EcmpDirector {
                lbd: None,
                bird: None,
                host,
                files: LbdFiles::in_dir(&ddir),
                dir: ddir,
            });
        }

        let mut real_servers = Vec::new();
        for i in 1..=options.real_servers {
            let name = format!("rs{i}");
            let mut rs = Host::new(&name, &prefix);
            testbed::plug(
                &switch,
                &mut rs,
                "br1",
                &name,
                "eth0",
                at(inside, FIRST_RS_HOST + (i - 1) as u8),
            );
            rs.ns
                .run(&["ip", "addr", "add", &format!("{vip}/32"), "dev", "lo"]);
            for conf in ["all", "default", "lo", "eth0"] {
                rs.ns
                    .sysctl(&format!("net.ipv4.conf.{conf}.arp_ignore"), "1");
                rs.ns
                    .sysctl(&format!("net.ipv4.conf.{conf}.arp_announce"), "2");
            }
            for conf in ["all", "lo", "eth0"] {
                rs.ns
                    .sysctl(&format!("net.ipv4.conf.{conf}.rp_filter"), "0");
            }
            rs.route("default", at(inside, GATEWAY_HOST));
            real_servers.push(rs);
        }
        let mut servers = Vec::new();
        for rs in &real_servers {
            let rs_dir = dir.path().join(&rs.name);
            std::fs::create_dir_all(rs_dir.join("files")).expect("create real server dir");
            let conf = http::nginx_config(&rs_dir, &rs.name, &[SERVICE_PORT]);
            servers.push(http::start_nginx(&rs.ns, &rs_dir, &conf));
        }

        let mut lab = EcmpLab {
            directors,
            router_bird: None,
            servers,
            client,
            router,
            real_servers,
            switch,
            dir,
            prefix,
            subnet,
            vip,
            scheduler: options.scheduler.clone(),
            sync: options.sync,
        };
        lab.wait_servers_ready();
        lab.start_router_bird();
        for i in 0..options.running {
            lab.start_director(i);
        }
        lab.wait_next_hops(options.running);
        lab
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn vip(&self) -> Ipv4Addr {
        self.vip
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The directors' and real servers' LAN (`S+1`).
    pub fn inside(&self) -> Ipv4Addr {
        let o = self.subnet.octets();
        Ipv4Addr::new(o[0], o[1], o[2] + 1, 0)
    }

    pub fn url(&self) -> String {
        format!("http://{}:{SERVICE_PORT}/", self.vip)
    }

    pub fn router_bird_socket(&self) -> PathBuf {
        self.dir.path().join("router").join("bird.ctl")
    }

    /// Writes `contents` to every real server's nginx as `/files/<name>`.
    pub fn publish_file(&self, name: &str, contents: &[u8]) {
        for rs in &self.real_servers {
            let path = self.dir.path().join(&rs.name).join("files").join(name);
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
    }

    fn wait_servers_ready(&mut self) {
        for i in 0..self.real_servers.len() {
            let name = self.real_servers[i].name.clone();
            let url = format!("http://{}:{SERVICE_PORT}/", self.real_servers[i].ip);
            wait::wait_ok(
                format!("the client to reach {name}'s nginx through the router"),
                READY_TIMEOUT,
                || {
                    for s in &mut self.servers {
                        s.assert_running();
                    }
                    let tally = self.curl_url(&url, 1);
                    if tally.names() == [name.as_str()] {
                        Ok(())
                    } else {
                        Err(tally.to_string())
                    }
                },
            );
        }
    }

    /// The router's bird.conf: BGP with BFD to every director (including those not started:
    /// BIRD keeps trying), the VIPs they announce imported, and one multipath kernel route
    /// per VIP.
    pub fn router_bird_conf(&self) -> String {
        let router = self.router.legs[1].ip;
        let vip_net = {
            let o = self.vip.octets();
            Ipv4Addr::new(o[0], o[1], o[2], 0)
        };
        let mut text = format!(
            "# BIRD on the router: learns the VIPs from the directors over BGP and installs one
# multipath (ECMP) route per VIP, a next hop per director that announces it.
log stderr all;
router id {router};

protocol device {{ }}

# BFD: a director that stops answering is taken out within {BFD_MULTIPLIER} x {BFD_INTERVAL_MS} ms.
protocol bfd {{
    interface \"eth1\" {{
        min rx interval {BFD_INTERVAL_MS} ms;
        min tx interval {BFD_INTERVAL_MS} ms;
        multiplier {BFD_MULTIPLIER};
    }};
}}

# Equal BGP routes from several directors become one kernel route with a next hop each.
protocol kernel {{
    merge paths on;
    ipv4 {{
        import none;
        export where source = RTS_BGP;
    }};
}}

# Only host routes inside the VIP range, from the directors.
filter director_vips {{
    if net ~ [ {vip_net}/24{{32,32}} ] then accept;
    reject;
}}

template bgp director {{
    local {router} as {ROUTER_AS};
    bfd on;
    hold time 3;
    keepalive time 1;
    connect retry time 1;
    error wait time 1, 5;
    ipv4 {{
        import filter director_vips;
        export none;
    }};
}}
"
        );
        for d in &self.directors {
            text += &format!(
                "protocol bgp {} from director {{ neighbor {} as {DIRECTOR_AS}; }}\n",
                d.name(),
                d.ip()
            );
        }
        text
    }

    /// Director `i`'s bird.conf: the VIPs lbd writes to its include file, announced to the
    /// router over BGP with BFD.
    pub fn director_bird_conf(&self, i: usize) -> String {
        let d = &self.directors[i];
        let router = self.router.legs[1].ip;
        format!(
            "# BIRD on director {name}: announces the VIPs lbd serves (lbd --bird-vips) to the
# router over BGP, with BFD.
log stderr all;
router id {ip};

protocol device {{ }}

protocol bfd {{
    interface \"eth0\" {{
        min rx interval {BFD_INTERVAL_MS} ms;
        min tx interval {BFD_INTERVAL_MS} ms;
        multiplier {BFD_MULTIPLIER};
    }};
}}

# lbd rewrites this file (a `route VIP/32 blackhole;` per VIP it serves) and runs
# `birdc configure`. No kernel protocol exports it: these routes only go to BGP.
protocol static lb_vips {{
    ipv4;
    include \"{vips}\";
}}

protocol bgp upstream {{
    local {ip} as {DIRECTOR_AS};
    neighbor {router} as {ROUTER_AS};
    bfd on;
    hold time 3;
    keepalive time 1;
    connect retry time 1;
    error wait time 1, 5;
    ipv4 {{
        import none;
        export where proto = \"lb_vips\";
        next hop self;
    }};
}}
",
            name = d.name(),
            ip = d.ip(),
            vips = d.vips_file().display(),
        )
    }

    /// The keepalived.conf every director's lbd reads: Maglev hashing with the port, so that
    /// all directors choose the same real server for a flow, and TCP health checks.
    /// `inhibit_on_failure` keeps a failed real server in the table with weight 0 instead of
    /// removing it: a director's real servers then stay in the order every director has
    /// them, and Maglev's table, which depends on that order (as IPVS's does), stays the same
    /// on all once the real server is back. Removed and added again, it might be the newest
    /// on that director only, whose table would then send some flows elsewhere.
    pub fn keepalived_conf(&self) -> String {
        let mut text = format!(
            "! The same on every director: lbd --config reads the virtual_server.
virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 2
    lb_algo {scheduler}
{mh_port}    lb_kind DR
    protocol TCP
",
            vip = self.vip,
            scheduler = self.scheduler,
            mh_port = if self.scheduler == "mh" {
                "    mh-port\n"
            } else {
                ""
            },
        );
        for rs in &self.real_servers {
            text += &format!(
                "    real_server {} {SERVICE_PORT} {{
        weight 1
        inhibit_on_failure
        TCP_CHECK {{
            connect_timeout 2
        }}
    }}
",
                rs.ip
            );
        }
        text += "}\n";
        text
    }

    fn start_router_bird(&mut self) {
        let rdir = self.dir.path().join("router");
        std::fs::create_dir_all(&rdir).expect("router dir");
        let conf = rdir.join("bird.conf");
        std::fs::write(&conf, self.router_bird_conf()).expect("write router bird.conf");
        self.router_bird = Some(start_bird(
            &self.router.ns,
            &conf,
            &self.router_bird_socket(),
            &rdir.join("bird.log"),
        ));
    }

    /// Starts lbd (DR, the lab's scheduler, `sloppy_tcp=1`, `--bird-vips`) on director `i`
    /// (from 0), waits until its health checks list every real server, starts its sync
    /// daemons if the lab has them (unless lbd's state file brought them back), then starts
    /// its BIRD.
    #[track_caller]
    pub fn start_director(&mut self, i: usize) {
        assert!(
            self.directors[i].lbd.is_none(),
            "{} already runs",
            self.directors[i].name()
        );
        let conf = self.directors[i].dir.join("keepalived.conf");
        std::fs::write(&conf, self.keepalived_conf()).expect("write keepalived.conf");
        let bird_conf = self.directors[i].dir.join("bird.conf");
        std::fs::write(&bird_conf, self.director_bird_conf(i)).expect("write bird.conf");
        let d = &mut self.directors[i];
        // BIRD refuses to start on a missing include; lbd rewrites it at once anyway.
        if !d.vips_file().exists() {
            std::fs::write(d.vips_file(), "").expect("write the VIPs file");
        }
        let (conf, vips, bird_socket) = (
            conf.display().to_string(),
            d.vips_file().display().to_string(),
            d.bird_socket().display().to_string(),
        );
        d.lbd = Some(Lbd::start_with(
            &d.host.ns,
            &["eth0"],
            XdpMode::Skb,
            &d.files,
            &[
                "--config",
                &conf,
                "--sysctl",
                "net.ipv4.vs.sloppy_tcp=1",
                "--bird-vips",
                &vips,
                "--birdc-socket",
                &bird_socket,
            ],
        ));
        let reals = self.real_servers.len();
        wait::wait_ok(
            format!("{}'s health checks to list every real server", d.host.name),
            READY_TIMEOUT,
            || {
                let ran = lbd::lbadm(&d.host.ns, &d.files.socket, &["-Ln"], None);
                let listed = ran.stdout.matches("-> ").count().saturating_sub(1);
                if listed == reals {
                    Ok(())
                } else {
                    Err(ran.stdout)
                }
            },
        );
        if self.sync {
            let running = lbd::lbadm(&d.host.ns, &d.files.socket, &["-L", "--daemon"], None);
            for role in ["master", "backup"] {
                if !running.stdout.contains(&format!("{role} sync daemon")) {
                    let ran = lbd::lbadm(
                        &d.host.ns,
                        &d.files.socket,
                        &[
                            "--start-daemon",
                            role,
                            "--mcast-interface",
                            "eth0",
                            "--syncid",
                            SYNCID,
                        ],
                        None,
                    );
                    assert!(
                        ran.success(),
                        "{}: starting the sync {role}\n{ran}",
                        d.host.name
                    );
                }
            }
        }
        if d.bird.is_none() {
            d.bird = Some(start_bird(
                &d.host.ns,
                &bird_conf,
                &d.bird_socket(),
                &d.dir.join("bird.log"),
            ));
        }
    }

    /// Stops director `i`'s lbd (SIGTERM), leaving its BIRD running; [`EcmpLab::start_director`]
    /// starts it again.
    pub fn stop_lbd(&mut self, i: usize) {
        if let Some(lbd) = self.directors[i].lbd.take() {
            lbd.stop();
        }
    }

    /// Stops director `i`'s lbd cleanly (SIGTERM: it withdraws its VIPs first) and its BIRD.
    pub fn stop_director(&mut self, i: usize) {
        let d = &mut self.directors[i];
        if let Some(lbd) = d.lbd.take() {
            lbd.stop();
        }
        if let Some(mut bird) = d.bird.take() {
            bird.stop(libc::SIGTERM, Duration::from_secs(10));
        }
    }

    /// Director `i` dies: its link goes down (as a crashed machine or a pulled cable: it says
    /// nothing to anyone), then its lbd and BIRD are killed (SIGKILL).
    pub fn kill_director(&mut self, i: usize) {
        let port = self.directors[i].host.switch_port.clone();
        self.switch
            .run(&["ip", "link", "set", "dev", &port, "down"]);
        let d = &mut self.directors[i];
        if let Some(mut bird) = d.bird.take() {
            bird.stop(libc::SIGKILL, Duration::from_secs(10));
        }
        if let Some(mut lbd) = d.lbd.take() {
            lbd.daemon.stop(libc::SIGKILL, Duration::from_secs(10));
        }
    }

    /// Drops (`true`) or lets through again director `i`'s own packets to the real servers'
    /// service port, i.e. its health checks (nftables' output hook in its namespace; what
    /// the XDP program forwards never passes there).
    pub fn block_health_checks(&self, i: usize, block: bool) {
        let ns = &self.directors[i].host.ns;
        if block {
            let rules = format!(
                "table ip lb_test_block {{\n\
                 chain output {{\n\
                 type filter hook output priority 0;\n\
                 tcp dport {SERVICE_PORT} drop\n\
                 }}\n\
                 }}\n"
            );
            let ran = ns.try_run(&["nft", "-f", "-"], Some(&rules));
            assert!(ran.success(), "nft failed\n{ran}");
        } else {
            ns.run(&["nft", "delete", "table", "ip", "lb_test_block"]);
        }
    }

    /// `lbd drain|undrain|status --socket ...` on director `i`.
    pub fn lbd_command(&self, i: usize, sub: &str) -> Ran {
        let d = &self.directors[i];
        let lbd = tools::binary("lbd").display().to_string();
        let socket = d.files.socket.display().to_string();
        d.host.ns.try_run(&[&lbd, sub, "--socket", &socket], None)
    }

    /// `lbadm ARGS` on director `i`.
    pub fn lbadm(&self, i: usize, args: &[&str]) -> Ran {
        let d = &self.directors[i];
        lbd::lbadm(&d.host.ns, &d.files.socket, args, None)
    }

    /// `birdc -s SOCKET ARGS` on the router.
    pub fn router_birdc(&self, args: &[&str]) -> Ran {
        let socket = self.router_bird_socket().display().to_string();
        let mut argv = vec!["birdc", "-s", socket.as_str()];
        argv.extend_from_slice(args);
        self.router.ns.try_run(&argv, None)
    }

    /// The router's next hops for the VIP, from its kernel's routing table.
    pub fn next_hops(&self) -> Vec<Ipv4Addr> {
        let ran = self
            .router
            .ns
            .try_run(&["ip", "route", "show", &format!("{}/32", self.vip)], None);
        parse_next_hops(&ran.stdout)
    }

    /// Waits until the router routes the VIP over `n` directors.
    #[track_caller]
    pub fn wait_next_hops(&self, n: usize) {
        wait::wait_ok(
            format!("the router to route the VIP over {n} directors"),
            READY_TIMEOUT,
            || {
                let hops = self.next_hops();
                if hops.len() == n {
                    Ok(())
                } else {
                    Err(format!(
                        "next hops {hops:?}\n{}",
                        self.router_birdc(&["show", "protocols"])
                    ))
                }
            },
        );
    }

    /// `curl` from the client: `n` requests for `url`, a new connection each.
    pub fn curl_url(&self, url: &str, n: usize) -> Tally {
        let argv = http::curl_argv(url, n);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        http::parse_curl(n, self.client.ns.try_run(&argv, None))
    }

    /// Starts a load generator on the client against `url`.
    pub fn start_load(&self, kind: LoadGen, url: &str, tag: &str) -> Load {
        let out = self.dir.path().join(format!("load-{tag}.out"));
        let err = self.dir.path().join(format!("load-{tag}.err"));
        let argv = kind.argv(url);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let daemon = Daemon::spawn(
            &format!("{kind:?} on the client"),
            self.client.ns.argv(&argv),
            &out,
            &err,
        );
        Load { kind, daemon }
    }

    /// `VIP:port` as a socket address.
    pub fn vip_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.vip, SERVICE_PORT)
    }

    /// A description of the topology, for the lab.
    pub fn describe(&self) -> String {
        let line = |host: &Host, extra: &str| {
            let legs: Vec<String> = host
                .legs
                .iter()
                .map(|leg| format!("{} {}", leg.iface, leg.ip))
                .collect();
            format!(
                "  {:<7} {:<34} namespace {:<22} {extra}\n",
                host.name,
                legs.join(", "),
                host.ns.name()
            )
        };
        let mut text = line(&self.client, "default via the router");
        text += &line(
            &self.router,
            &format!("BIRD AS {ROUTER_AS}, ECMP (fib_multipath_hash_policy=1)"),
        );
        for d in &self.directors {
            let state = if d.lbd.is_some() {
                "running"
            } else {
                "not started"
            };
            let sync = if self.sync {
                ", sync master + backup"
            } else {
                ""
            };
            text += &line(
                &d.host,
                &format!(
                    "lbd (DR, {}, sloppy_tcp=1{sync}) + BIRD AS {DIRECTOR_AS}: {state}",
                    self.scheduler
                ),
            );
        }
        for rs in &self.real_servers {
            text += &line(rs, &format!("nginx, VIP {}/32 on lo", self.vip));
        }
        text += &format!(
            "  VIP     {}/32, announced by the directors over BGP\n",
            self.vip
        );
        text += &format!("  files   {}\n", self.dir.path().display());
        text
    }

    /// Logs and tables of everything, for a failure.
    pub fn report(&self) -> String {
        let mut text = format!("---- ECMP lab {} ----\n", self.prefix);
        text += &format!(
            "router $ ip route\n{}",
            self.router.ns.try_run(&["ip", "route"], None).stdout
        );
        text += &format!(
            "router $ birdc show protocols\n{}",
            self.router_birdc(&["show", "protocols"])
        );
        text += &format!(
            "router BIRD log:\n{}\n",
            cmd::tail(
                &std::fs::read_to_string(self.dir.path().join("router").join("bird.log"))
                    .unwrap_or_default(),
                20
            )
        );
        for (i, d) in self.directors.iter().enumerate() {
            if d.lbd.is_some() {
                text += &format!(
                    "{} $ lbd status\n{}",
                    d.name(),
                    self.lbd_command(i, "status")
                );
                text += &format!(
                    "{} $ lbadm -Ln --stats\n{}",
                    d.name(),
                    self.lbadm(i, &["-Ln", "--stats"]).stdout
                );
            }
            text += &format!(
                "{} lbd log:\n{}\n{} BIRD log:\n{}\n",
                d.name(),
                cmd::tail(
                    &std::fs::read_to_string(&d.files.log).unwrap_or_default(),
                    25
                ),
                d.name(),
                cmd::tail(
                    &std::fs::read_to_string(d.dir.join("bird.log")).unwrap_or_default(),
                    15
                )
            );
        }
        text
    }
}

impl Drop for EcmpLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprint!("{}", self.report());
        }
    }
}

/// Starts `bird -f` in `ns` with `conf` and control socket `socket`; waits until `birdc`
/// answers.
#[track_caller]
fn start_bird(ns: &Netns, conf: &Path, socket: &Path, log: &Path) -> Daemon {
    let pid = socket.with_extension("pid");
    let argv = ns.argv(&[
        "bird",
        "-f",
        "-c",
        &conf.display().to_string(),
        "-s",
        &socket.display().to_string(),
        "-P",
        &pid.display().to_string(),
    ]);
    let mut bird = Daemon::spawn(&format!("bird in {}", ns.name()), argv, log, log);
    wait::wait_ok(
        format!("BIRD in {} to answer", ns.name()),
        READY_TIMEOUT,
        || {
            bird.assert_running();
            let ran = ns.try_run(
                &[
                    "birdc",
                    "-s",
                    &socket.display().to_string(),
                    "show",
                    "status",
                ],
                None,
            );
            if ran.success() && ran.stdout.contains("Daemon is up") {
                Ok(())
            } else {
                Err(ran.to_string())
            }
        },
    );
    bird
}

/// The next hops of `ip route show PREFIX`: `PREFIX via A dev ...` or a multipath route's
/// `nexthop via A dev ...` lines.
pub fn parse_next_hops(text: &str) -> Vec<Ipv4Addr> {
    let mut hops = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if pair[0] == "via"
                && let Ok(ip) = pair[1].parse()
            {
                hops.push(ip);
            }
        }
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_of_single_and_multipath_routes() {
        assert_eq!(
            parse_next_hops("10.9.2.99 via 10.9.1.22 dev eth1 proto bird metric 32 \n"),
            [Ipv4Addr::new(10, 9, 1, 22)]
        );
        let multipath = "10.9.2.99 proto bird metric 32 \n\tnexthop via 10.9.1.21 dev eth1 \
                         weight 1 \n\tnexthop via 10.9.1.22 dev eth1 weight 1 \n";
        assert_eq!(
            parse_next_hops(multipath),
            [Ipv4Addr::new(10, 9, 1, 21), Ipv4Addr::new(10, 9, 1, 22)]
        );
        assert!(parse_next_hops("").is_empty());
    }
}
