//! Announcing VIPs through BIRD (`lbd --bird-vips FILE`): lbd writes the VIPs this director
//! serves as a BIRD include file (a `route VIP/32 blackhole;` line each, for a `protocol
//! static` of the director's bird.conf to read) and runs `birdc configure`; BIRD, the BGP
//! engine, announces them to the router. lb speaks no BGP itself.
//!
//! What to announce is decided by [`decide`], a pure function of the services, their live
//! weights, keepalived's quorum and whether the director is drained; [`Announcer`] does the
//! I/O (the file, written atomically, `birdc`, the drain file) and logs each change with its
//! reason.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    io::{self, Write as _},
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{config::Config, model::ServiceAddr};

/// BIRD's control socket as Debian's bird2 package puts it.
pub const DEFAULT_BIRDC_SOCKET: &str = "/run/bird/bird.ctl";

/// What [`decide`] needs to know about one virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub addr: ServiceAddr,
    /// The sum of its real servers' weights: what can take new connections. A failed real
    /// server has left the table (or stays with weight 0, `inhibit_on_failure`).
    pub live_weight: u64,
    /// keepalived's quorum state (`None`: not from keepalived.conf, no quorum).
    pub quorum_up: Option<bool>,
}

impl ServiceView {
    /// The services of `config`, with the quorum states keepalived's part of lbd keeps.
    pub fn from_config(config: &Config, quorum: &BTreeMap<ServiceAddr, bool>) -> Vec<ServiceView> {
        config
            .services
            .iter()
            .map(|s| ServiceView {
                addr: s.spec.addr,
                live_weight: s.reals.iter().map(|r| u64::from(r.spec.weight)).sum(),
                quorum_up: quorum.get(&s.spec.addr).copied(),
            })
            .collect()
    }

    fn healthy(&self) -> bool {
        self.live_weight > 0 && self.quorum_up != Some(false)
    }

    fn describe(&self) -> String {
        match self.quorum_up {
            Some(false) => format!(
                "{} below its quorum (live weight {})",
                self.addr, self.live_weight
            ),
            _ => format!("{} live weight {}", self.addr, self.live_weight),
        }
    }
}

/// Whether a VIP is announced, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipVerdict {
    pub vip: IpAddr,
    pub announce: bool,
    pub reason: String,
}

/// Which VIPs this director announces: a VIP is announced while one of its services has a
/// real server that takes new connections (live weight above 0) and, if it comes from
/// keepalived.conf, its quorum; none is announced while the director is drained. One verdict
/// per VIP, in address order.
pub fn decide(services: &[ServiceView], drained: bool) -> Vec<VipVerdict> {
    let mut by_vip: BTreeMap<IpAddr, Vec<&ServiceView>> = BTreeMap::new();
    for s in services {
        by_vip.entry(s.addr.addr).or_default().push(s);
    }
    by_vip
        .into_iter()
        .map(|(vip, services)| {
            let healthy: Vec<&&ServiceView> = services.iter().filter(|s| s.healthy()).collect();
            let (announce, reason) = if drained {
                (false, "the director is drained".to_owned())
            } else if healthy.is_empty() {
                let each: Vec<String> = services.iter().map(|s| s.describe()).collect();
                (
                    false,
                    format!("no service has a healthy real server ({})", each.join("; ")),
                )
            } else {
                let each: Vec<String> = healthy.iter().map(|s| s.describe()).collect();
                (true, format!("healthy: {}", each.join("; ")))
            };
            VipVerdict {
                vip,
                announce,
                reason,
            }
        })
        .collect()
}

/// The include file for the verdicts of one family (`ipv6`: the IPv6 VIPs, else the IPv4
/// ones): one static route per announced VIP. BIRD's `protocol static` has one channel, so
/// each family has its file, included by a static protocol of that family.
pub fn render(verdicts: &[VipVerdict], ipv6: bool) -> String {
    let mut text = String::from(
        "# Written by lbd (--bird-vips): the VIPs this director announces. Do not edit;\n\
         # include it in a `protocol static` of bird.conf (see lb's README).\n",
    );
    for v in verdicts
        .iter()
        .filter(|v| v.announce && v.vip.is_ipv6() == ipv6)
    {
        let len = if ipv6 { 128 } else { 32 };
        text += &format!("route {}/{len} blackhole;\n", v.vip);
    }
    text
}

/// The IPv6 include file beside `--bird-vips FILE`: `vips.conf` → `vips6.conf`.
pub fn ipv6_file(path: &Path) -> std::path::PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}6.{}", ext.to_string_lossy()),
        None => format!("{stem}6"),
    };
    path.with_file_name(name)
}

/// A change of one VIP's announcement, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub vip: IpAddr,
    pub announce: bool,
    pub reason: String,
}

/// What changed from the VIPs `before` announced to `verdicts`. With `before` unknown (lbd
/// just started), every verdict is a change.
pub fn changes(before: Option<&BTreeSet<IpAddr>>, verdicts: &[VipVerdict]) -> Vec<Change> {
    let mut out = Vec::new();
    let now: BTreeSet<IpAddr> = verdicts
        .iter()
        .filter(|v| v.announce)
        .map(|v| v.vip)
        .collect();
    for v in verdicts {
        let was = before.map(|b| b.contains(&v.vip));
        if was != Some(v.announce) {
            out.push(Change {
                vip: v.vip,
                announce: v.announce,
                reason: v.reason.clone(),
            });
        }
    }
    if let Some(before) = before {
        for vip in before.difference(&now) {
            if !verdicts.iter().any(|v| v.vip == *vip) {
                out.push(Change {
                    vip: *vip,
                    announce: false,
                    reason: "no service has this VIP any more".to_owned(),
                });
            }
        }
    }
    out
}

/// The director's drain state, kept in a file so that it survives a restart of lbd.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainState {
    pub drained: bool,
    /// When it was drained (seconds since the epoch).
    #[serde(default)]
    pub since: Option<u64>,
}

impl DrainState {
    /// Reads `path`; a missing file is "not drained".
    pub fn load(path: &Path) -> io::Result<DrainState> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a drain state file: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DrainState::default()),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("drain state serialises") + "\n";
        write_atomically(path, text.as_bytes())
    }
}

/// Writes `contents` to a temporary file beside `path`, syncs it and renames it over `path`,
/// so that a reader sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut out = std::fs::File::create(&tmp)?;
    out.write_all(contents)?;
    out.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What `lbd status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceStatus {
    pub drain: DrainState,
    pub file: PathBuf,
    pub birdc_socket: PathBuf,
    pub vips: Vec<VipVerdict>,
    /// The last `birdc configure` that failed, if the last one did.
    pub bird_error: Option<String>,
}

impl fmt::Display for AnnounceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.drain.drained, self.drain.since) {
            (true, Some(since)) => writeln!(f, "director: DRAINED (since {since}, unix time)")?,
            (true, None) => writeln!(f, "director: DRAINED")?,
            (false, _) => writeln!(f, "director: in service")?,
        }
        writeln!(
            f,
            "bird: {} (birdc -s {} configure): {}",
            self.file.display(),
            self.birdc_socket.display(),
            self.bird_error.as_deref().unwrap_or("ok")
        )?;
        if self.vips.is_empty() {
            writeln!(f, "no VIP (no service configured)")?;
        }
        for v in &self.vips {
            let what = if v.announce { "announced" } else { "withdrawn" };
            writeln!(f, "{:<15} {what:<9}  {}", v.vip, v.reason)?;
        }
        Ok(())
    }
}

/// How long one `birdc configure` may take.
const BIRDC_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps BIRD's include file in step with [`decide`], and the drain state in its file.
pub struct Announcer {
    file: PathBuf,
    birdc: PathBuf,
    socket: PathBuf,
    drain_path: PathBuf,
    drain: DrainState,
    /// What the file announces as far as we know (`None`: not written by this lbd yet).
    announced: Option<BTreeSet<IpAddr>>,
    /// The last verdicts, for the status.
    verdicts: Vec<VipVerdict>,
    /// BIRD has not taken the file's last contents yet (`birdc` failed): try again.
    bird_error: Option<String>,
}

impl Announcer {
    /// Reads the drain state (a restarted lbd stays drained); writes nothing yet.
    pub fn new(
        file: PathBuf,
        birdc: PathBuf,
        socket: PathBuf,
        drain_path: PathBuf,
    ) -> io::Result<Self> {
        let drain = DrainState::load(&drain_path)?;
        if drain.drained {
            info!(path = %drain_path.display(), "the director is drained (from the drain state file): no VIP will be announced until `lbd undrain`");
        }
        Ok(Announcer {
            file,
            birdc,
            socket,
            drain_path,
            drain,
            announced: None,
            verdicts: Vec::new(),
            bird_error: None,
        })
    }

    pub fn drained(&self) -> bool {
        self.drain.drained
    }

    /// Brings the file and BIRD in step with `services`: rewrites the file and runs `birdc
    /// configure` when what is announced changes (or the last `birdc` failed), logging each
    /// VIP announced or withdrawn and why.
    pub fn sync(&mut self, services: &[ServiceView]) {
        let verdicts = decide(services, self.drain.drained);
        self.apply(verdicts);
    }

    /// Withdraws every VIP (lbd stopping and taking its data path down).
    pub fn withdraw_all(&mut self, why: &str) {
        let verdicts = self
            .verdicts
            .iter()
            .map(|v| VipVerdict {
                vip: v.vip,
                announce: false,
                reason: why.to_owned(),
            })
            .collect();
        self.apply(verdicts);
    }

    /// Drains (`true`) or returns the director to service, saving the state first.
    pub fn set_drained(&mut self, drained: bool, services: &[ServiceView]) -> io::Result<()> {
        if self.drain.drained != drained {
            let since = drained.then(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            });
            let state = DrainState { drained, since };
            state.save(&self.drain_path)?;
            self.drain = state;
            if drained {
                info!("director drained: withdrawing every VIP; connections keep flowing");
            } else {
                info!("director back in service: announcing the VIPs of healthy services");
            }
        }
        self.sync(services);
        Ok(())
    }

    pub fn status(&self) -> AnnounceStatus {
        AnnounceStatus {
            drain: self.drain.clone(),
            file: self.file.clone(),
            birdc_socket: self.socket.clone(),
            vips: self.verdicts.clone(),
            bird_error: self.bird_error.clone(),
        }
    }

    fn apply(&mut self, verdicts: Vec<VipVerdict>) {
        let changed = changes(self.announced.as_ref(), &verdicts);
        let now: BTreeSet<IpAddr> = verdicts
            .iter()
            .filter(|v| v.announce)
            .map(|v| v.vip)
            .collect();
        let write = self.announced.as_ref() != Some(&now) || self.bird_error.is_some();
        self.verdicts = verdicts;
        if !write {
            return;
        }
        for c in &changed {
            if c.announce {
                info!(vip = %c.vip, reason = %c.reason, "announcing VIP through BIRD");
            } else {
                info!(vip = %c.vip, reason = %c.reason, "withdrawing VIP from BIRD");
            }
        }
        let written = write_atomically(&self.file, render(&self.verdicts, false).as_bytes())
            .map_err(|e| (self.file.clone(), e))
            .and_then(|()| {
                let file6 = ipv6_file(&self.file);
                write_atomically(&file6, render(&self.verdicts, true).as_bytes())
                    .map_err(|e| (file6, e))
            });
        if let Err((file, e)) = written {
            let message = format!("writing {}: {e}", file.display());
            warn!("{message}; trying again in a second");
            self.bird_error = Some(message);
            return;
        }
        self.announced = Some(now);
        match self.configure() {
            Ok(()) => {
                if self.bird_error.take().is_some() {
                    info!("BIRD took the VIPs file");
                }
            }
            Err(message) => {
                if self.bird_error.as_ref() != Some(&message) {
                    warn!("{message}; trying again in a second");
                }
                self.bird_error = Some(message);
            }
        }
    }

    /// `birdc -s SOCKET configure`: BIRD re-reads its configuration, the include with it,
    /// and changes only what changed (the static routes; BGP sessions stay up).
    fn configure(&self) -> Result<(), String> {
        let what = format!(
            "`{} -s {} configure`",
            self.birdc.display(),
            self.socket.display()
        );
        let mut child = Command::new(&self.birdc)
            .arg("-s")
            .arg(&self.socket)
            .arg("configure")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("{what}: {e}"))?;
        let deadline = std::time::Instant::now() + BIRDC_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{what} did not answer within {BIRDC_TIMEOUT:?}"));
                }
                Err(e) => return Err(format!("{what}: {e}")),
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{what}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // birdc exits 0 even when BIRD refuses the file; its answer says.
        if out.status.success() && configure_succeeded(&text) {
            Ok(())
        } else {
            Err(format!(
                "{what} failed: {}",
                text.trim().replace('\n', " | ")
            ))
        }
    }
}

/// Whether birdc's answer to `configure` says BIRD took the configuration.
pub fn configure_succeeded(answer: &str) -> bool {
    answer.lines().any(|l| {
        let l = l.trim();
        l == "Reconfigured"
            || l.starts_with("Reconfiguration in progress")
            || l == "Reconfiguration already in progress, queueing new config"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use std::net::Ipv4Addr;

    fn service(vip: [u8; 4], port: u16, live_weight: u64, quorum_up: Option<bool>) -> ServiceView {
        ServiceView {
            addr: ServiceAddr {
                protocol: Protocol::Tcp,
                addr: IpAddr::from(Ipv4Addr::from(vip)),
                port,
            },
            live_weight,
            quorum_up,
        }
    }

    fn announced(verdicts: &[VipVerdict]) -> Vec<IpAddr> {
        verdicts
            .iter()
            .filter(|v| v.announce)
            .map(|v| v.vip)
            .collect()
    }

    #[test]
    fn a_vip_is_announced_while_one_of_its_services_has_live_weight() {
        let services = [
            service([10, 0, 0, 1], 80, 3, None),
            service([10, 0, 0, 1], 443, 0, None),
            service([10, 0, 0, 2], 80, 0, None),
            service([10, 0, 0, 3], 53, 1, None),
        ];
        let verdicts = decide(&services, false);
        assert_eq!(verdicts.len(), 3);
        assert_eq!(
            announced(&verdicts),
            [
                IpAddr::from(Ipv4Addr::new(10, 0, 0, 1)),
                IpAddr::from(Ipv4Addr::new(10, 0, 0, 3))
            ]
        );
        assert_eq!(verdicts[0].reason, "healthy: TCP 10.0.0.1:80 live weight 3");
        assert!(
            verdicts[1]
                .reason
                .starts_with("no service has a healthy real server"),
            "{}",
            verdicts[1].reason
        );
    }

    #[test]
    fn a_lost_quorum_withdraws_even_with_a_sorry_server_in_the_table() {
        // The sorry server stands in with its weight while the quorum is lost.
        let verdicts = decide(&[service([10, 0, 0, 1], 80, 1, Some(false))], false);
        assert!(!verdicts[0].announce);
        assert!(
            verdicts[0].reason.contains("below its quorum"),
            "{}",
            verdicts[0].reason
        );
        let verdicts = decide(&[service([10, 0, 0, 1], 80, 1, Some(true))], false);
        assert!(verdicts[0].announce);
    }

    #[test]
    fn a_drained_director_announces_nothing() {
        let services = [
            service([10, 0, 0, 1], 80, 3, None),
            service([10, 0, 0, 2], 80, 1, Some(true)),
        ];
        let verdicts = decide(&services, true);
        assert_eq!(verdicts.len(), 2);
        assert!(announced(&verdicts).is_empty());
        assert!(
            verdicts
                .iter()
                .all(|v| v.reason == "the director is drained")
        );
        assert!(decide(&[], false).is_empty());
    }

    #[test]
    fn the_include_file_has_a_static_route_per_announced_vip() {
        let services = [
            service([10, 0, 0, 2], 80, 1, None),
            service([10, 0, 0, 1], 80, 0, None),
        ];
        let text = render(&decide(&services, false), false);
        let routes: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(routes, ["route 10.0.0.2/32 blackhole;"]);
        assert!(
            render(&decide(&services, true), false)
                .lines()
                .all(|l| l.starts_with('#'))
        );
    }

    #[test]
    fn ipv6_vips_go_to_their_own_file() {
        let mut v6 = service([0; 4], 80, 1, None);
        v6.addr.addr = "2001:db8:10::100".parse().unwrap();
        let services = [service([10, 0, 0, 2], 80, 1, None), v6];
        let verdicts = decide(&services, false);
        let routes = |ipv6| -> Vec<String> {
            render(&verdicts, ipv6)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(routes(false), ["route 10.0.0.2/32 blackhole;"]);
        assert_eq!(routes(true), ["route 2001:db8:10::100/128 blackhole;"]);
        assert_eq!(
            ipv6_file(Path::new("/etc/bird/lb/vips.conf")),
            Path::new("/etc/bird/lb/vips6.conf")
        );
        assert_eq!(ipv6_file(Path::new("/run/vips")), Path::new("/run/vips6"));
    }

    #[test]
    fn changes_name_what_moved() {
        let up = decide(
            &[
                service([10, 0, 0, 1], 80, 1, None),
                service([10, 0, 0, 2], 80, 1, None),
            ],
            false,
        );
        // At start every verdict is logged.
        assert_eq!(changes(None, &up).len(), 2);
        let before: BTreeSet<IpAddr> = announced(&up).into_iter().collect();
        assert!(changes(Some(&before), &up).is_empty());
        let down = decide(&[service([10, 0, 0, 1], 80, 0, None)], false);
        let moved = changes(Some(&before), &down);
        assert_eq!(
            moved
                .iter()
                .map(|c| (c.vip, c.announce))
                .collect::<Vec<_>>(),
            [
                (IpAddr::from(Ipv4Addr::new(10, 0, 0, 1)), false),
                (IpAddr::from(Ipv4Addr::new(10, 0, 0, 2)), false)
            ]
        );
        assert_eq!(moved[1].reason, "no service has this VIP any more");
    }

    #[test]
    fn birdc_answers() {
        assert!(configure_succeeded(
            "BIRD 2.0.12 ready.\nReading configuration from /etc/bird/bird.conf\nReconfigured\n"
        ));
        assert!(!configure_succeeded(
            "BIRD 2.0.12 ready.\nReading configuration from x\n/etc/bird/lb-vips.conf:2:1 syntax error\n"
        ));
        assert!(!configure_succeeded(
            "Unable to connect to server control socket (/run/bird/bird.ctl): No such file or directory\n"
        ));
    }

    #[test]
    fn drain_state_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("lb-drain-test-{}", std::process::id()));
        let path = dir.join("drain.json");
        assert_eq!(DrainState::load(&path).unwrap(), DrainState::default());
        let state = DrainState {
            drained: true,
            since: Some(42),
        };
        state.save(&path).unwrap();
        assert_eq!(DrainState::load(&path).unwrap(), state);
        std::fs::write(&path, "nonsense").unwrap();
        assert!(DrainState::load(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
