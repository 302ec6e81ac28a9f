//! The LVS-DR topology of seed 000 in network namespaces: a client, a director and real
//! servers on one switch, built from scratch and torn down when the [`Testbed`] is dropped
//! (also when a test panics).
//!
//! ```text
//!   namespace <prefix>-switch:  bridge br0, ports: client, director, rs1, rs2, ...
//!        |             |              |            |
//!   <prefix>-client  <prefix>-director  <prefix>-rs1  <prefix>-rs2 ...   (each: eth0)
//!   .10              .11 + VIP/32       .12, VIP on lo  .13, VIP on lo    VIP = .99
//! ```
//!
//! Every host sees the switch through its own `eth0`; the bridge and its ports live in their
//! own namespace, so nothing touches the host's interfaces and the address range cannot clash
//! with the host's networks. Real servers carry the VIP on `lo` with `arp_ignore=1`,
//! `arp_announce=2` and `rp_filter=0` (seeds 000 and 004), and run nginx answering with their
//! name on [`SERVICE_PORT`] and [`UNSERVED_PORT`].
//!
//! NAT and TUN topologies (a two-legged director, tunnelling real servers) are meant to be
//! added as further builders next to [`TestbedBuilder::build`].

use std::{
    net::Ipv4Addr,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::{
    cmd::{self, Daemon, Ran},
    http::{self, Load, LoadGen, Tally},
    lbd::{self, Lbd, LbdFiles, XdpMode},
    netns::{self, Netns},
    tools, wait, xdp_pass,
};

/// The port of the service the tests configure (seed 000: `-t VIP:80`).
pub const SERVICE_PORT: u16 = 80;
/// A port every real server also answers on, but that no test configures as a service: a
/// request to `VIP:UNSERVED_PORT` that the director wrongly forwarded would get a real
/// server's reply instead of the director's refusal.
pub const UNSERVED_PORT: u16 = 8080;
/// The interface name every host uses towards the switch.
pub const HOST_IFACE: &str = "eth0";

const CLIENT_HOST: u8 = 10;
const DIRECTOR_HOST: u8 = 11;
const FIRST_RS_HOST: u8 = 12;
const VIP_HOST: u8 = 99;

/// How long a freshly built topology may take to carry traffic.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Prefix of the namespaces and directories of testbeds made by tests: `lbt-<pid>-<n>`.
const TEST_PREFIX: &str = "lbt";

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// One machine of the topology: a namespace with an `eth0` plugged into the switch.
pub struct Host {
    /// The role: `client`, `director`, `rs1`, ...
    pub name: String,
    pub ns: Netns,
    pub ip: Ipv4Addr,
    /// The name of this host's port (the other end of its `eth0`) in the switch namespace.
    pub switch_port: String,
}

impl Host {
    /// The MAC address of this host's `eth0`.
    pub fn mac(&self) -> String {
        let out = self
            .ns
            .run(&["cat", &format!("/sys/class/net/{HOST_IFACE}/address")]);
        out.trim().to_owned()
    }
}

/// Configures and builds a [`Testbed`].
#[derive(Clone, Debug)]
pub struct TestbedBuilder {
    real_servers: usize,
    xdp_mode: XdpMode,
    prefix: Option<String>,
    subnet: Option<Ipv4Addr>,
}

impl Default for TestbedBuilder {
    fn default() -> Self {
        Self {
            real_servers: 2,
            xdp_mode: XdpMode::default(),
            prefix: None,
            subnet: None,
        }
    }
}

impl TestbedBuilder {
    /// How many real servers (`rs1`..`rsN`) to create; 2 by default. They all run nginx;
    /// which ones serve the VIP is up to the test's lbadm commands.
    pub fn real_servers(mut self, n: usize) -> Self {
        assert!((1..=80).contains(&n), "1 to 80 real servers");
        self.real_servers = n;
        self
    }

    /// How lbd will attach XDP to the director's `eth0` (default [`XdpMode::Skb`]). For
    /// native modes the testbed attaches an XDP_PASS program to the director's switch port.
    pub fn xdp_mode(mut self, mode: XdpMode) -> Self {
        self.xdp_mode = mode;
        self
    }

    /// Names namespaces `<prefix>-client`, `<prefix>-director`, ... instead of a unique
    /// per-test prefix. Building fails if such namespaces already exist.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_owned());
        self
    }

    /// The /24 to number hosts in (`a.b.c.0`); by default `10.<100 + n>.0.0`.
    pub fn subnet(mut self, subnet: Ipv4Addr) -> Self {
        let o = subnet.octets();
        assert_eq!(
            o[3], 0,
            "subnet {subnet} must be a /24 base address (x.y.z.0)"
        );
        self.subnet = Some(subnet);
        self
    }

    /// Creates the topology and waits until the client reaches every real server's nginx
    /// directly (plain bridging, no lbd involved). Panics, cleaning up, if anything fails.
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
        let at = |host: u8| {
            let o = subnet.octets();
            Ipv4Addr::new(o[0], o[1], o[2], host)
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
        switch.run(&["ip", "link", "add", "br0", "type", "bridge"]);
        switch.run(&["ip", "link", "set", "dev", "br0", "up"]);

        let plug = |role: &str, ip: Ipv4Addr| -> Host {
            let ns = Netns::create(&format!("{prefix}-{role}"));
            // Created in the switch namespace with the host's end moved straight into the
            // host's namespace, so names never collide with the host's interfaces.
            switch.run(&[
                "ip",
                "link",
                "add",
                role,
                "type",
                "veth",
                "peer",
                "name",
                HOST_IFACE,
                "netns",
                ns.name(),
            ]);
            switch.run(&["ip", "link", "set", "dev", role, "master", "br0", "up"]);
            ns.run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", HOST_IFACE]);
            ns.run(&["ip", "link", "set", "dev", HOST_IFACE, "up"]);
            // A veth leaves TCP checksums to be completed "by the NIC" (CHECKSUM_PARTIAL).
            // Native XDP sees raw frames without that note, so a frame it sends back on
            // would reach the real server with a wrong checksum and be dropped. Frames from
            // a real wire are complete: make every host send them that way.
            ns.run(&["ethtool", "-K", HOST_IFACE, "tx", "off"]);
            Host {
                name: role.to_owned(),
                ns,
                ip,
                switch_port: role.to_owned(),
            }
        };

        let vip = at(VIP_HOST);
        let client = plug("client", at(CLIENT_HOST));
        // Load generators open many short connections from the client.
        client
            .ns
            .sysctl("net.ipv4.ip_local_port_range", "1024 65535");

        let director = plug("director", at(DIRECTOR_HOST));
        // Seed 000: `ifconfig enp0s3:0 VIP netmask 255.255.255.255 up` on the director.
        director
            .ns
            .run(&["ip", "addr", "add", &format!("{vip}/32"), "dev", HOST_IFACE]);

        let mut real_servers = Vec::new();
        for i in 1..=self.real_servers {
            let rs = plug(&format!("rs{i}"), at(FIRST_RS_HOST + (i - 1) as u8));
            // Seed 004's real server script: VIP on lo, answer ARP only for addresses of the
            // receiving interface, announce only the outgoing interface's address. Seed 000
            // (TUN part): no reverse-path filtering.
            rs.ns
                .run(&["ip", "addr", "add", &format!("{vip}/32"), "dev", "lo"]);
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
            real_servers.push(rs);
        }

        let peer_pass = self.xdp_mode.is_native().then(|| {
            xdp_pass::attach(switch.name(), &director.switch_port).unwrap_or_else(|e| {
                panic!(
                    "attaching XDP_PASS to the director's switch port {}: {e}",
                    director.switch_port
                )
            })
        });

        let mut nginx = Vec::new();
        for rs in &real_servers {
            let rs_dir = dir.path().join(&rs.name);
            std::fs::create_dir_all(&rs_dir).expect("create real server dir");
            let conf = http::nginx_config(&rs_dir, &rs.name, &[SERVICE_PORT, UNSERVED_PORT]);
            nginx.push(http::start_nginx(&rs.ns, &rs_dir, &conf));
        }

        let mut testbed = Testbed {
            lbd: None,
            nginx,
            client,
            director,
            real_servers,
            peer_pass,
            switch,
            dir,
            lbd_files: None,
            prefix,
            subnet,
            vip,
            xdp_mode: self.xdp_mode,
            loads: 0,
        };
        testbed.lbd_files = Some(LbdFiles::in_dir(testbed.dir.path()));
        testbed.wait_real_servers_reachable();
        testbed
    }
}

/// A DR topology in network namespaces; see the module documentation. Dropping it stops lbd
/// (SIGTERM), kills every process in its namespaces, deletes them and its temporary
/// directory.
pub struct Testbed {
    // Fields drop in this order: lbd first (clean detach), then the servers, the hosts'
    // namespaces, the switch, the files.
    lbd: Option<Lbd>,
    nginx: Vec<Daemon>,
    pub client: Host,
    pub director: Host,
    pub real_servers: Vec<Host>,
    #[expect(
        dead_code,
        reason = "held, never read: closing the BPF link detaches the XDP_PASS program"
    )]
    peer_pass: Option<OwnedFd>,
    switch: Netns,
    dir: TempDir,
    lbd_files: Option<LbdFiles>,
    prefix: String,
    subnet: Ipv4Addr,
    vip: Ipv4Addr,
    xdp_mode: XdpMode,
    loads: u32,
}

impl Testbed {
    pub fn builder() -> TestbedBuilder {
        TestbedBuilder::default()
    }

    /// The prefix of this testbed's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn subnet(&self) -> Ipv4Addr {
        self.subnet
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

    // ----- lbd and lbadm -----

    pub fn lbd_files(&self) -> &LbdFiles {
        self.lbd_files.as_ref().expect("set at build")
    }

    /// Starts lbd on the director's `eth0` with this testbed's XDP mode, socket and state
    /// file, and waits until it answers.
    #[track_caller]
    pub fn start_lbd(&mut self) {
        assert!(self.lbd.is_none(), "lbd is already running");
        let lbd = Lbd::start(
            &self.director.ns,
            &[HOST_IFACE],
            self.xdp_mode,
            self.lbd_files(),
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

    /// Whether an XDP program is attached to the director's `eth0`.
    pub fn director_xdp_attached(&self) -> bool {
        let out = self
            .director
            .ns
            .run(&["ip", "-details", "link", "show", "dev", HOST_IFACE]);
        out.contains("prog/xdp")
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

    /// How many requests real server `i` has served that were addressed to `local`
    /// (`addr:port`), from its nginx access log.
    pub fn served(&self, i: usize, local: &str) -> usize {
        let access_log = self.dir.path().join(&self.rs(i).name).join("access.log");
        http::count_served(&access_log, local)
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

    /// Panics if a real server's nginx has exited.
    #[track_caller]
    pub fn assert_servers_running(&mut self) {
        for nginx in &mut self.nginx {
            nginx.assert_running();
        }
    }

    fn wait_real_servers_reachable(&mut self) {
        for i in 1..=self.real_servers.len() {
            let name = self.rs(i).name.clone();
            let url = format!("http://{}:{SERVICE_PORT}/", self.rs(i).ip);
            let nginx = &mut self.nginx[i - 1];
            let client = &self.client;
            wait::wait_ok(
                format!("the client to reach {name}'s nginx at {url}"),
                READY_TIMEOUT,
                || {
                    nginx.assert_running();
                    let argv = http::curl_argv(&url, 1);
                    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                    let tally = http::parse_curl(1, client.ns.try_run(&argv, None));
                    if tally.names() == [name.as_str()] {
                        Ok(())
                    } else {
                        Err(tally.to_string())
                    }
                },
            );
        }
    }

    /// A description of the topology: namespaces, addresses, files.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        let line = |host: &Host, extra: &str| {
            format!(
                "  {:<9} {:<16} namespace {:<24} {extra}\n",
                host.name,
                host.ip.to_string(),
                host.ns.name()
            )
        };
        text += &line(&self.client, "");
        text += &line(
            &self.director,
            &format!(
                "VIP {}/32 on {HOST_IFACE}, lbd --xdp-mode {}",
                self.vip,
                self.xdp_mode.as_arg()
            ),
        );
        for rs in &self.real_servers {
            text += &line(
                rs,
                &format!("VIP {}/32 on lo, nginx answers \"{}\"", self.vip, rs.name),
            );
        }
        text += &format!(
            "  switch    bridge br0            namespace {}\n",
            self.switch.name()
        );
        text += &format!("  files     {}\n", self.dir.path().display());
        text
    }

    fn dump_diagnostics(&mut self) {
        eprintln!("---- lb-tests: testbed {} at the failure ----", self.prefix);
        eprint!("{}", self.describe());
        eprintln!("lbd log:\n{}", cmd::tail(&self.lbd_log(), 40));
        if self.lbd_running() {
            let ran = self.try_lbadm(&["-Ln"], None);
            eprintln!("lbadm -Ln:\n{}", ran.stdout);
        }
        for argv in [
            &["ip", "-details", "link", "show", "dev", HOST_IFACE][..],
            &["ip", "neigh", "show"][..],
        ] {
            let ran = self.director.ns.try_run(argv, None);
            eprintln!(
                "director $ {}\n{}{}",
                cmd::shell_words(argv),
                ran.stdout,
                ran.stderr
            );
        }
        for rs in &self.real_servers {
            let error_log = self.dir.path().join(&rs.name).join("error.log");
            let text = std::fs::read_to_string(error_log).unwrap_or_default();
            if text.contains("[emerg]") || text.contains("[alert]") || text.contains("[crit]") {
                eprintln!("{} nginx error log:\n{}", rs.name, cmd::tail(&text, 10));
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

/// A directory under the system temp dir, removed with its contents on drop unless
/// `LB_TESTS_KEEP_DIR` is set.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create(prefix: &str) -> TempDir {
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
fn sweep_stale_testbeds() {
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
