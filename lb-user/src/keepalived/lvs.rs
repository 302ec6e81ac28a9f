//! The meaning of the statements: keepalived's check_parser.c (keywords), check_data.c
//! (`validate_check_config`: defaults, inheritance, corrections) and the checkers' parsers,
//! for what lb can do.
//!
//! Where keepalived applies a default or corrects a value with a warning, lb does the same and
//! says so in a note. Where keepalived would log an error and ignore the line (a bad value, a
//! keyword out of place), lb refuses the file: the line meant something lb cannot honour.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
    time::Duration,
};

use super::{
    conf::{
        CheckKind, HealthCheck, HttpGet, HttpUrl, HttpVersion, LvsConfig, MiscCheck,
        RealServerConf, Script, SorryServer, StatusCodes, VirtualServer,
    },
    error::{ErrorKind, Location, Report},
    files::Files,
    tree::Stmt,
    values::{self, Problem},
};
use crate::{
    health::{
        self, BodyRegex, ClientCert, ClientCertError, DnsProbe, ScriptSpec, UdpProbe, body_regex,
        script,
    },
    model::{
        AddrPort, Forward, MAX_WEIGHT, Netmask, Persistence, Protocol, RealSpec, SchedFlags,
        Scheduler, ServiceAddr, ServiceSpec, Timeouts, Tunnel, TunnelCsum, TunnelType,
    },
};

/// keepalived's `KEEPALIVED_DEFAULT_DELAY`.
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// keepalived's `IPVS_SVC_PERSISTENT_TIMEOUT`: 6 minutes (ipvsadm's default is 5).
pub(super) const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 6 * 60;
/// keepalived's `LVS_MAX_TIMEOUT`: 31 days.
const MAX_LVS_TIMEOUT: u32 = 86400 * 31;
/// `connect_timeout` is held in a 32-bit count of microseconds.
const MAX_CONNECT_TIMEOUT_US: u64 = u32::MAX as u64;
/// Any other timer: far beyond anything useful.
const MAX_TIMER_US: u64 = u32::MAX as u64 * 1_000_000;

/// Reads the top-level statements.
pub(super) fn read(files: &dyn Files, stmts: &[Stmt], report: &mut Report) -> LvsConfig {
    let mut reader = Reader {
        report,
        files,
        client_cert: None,
        services: Vec::new(),
        service_locations: HashMap::new(),
        timeouts: None,
        flush: false,
        script_user: None,
        log_all_failures: false,
        groups: HashMap::new(),
    };
    reader.script_user = reader.default_script_user(stmts);
    reader.log_all_failures = reader.checker_log_all_failures(stmts);
    reader.client_cert = reader.ssl(stmts);
    for stmt in stmts
        .iter()
        .filter(|s| s.keyword() == "virtual_server_group")
    {
        reader.group(stmt);
    }
    reader.root(stmts);
    LvsConfig {
        services: reader.services,
        timeouts: reader.timeouts,
        flush: reader.flush,
        client_cert: reader.client_cert,
        notes: Vec::new(),
    }
}

struct Reader<'r> {
    report: &'r mut Report,
    /// Where the `SSL` block's files are read.
    files: &'r dyn Files,
    /// The `SSL` block's client certificate, read before the virtual servers.
    client_cert: Option<Arc<ClientCert>>,
    services: Vec<VirtualServer>,
    service_locations: HashMap<ServiceAddr, Location>,
    timeouts: Option<Timeouts>,
    flush: bool,
    /// Whom scripts run as when they do not say: (uid, gid), `None` for lbd's own user.
    script_user: Option<(u32, u32)>,
    /// `global_defs`' `checker_log_all_failures`: every check logs every failure.
    log_all_failures: bool,
    /// `virtual_server_group`s by name: their addresses and ports, expanded.
    groups: HashMap<String, Vec<(IpAddr, u16)>>,
}

/// Top-level sections that are keepalived's own business, and why lb leaves them alone.
fn keepalived_section(keyword: &str) -> Option<&'static str> {
    const VRRP: &str = "keepalived itself runs VRRP";
    Some(match keyword {
        "vrrp_instance"
        | "vrrp_sync_group"
        | "garp_group"
        | "track_group"
        | "linkbeat_interfaces"
        | "interface_up_down_delays" => VRRP,
        "vrrp_script" | "vrrp_track_process" => "keepalived itself runs VRRP and its trackers",
        "track_file" | "vrrp_track_file" => "keepalived itself tracks files for VRRP",
        "static_ipaddress" | "static_routes" | "static_rules" => {
            "keepalived itself sets up static addresses, routes and rules"
        }
        "bfd_instance" => "keepalived itself runs BFD",
        "net_namespace_ipvs" => "lbd balances in the network namespace it runs in",
        "net_namespace"
        | "namespace_with_ipsets"
        | "use_pid_dir"
        | "instance"
        | "child_wait_time"
        | "linkbeat_use_polling" => "a setting of keepalived's own processes",
        _ => return None,
    })
}

/// Health checkers keepalived has and lb does not.
fn unsupported_checker(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "BFD_CHECK" | "FILE_CHECK" => {
            "this health check is not supported by lb (it runs TCP_CHECK, HTTP_GET, SSL_GET, \
             MISC_CHECK, SMTP_CHECK, UDP_CHECK, DNS_CHECK and PING_CHECK): check the service \
             with one of those, e.g. a MISC_CHECK script"
        }
        _ => return None,
    })
}

/// Settings that lb, like keepalived, takes from the innermost of check, real server and
/// virtual server that sets them.
#[derive(Clone, Default)]
struct Timing {
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    delay_loop: Option<Duration>,
}

impl Timing {
    fn or(&self, outer: &Timing) -> Timing {
        Timing {
            connect_timeout: self.connect_timeout.or(outer.connect_timeout),
            retry: self.retry.or(outer.retry),
            delay_before_retry: self.delay_before_retry.or(outer.delay_before_retry),
            warmup: self.warmup.or(outer.warmup),
            delay_loop: self.delay_loop.or(outer.delay_loop),
        }
    }
}

#[derive(Clone, Default)]
struct VsDraft {
    scheduler: Option<Scheduler>,
    flags: Vec<(String, Location)>,
    ops: Option<Location>,
    forward: Option<(Forward, Tunnel)>,
    persistence_timeout: Option<u32>,
    granularity: Option<Netmask>,
    /// `ip_family`, to check against the address.
    family: Option<(bool, Location)>,
    protocol: Option<Protocol>,
    ha_suspend: bool,
    alpha: bool,
    omega: bool,
    inhibit: bool,
    virtualhost: Option<String>,
    quorum: Option<(u32, Location)>,
    hysteresis: Option<(u32, Location)>,
    quorum_up: Option<Script>,
    quorum_down: Option<Script>,
    sorry: Option<(IpAddr, u16, Location)>,
    sorry_inhibit: Option<Location>,
    sorry_forward: Option<((Forward, Tunnel), Location)>,
    timing: Timing,
    weight: Option<u32>,
    reals: Vec<RsDraft>,
}

#[derive(Clone)]
struct RsDraft {
    addr: IpAddr,
    /// As written; 0 when none.
    port: u16,
    weight: Option<u32>,
    forward: Option<(Forward, Tunnel)>,
    upper_threshold: u32,
    lower_threshold: u32,
    inhibit: Option<bool>,
    alpha: Option<bool>,
    notify_up: Option<Script>,
    notify_down: Option<Script>,
    timing: Timing,
    virtualhost: Option<String>,
    checks: Vec<CheckDraft>,
    location: Location,
}

#[derive(Clone)]
struct CheckDraft {
    keyword: String,
    http: Option<HttpDraft>,
    misc: Option<MiscDraft>,
    /// SMTP_CHECK, UDP_CHECK, DNS_CHECK.
    other: Option<OtherDraft>,
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<IpAddr>,
    bind_port: Option<u16>,
    timing: Timing,
    alpha: Option<bool>,
    log_all_failures: bool,
    location: Location,
}

/// The settings of SMTP_CHECK, UDP_CHECK, DNS_CHECK and PING_CHECK.
#[derive(Clone)]
enum OtherDraft {
    /// PING_CHECK has none of its own.
    Ping,
    Smtp {
        helo_name: Option<String>,
    },
    Udp(UdpProbe),
    Dns {
        qtype: Option<u16>,
        name: Option<String>,
    },
}

#[derive(Clone, Default)]
struct MiscDraft {
    script: Option<Vec<String>>,
    timeout: Option<Duration>,
    dynamic: bool,
    user: Option<(u32, u32)>,
}

#[derive(Clone, Default)]
struct HttpDraft {
    urls: Vec<UrlDraft>,
    virtualhost: Option<String>,
    protocol: HttpVersion,
    fast_recovery: bool,
    tls: bool,
}

#[derive(Clone)]
struct UrlDraft {
    path: String,
    status_codes: Vec<(u16, u16)>,
    virtualhost: Option<String>,
    digest: Option<[u8; 16]>,
    regex: Option<BodyRegex>,
}

/// The `regex*` keywords of a url, before they are put together.
#[derive(Default)]
struct RegexDraft {
    pattern: Option<(String, Location)>,
    options: Vec<String>,
    no_match: bool,
    min_offset: Option<usize>,
    max_offset: Option<usize>,
    /// The first `regex_*` keyword's line, for an error if there is no `regex`.
    first_setting: Option<Location>,
}

/// Notes a keyword given twice in a block: keepalived keeps the last value.
#[derive(Default)]
struct Seen(HashMap<String, Location>);

impl Seen {
    fn check(&mut self, report: &mut Report, stmt: &Stmt) {
        let Some(canonical) = canonical(stmt.keyword()) else {
            return;
        };
        match self.0.entry(canonical.to_owned()) {
            Entry::Occupied(first) => report.note(
                &stmt.location,
                format!(
                    "'{}' repeated: the last one applies, as in keepalived (first at {})",
                    stmt.keyword(),
                    first.get()
                ),
            ),
            Entry::Vacant(v) => {
                v.insert(stmt.location.clone());
            }
        }
    }
}

/// The name under which a keyword counts for [`Seen`]; `None` for keywords that may repeat.
fn canonical(keyword: &str) -> Option<&str> {
    Some(match keyword {
        "real_server" | "url" | "status_code" | "TCP_CHECK" | "HTTP_GET" | "SSL_GET"
        | "MISC_CHECK" | "SMTP_CHECK" | "UDP_CHECK" | "DNS_CHECK" | "PING_CHECK" => {
            return None;
        }
        "lb_algo" | "lvs_sched" => "lb_algo",
        "lb_kind" | "lvs_method" => "lb_kind",
        "retry" | "nb_get_retry" => "retry",
        other => other,
    })
}

impl Reader<'_> {
    // ---- statement shapes -------------------------------------------------------------

    fn error(&mut self, kind: ErrorKind, stmt: &Stmt, message: impl Into<String>) {
        self.report.error(kind, &stmt.location, message);
    }

    fn problem<T>(&mut self, stmt: &Stmt, result: Result<T, Problem>) -> Option<T> {
        result
            .map_err(|(kind, message)| self.error(kind, stmt, message))
            .ok()
    }

    fn unknown(&mut self, stmt: &Stmt) {
        self.error(
            ErrorKind::UnknownKeyword,
            stmt,
            format!("unknown keyword '{}'", stmt.keyword()),
        );
    }

    fn no_block(&mut self, stmt: &Stmt) -> bool {
        if stmt.block.is_some() {
            self.error(
                ErrorKind::Syntax,
                stmt,
                format!("'{}' does not take a {{ }} block", stmt.keyword()),
            );
            return false;
        }
        true
    }

    fn block<'s>(&mut self, stmt: &'s Stmt) -> Option<&'s [Stmt]> {
        if stmt.block.is_none() {
            self.error(
                ErrorKind::Syntax,
                stmt,
                format!("'{}' needs a {{ }} block", stmt.keyword()),
            );
        }
        stmt.block.as_deref()
    }

    /// The values of a statement without a block, `min..=max` of them.
    fn values<'s>(&mut self, stmt: &'s Stmt, min: usize, max: usize) -> Option<&'s [String]> {
        let block_ok = self.no_block(stmt);
        let args = stmt.args();
        let n = args.len();
        if n < min || n > max {
            let keyword = stmt.keyword();
            let message = if n < min {
                match (min, max) {
                    (1, 1) => format!("'{keyword}' needs one value"),
                    (1, _) => format!("'{keyword}' needs a value"),
                    _ => format!("'{keyword}' needs at least {min} values"),
                }
            } else {
                let expected = match (min, max) {
                    (_, 0) => "no value".to_owned(),
                    (1, 1) => "one value".to_owned(),
                    (_, 1) => "at most one value".to_owned(),
                    (a, b) if a == b => format!("{a} values"),
                    (_, b) => format!("at most {b} values"),
                };
                format!("'{keyword}' takes {expected}, not {n}: {}", args.join(" "))
            };
            self.error(ErrorKind::Syntax, stmt, message);
            return None;
        }
        block_ok.then_some(args)
    }

    fn value<'s>(&mut self, stmt: &'s Stmt) -> Option<&'s str> {
        self.values(stmt, 1, 1).map(|v| v[0].as_str())
    }

    /// A keyword that takes no value.
    fn flag(&mut self, stmt: &Stmt) -> bool {
        self.values(stmt, 0, 0).is_some()
    }

    /// A keyword with an optional BOOL, true when absent.
    fn opt_bool(&mut self, stmt: &Stmt) -> Option<bool> {
        match self.values(stmt, 0, 1)? {
            [] => Some(true),
            [v] => self.problem(stmt, values::boolean(v, stmt.keyword())),
            _ => None,
        }
    }

    fn unsigned(&mut self, stmt: &Stmt, min: u32, max: u32) -> Option<u32> {
        let text = self.value(stmt)?;
        self.problem(stmt, values::unsigned(text, min, max, stmt.keyword()))
    }

    fn timer(&mut self, stmt: &Stmt, min_us: u64, max_us: u64) -> Option<Duration> {
        let text = self.value(stmt)?;
        self.problem(stmt, values::timer(text, min_us, max_us, stmt.keyword()))
    }

    fn string(&mut self, stmt: &Stmt) -> Option<String> {
        self.value(stmt).map(str::to_owned)
    }

    /// `notify_up "/path/script args" [user [group]]`.
    fn script(&mut self, stmt: &Stmt) -> Option<Script> {
        let args = self.values(stmt, 1, 3)?;
        let argv = self.words(stmt, &args[0])?;
        let ids = match args.get(1) {
            Some(user) => Some(self.user(stmt, user, args.get(2).map(String::as_str))?),
            None => self.script_user,
        };
        Some(Script {
            command: args[0].clone(),
            user: args.get(1).cloned(),
            group: args.get(2).cloned(),
            spec: ScriptSpec {
                argv,
                uid: ids.map(|i| i.0),
                gid: ids.map(|i| i.1),
            },
        })
    }

    /// A script's command line in words.
    fn words(&mut self, stmt: &Stmt, line: &str) -> Option<Vec<String>> {
        match script::split_words(line) {
            Some(words) if !words.is_empty() => Some(words),
            Some(_) => {
                let message = format!("'{}' needs a program to run", stmt.keyword());
                self.error(ErrorKind::Invalid, stmt, message);
                None
            }
            None => {
                let message = format!("'{}': a quote is not closed in {line:?}", stmt.keyword());
                self.error(ErrorKind::Syntax, stmt, message);
                None
            }
        }
    }

    /// A user (and group) to run a script as, which must exist here, as keepalived checks.
    fn user(&mut self, stmt: &Stmt, user: &str, group: Option<&str>) -> Option<(u32, u32)> {
        // keepalived also takes "user:group".
        let (user, group) = match (user.split_once(':'), group) {
            (Some((u, g)), None) if !g.is_empty() => (u, Some(g)),
            (Some((u, _)), _) => (u, group),
            (None, _) => (user, group),
        };
        match script::resolve_user(user, group) {
            Ok(ids) => Some(ids),
            Err(e) => {
                let message = format!(
                    "'{}': {e}: create it, or name a user and group that exist",
                    stmt.keyword()
                );
                self.error(ErrorKind::Invalid, stmt, message);
                None
            }
        }
    }

    /// keepalived's default script user: `global_defs { script_user USER [GROUP] }`, else the
    /// user `keepalived_script` if it exists, else keepalived's own (here lbd's).
    /// `global_defs { checker_log_all_failures [BOOL] }`, read before the virtual servers.
    fn checker_log_all_failures(&mut self, stmts: &[Stmt]) -> bool {
        let global = stmts
            .iter()
            .filter(|s| s.keyword() == "global_defs")
            .filter_map(|s| s.block.as_deref())
            .flatten()
            .rfind(|s| s.keyword() == "checker_log_all_failures");
        global.is_some_and(|stmt| self.opt_bool(stmt).unwrap_or(false))
    }

    /// keepalived's global `SSL { password, ca, certificate, key }`, which SSL_GET uses: the
    /// client certificate it presents when a real server asks for one. As in keepalived,
    /// `ca` is read but real servers' certificates are not verified against it: keepalived
    /// loads it into OpenSSL's context and never asks OpenSSL to verify.
    fn ssl(&mut self, stmts: &[Stmt]) -> Option<Arc<ClientCert>> {
        let mut first: Option<&Stmt> = None;
        let mut cert = None;
        for stmt in stmts.iter().filter(|s| s.keyword() == "SSL") {
            if let Some(first) = first {
                let message = format!(
                    "SSL is given twice (first at {}): keepalived replaces the first with a \
                     warning; keep one",
                    first.location
                );
                self.error(ErrorKind::Duplicate, stmt, message);
                continue;
            }
            first = Some(stmt);
            cert = self.ssl_block(stmt);
        }
        cert
    }

    fn ssl_block(&mut self, stmt: &Stmt) -> Option<Arc<ClientCert>> {
        if !stmt.args().is_empty() {
            self.error(
                ErrorKind::Syntax,
                stmt,
                "'SSL' takes no value before its { } block",
            );
        }
        let block = self.block(stmt)?;
        let mut seen = Seen::default();
        let (mut certificate, mut key) = (None, None);
        for s in block {
            seen.check(self.report, s);
            match s.keyword() {
                "password" => {
                    if self.value(s).is_some() {
                        self.error(
                            ErrorKind::Unsupported,
                            s,
                            "SSL password: lb cannot decrypt an encrypted private key; decrypt \
                             it (`openssl pkey -in KEY -out PLAIN.key`, readable by root only), \
                             name that file in key and drop password",
                        );
                    }
                }
                "ca" => {
                    let Some(path) = self.value(s) else { continue };
                    let Some(text) = self.ssl_file(s, path) else {
                        continue;
                    };
                    match health::certificates(&text) {
                        Ok(certs) => self.report.note(
                            &s.location,
                            format!(
                                "ca {path}: read ({} certificates), but as in keepalived, which \
                                 loads it and never asks OpenSSL to verify, SSL_GET does not \
                                 verify real servers' certificates",
                                certs.len()
                            ),
                        ),
                        Err(e) => self.error(ErrorKind::Invalid, s, format!("ca {path}: {e}")),
                    }
                }
                "certificate" => {
                    if let Some(path) = self.value(s) {
                        certificate = Some((s, path));
                    }
                }
                "key" => {
                    if let Some(path) = self.value(s) {
                        key = Some((s, path));
                    }
                }
                _ => self.unknown(s),
            }
        }
        match (certificate, key) {
            (None, None) => {
                self.report.note(
                    &stmt.location,
                    "SSL has no certificate and key: SSL_GET presents no client certificate, \
                     as keepalived with the context it generates",
                );
                None
            }
            (Some((s, _)), None) => {
                self.error(
                    ErrorKind::Invalid,
                    s,
                    "SSL certificate without key: name the certificate's private key with key",
                );
                None
            }
            (None, Some((s, _))) => {
                self.error(
                    ErrorKind::Invalid,
                    s,
                    "SSL key without certificate: name its certificate with certificate",
                );
                None
            }
            (Some((cs, cp)), Some((ks, kp))) => {
                let chain = self.ssl_file(cs, cp);
                let key = self.ssl_file(ks, kp);
                let (chain, key) = (chain?, key?);
                if let Err(e) = health::certificates(&chain) {
                    self.error(ErrorKind::Invalid, cs, format!("certificate {cp}: {e}"));
                    return None;
                }
                match ClientCert::from_pem(&chain, &key) {
                    Ok(cert) => Some(Arc::new(cert)),
                    Err(e @ ClientCertError::Refused(_)) => {
                        let message = format!("SSL certificate {cp} and key {kp}: {e}");
                        self.error(ErrorKind::Invalid, stmt, message);
                        None
                    }
                    Err(e) => {
                        self.error(ErrorKind::Invalid, ks, format!("key {kp}: {e}"));
                        None
                    }
                }
            }
        }
    }

    /// The text of a file the `SSL` block names.
    fn ssl_file(&mut self, stmt: &Stmt, path: &str) -> Option<String> {
        match self.files.read(std::path::Path::new(path)) {
            Ok(text) => Some(text),
            Err(e) => {
                let message = format!("{} {path}: cannot read it: {e}", stmt.keyword());
                self.error(ErrorKind::File, stmt, message);
                None
            }
        }
    }

    fn default_script_user(&mut self, stmts: &[Stmt]) -> Option<(u32, u32)> {
        let global = stmts
            .iter()
            .filter(|s| s.keyword() == "global_defs")
            .filter_map(|s| s.block.as_deref())
            .flatten()
            .rfind(|s| s.keyword() == "script_user");
        if let Some(stmt) = global {
            let args = self.values(stmt, 1, 2)?;
            return self.user(stmt, &args[0], args.get(1).map(String::as_str));
        }
        script::resolve_user("keepalived_script", None).ok()
    }

    /// `IP [PORT]` after `virtual_server`, `real_server`, `sorry_server`; port 0 when none.
    fn address_port(&mut self, stmt: &Stmt, what: &str) -> Option<(IpAddr, u16)> {
        let args = stmt.args();
        if args.is_empty() || args.len() > 2 {
            let message = if args.is_empty() {
                format!("'{}' needs an address and a port", stmt.keyword())
            } else {
                format!(
                    "'{}' takes an address and a port, not {}: {}",
                    stmt.keyword(),
                    args.len(),
                    args.join(" ")
                )
            };
            self.error(ErrorKind::Syntax, stmt, message);
            return None;
        }
        let addr = self.problem(stmt, values::ip(&args[0], &format!("{what} address")));
        let port = match args.get(1) {
            Some(p) => self.problem(stmt, values::port_or_none(p, what))?,
            None => 0,
        };
        Some((addr?, port))
    }

    /// The timing keywords that the virtual server, the real server and the checks share;
    /// false if `stmt` is not one. `retry_min` is 1 above checks, 0 in them, as in keepalived.
    fn timing(&mut self, stmt: &Stmt, timing: &mut Timing, retry_min: u32) -> bool {
        match stmt.keyword() {
            "connect_timeout" => {
                if let Some(t) = self.timer(stmt, 1, MAX_CONNECT_TIMEOUT_US) {
                    timing.connect_timeout = Some(t);
                }
            }
            "retry" => {
                if let Some(n) = self.unsigned(stmt, retry_min, u32::MAX) {
                    timing.retry = Some(n);
                }
            }
            "delay_before_retry" => {
                if let Some(t) = self.timer(stmt, 0, MAX_TIMER_US) {
                    timing.delay_before_retry = Some(t);
                }
            }
            "warmup" => {
                if let Some(t) = self.timer(stmt, 0, MAX_TIMER_US) {
                    timing.warmup = Some(t);
                }
            }
            "delay_loop" => {
                if let Some(t) = self.timer(stmt, 1, MAX_TIMER_US) {
                    timing.delay_loop = Some(t);
                }
            }
            _ => return false,
        }
        true
    }

    /// `lb_kind` / `lvs_method` / `sorry_server_lvs_method`: `NAT|DR|TUN`, TUN optionally
    /// followed by keepalived's tunnel options: `type ipip`, `type gue port N
    /// [nocsum|csum|remcsum]`, `type gre [nocsum|csum]` (IPVS's rules, as ipvsadm checks them).
    fn forward(&mut self, stmt: &Stmt) -> Option<(Forward, Tunnel)> {
        let args = self.values(stmt, 1, usize::MAX)?;
        let forward = match args[0].as_str() {
            "NAT" => Forward::Masq,
            "DR" => Forward::Route,
            "TUN" => Forward::Tunnel,
            other => {
                self.error(
                    ErrorKind::Invalid,
                    stmt,
                    format!("unknown forwarding method '{other}': expected NAT, DR or TUN"),
                );
                return None;
            }
        };
        let options = &args[1..];
        if options.is_empty() {
            return Some((forward, Tunnel::default()));
        }
        if forward != Forward::Tunnel {
            let message = format!("'{}' takes tunnel options only with TUN", stmt.keyword());
            self.error(ErrorKind::Syntax, stmt, message);
            return None;
        }
        match tunnel_options(options) {
            Ok(tunnel) => Some((forward, tunnel)),
            Err((kind, message)) => {
                self.error(kind, stmt, message);
                None
            }
        }
    }

    // ---- top level ----------------------------------------------------------------------

    fn root(&mut self, stmts: &[Stmt]) {
        for stmt in stmts {
            match stmt.keyword() {
                "virtual_server" => {
                    for vs in self.virtual_server(stmt) {
                        let addr = vs.spec.addr;
                        match self.service_locations.entry(addr) {
                            Entry::Occupied(first) => {
                                let message = format!(
                                    "virtual_server {addr} is defined twice (first at {})",
                                    first.get()
                                );
                                self.report
                                    .error(ErrorKind::Duplicate, &stmt.location, message);
                            }
                            Entry::Vacant(v) => {
                                v.insert(stmt.location.clone());
                                self.services.push(vs);
                            }
                        }
                    }
                }
                // Read up front (a group may be used before it is defined).
                "virtual_server_group" => {}
                // Read up front, by ssl().
                "SSL" => {}
                "global_defs" => self.global_defs(stmt),
                keyword => match keepalived_section(keyword) {
                    Some(reason) => {
                        let name = stmt
                            .args()
                            .first()
                            .map(|n| format!(" {n}"))
                            .unwrap_or_default();
                        self.report
                            .note(&stmt.location, format!("{keyword}{name} ignored: {reason}"));
                    }
                    None => self.unknown(stmt),
                },
            }
        }
    }

    /// `global_defs`: keepalived's own settings, but for the few that concern LVS.
    fn global_defs(&mut self, stmt: &Stmt) {
        let Some(block) = self.block(stmt) else {
            return;
        };
        let mut read = Vec::new();
        for s in block {
            match s.keyword() {
                "lvs_timeouts" => {
                    if let Some(t) = self.lvs_timeouts(s) {
                        self.timeouts = Some(t);
                        read.push("lvs_timeouts");
                    }
                }
                "lvs_flush" if self.flag(s) => {
                    self.flush = true;
                    read.push("lvs_flush");
                }
                // Read up front, by default_script_user and checker_log_all_failures.
                "script_user" => read.push("script_user"),
                "checker_log_all_failures" => read.push("checker_log_all_failures"),
                "lvs_notify_fifo"
                | "lvs_notify_fifo_script"
                | "notify_fifo"
                | "notify_fifo_script" => self.report.note(
                    &s.location,
                    format!(
                        "{} ignored: lbd writes no notify FIFO; lbd's log has each real \
                         server's and quorum's change (use notify_up/notify_down, \
                         quorum_up/quorum_down scripts to act on them)",
                        s.keyword()
                    ),
                ),
                "enable_script_security" => self.report.note(
                    &s.location,
                    "enable_script_security ignored: lbd does not check who may write the \
                     scripts it runs; keep them writable by root only",
                ),
                "lvs_sync_daemon" => self.report.note(
                    &s.location,
                    "lvs_sync_daemon ignored: lb has no connection synchronisation, so \
                     connections do not survive a failover to the other director",
                ),
                "lvs_flush_on_stop" | "lvs_flush_onstop" => self.report.note(
                    &s.location,
                    format!(
                        "{} ignored: lbd keeps its configuration when keepalived stops",
                        s.keyword()
                    ),
                ),
                _ => {}
            }
        }
        let message = if read.is_empty() {
            "global_defs ignored: it configures keepalived itself".to_owned()
        } else {
            format!(
                "global_defs ignored but for {}: the rest configures keepalived itself",
                read.join(", ")
            )
        };
        self.report.note(&stmt.location, message);
    }

    /// `lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]`.
    fn lvs_timeouts(&mut self, stmt: &Stmt) -> Option<Timeouts> {
        let args = self.values(stmt, 2, 6)?;
        let mut timeouts = Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 0,
        };
        for pair in args.chunks(2) {
            let slot = match pair[0].as_str() {
                "tcp" => &mut timeouts.tcp,
                "tcpfin" => &mut timeouts.tcp_fin,
                "udp" => &mut timeouts.udp,
                other => {
                    let message =
                        format!("unknown lvs_timeouts option '{other}': expected tcp, tcpfin, udp");
                    self.error(ErrorKind::Invalid, stmt, message);
                    return None;
                }
            };
            let Some(text) = pair.get(1) else {
                let message = format!("lvs_timeouts {} needs a value", pair[0]);
                self.error(ErrorKind::Syntax, stmt, message);
                return None;
            };
            let what = format!("lvs_timeouts {}", pair[0]);
            *slot = self.problem(stmt, values::unsigned(text, 0, MAX_LVS_TIMEOUT, &what))?;
        }
        Some(timeouts)
    }

    // ---- virtual_server -----------------------------------------------------------------

    /// The services of a `virtual_server` block: one, or one per address and port of its
    /// group.
    fn virtual_server(&mut self, stmt: &Stmt) -> Vec<VirtualServer> {
        if stmt.args().first().map(String::as_str) != Some("group") {
            return self.single_virtual_server(stmt).into_iter().collect();
        }
        let name = match stmt.args() {
            [_, name] => name.clone(),
            _ => {
                self.error(
                    ErrorKind::Syntax,
                    stmt,
                    "'virtual_server group' needs a group name",
                );
                return Vec::new();
            }
        };
        let Some(block) = self.block(stmt) else {
            return Vec::new();
        };
        let Some(entries) = self.groups.get(&name).cloned() else {
            let message = format!(
                "virtual_server group {name}: no virtual_server_group {name} is defined (or it \
                 has errors)"
            );
            self.error(ErrorKind::Invalid, stmt, message);
            return Vec::new();
        };
        let mut draft = VsDraft::default();
        let mut seen = Seen::default();
        for s in block {
            seen.check(self.report, s);
            self.vs_keyword(s, &mut draft);
        }
        // keepalived sets each address of the group up with the same real servers and checks
        // them once; the notes of the first say what applies to all.
        let (errors, notes) = (self.report.errors.len(), self.report.notes.len());
        let mut out = Vec::new();
        for (i, &(addr, port)) in entries.iter().enumerate() {
            let (errors_now, notes_now) = (self.report.errors.len(), self.report.notes.len());
            if let Some(mut vs) = self.finish_virtual_server(stmt, (addr, port), draft.clone()) {
                vs.group = Some(name.clone());
                out.push(vs);
            }
            if i > 0 {
                // Keep what is new for this address, not repeats of the first's.
                let first_errors: Vec<(Location, String)> = self.report.errors[errors..errors_now]
                    .iter()
                    .map(|e| (e.location.clone(), e.message.clone()))
                    .collect();
                let first_notes: Vec<(Location, String)> = self.report.notes[notes..notes_now]
                    .iter()
                    .map(|n| (n.location.clone(), n.message.clone()))
                    .collect();
                let mut k = errors_now;
                while k < self.report.errors.len() {
                    let e = &self.report.errors[k];
                    if first_errors.contains(&(e.location.clone(), e.message.clone())) {
                        self.report.errors.remove(k);
                    } else {
                        k += 1;
                    }
                }
                let mut k = notes_now;
                while k < self.report.notes.len() {
                    let n = &self.report.notes[k];
                    if first_notes.contains(&(n.location.clone(), n.message.clone())) {
                        self.report.notes.remove(k);
                    } else {
                        k += 1;
                    }
                }
            }
        }
        out
    }

    /// `virtual_server_group NAME { IP PORT ... }`: each line an address (`10.0.0.1`,
    /// `2001:db8::1`), a range of the last byte (`10.0.0.1-10`) or, for IPv6, of the last 16
    /// bits in hexadecimal (`2001:db8::1-a`, keepalived's `inet_stor`), a range of addresses
    /// (`10.0.0.1-10.0.1.5`) or a network (`10.0.0.0/30`, `2001:db8::/126`), and a port.
    fn group(&mut self, stmt: &Stmt) {
        let [name] = stmt.args() else {
            self.error(
                ErrorKind::Syntax,
                stmt,
                "'virtual_server_group' needs a name",
            );
            return;
        };
        let Some(block) = self.block(stmt) else {
            return;
        };
        const MAX_ENTRIES: u64 = 4096;
        let mut entries = Vec::new();
        let errors_before = self.report.errors.len();
        for s in block {
            if s.keyword() == "fwmark" {
                let message = "firewall-mark entries of a virtual_server_group are not supported \
                               by lb";
                self.error(ErrorKind::Unsupported, s, message);
                continue;
            }
            if !self.no_block(s) {
                continue;
            }
            let (first, last, v6) = match group_range(s.keyword()) {
                Ok(range) => range,
                Err((kind, message)) => {
                    self.error(kind, s, message);
                    continue;
                }
            };
            let port = match s.args() {
                [] => 0,
                [p] => match self.problem(s, values::port_or_none(p, "virtual_server_group")) {
                    Some(p) => p,
                    None => continue,
                },
                _ => {
                    let message = "a virtual_server_group entry is an address (or range) and a \
                                   port";
                    self.error(ErrorKind::Syntax, s, message);
                    continue;
                }
            };
            // The group's services share one block of real servers and checks, so lb keeps
            // a group to one family.
            if let Some(&(a, _)) = entries.first()
                && IpAddr::is_ipv6(&a) != v6
            {
                let message = format!(
                    "virtual_server_group {name} mixes IPv4 and IPv6 addresses: lb takes one \
                     family per group"
                );
                self.error(ErrorKind::Invalid, s, message);
                continue;
            }
            let count = last - first + 1;
            if entries.len() as u128 + count > u128::from(MAX_ENTRIES) {
                let message = format!(
                    "virtual_server_group {name} has more than {MAX_ENTRIES} addresses: write \
                     smaller groups"
                );
                self.error(ErrorKind::Invalid, s, message);
                continue;
            }
            for a in first..=last {
                let addr = match u32::try_from(a) {
                    Ok(a) if !v6 => IpAddr::V4(Ipv4Addr::from(a)),
                    _ => IpAddr::V6(Ipv6Addr::from(a)),
                };
                entries.push((addr, port));
            }
        }
        if entries.is_empty() && self.report.errors.len() == errors_before {
            let message = format!("virtual_server_group {name} has no entries");
            self.error(ErrorKind::Invalid, stmt, message);
            return;
        }
        if self.report.errors.len() == errors_before {
            self.groups.insert(name.clone(), entries);
        }
    }

    fn single_virtual_server(&mut self, stmt: &Stmt) -> Option<VirtualServer> {
        if stmt.args().first().map(String::as_str) == Some("fwmark") {
            self.error(
                ErrorKind::Unsupported,
                stmt,
                "firewall-mark virtual servers (virtual_server fwmark) are not supported by lb",
            );
            return None;
        }
        let header = self.address_port(stmt, "virtual_server");
        let block = self.block(stmt)?;
        let mut draft = VsDraft::default();
        let mut seen = Seen::default();
        for s in block {
            seen.check(self.report, s);
            self.vs_keyword(s, &mut draft);
        }
        let header = header?;
        self.finish_virtual_server(stmt, header, draft)
    }

    fn vs_keyword(&mut self, s: &Stmt, vs: &mut VsDraft) {
        if self.timing(s, &mut vs.timing, 1) {
            return;
        }
        match s.keyword() {
            "lb_algo" | "lvs_sched" => {
                if let Some(name) = self.value(s) {
                    vs.scheduler = match name.parse::<Scheduler>() {
                        Ok(sch) => Some(sch),
                        Err(_) if name == "twos" => {
                            let message = "the twos scheduler is not supported by lb";
                            self.error(ErrorKind::Unsupported, s, message);
                            None
                        }
                        Err(_) => {
                            let names: Vec<&str> =
                                Scheduler::ALL.iter().map(|s| s.name()).collect();
                            let message =
                                format!("unknown scheduler '{name}': expected {}", names.join("|"));
                            self.error(ErrorKind::Invalid, s, message);
                            None
                        }
                    };
                }
            }
            "lb_kind" | "lvs_method" => {
                if let Some(f) = self.forward(s) {
                    vs.forward = Some(f);
                }
            }
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => {
                if self.flag(s) {
                    vs.flags.push((s.keyword().to_owned(), s.location.clone()));
                }
            }
            "ops" => {
                if self.flag(s) {
                    vs.ops = Some(s.location.clone());
                }
            }
            "hashed" => {
                if self.flag(s) {
                    let message = "hashed ignored: it has no effect in keepalived either";
                    self.report.note(&s.location, message);
                }
            }
            "persistence_timeout" => {
                if let Some(args) = self.values(s, 0, 1) {
                    vs.persistence_timeout = match args.first() {
                        None => Some(DEFAULT_PERSISTENCE_TIMEOUT),
                        Some(text) => self.problem(
                            s,
                            values::unsigned(text, 1, MAX_LVS_TIMEOUT, "persistence_timeout"),
                        ),
                    };
                }
            }
            "persistence_granularity" => {
                if let Some(text) = self.value(s) {
                    // keepalived's pgr_handler: a dotted netmask for IPv4 services, a prefix
                    // length (1-128) for IPv6 ones; which one is checked against the address.
                    vs.granularity = if text.contains('.') {
                        self.problem(s, values::ipv4(text, "persistence_granularity netmask"))
                            .map(Netmask::V4)
                    } else {
                        self.problem(
                            s,
                            values::unsigned(text, 1, 128, "persistence_granularity prefix length"),
                        )
                        .map(|len| Netmask::V6(len as u8))
                    };
                }
            }
            // Removed in keepalived 1.2.20 (which since logs it as unknown and goes on), but
            // still in many configurations copied from old samples.
            "nat_mask" => {
                if self.value(s).is_some() {
                    let message = "nat_mask ignored: it only ever applied to Linux 2.2, and \
                                   keepalived no longer has it";
                    self.report.note(&s.location, message);
                }
            }
            "persistence_engine" => self.error(
                ErrorKind::Unsupported,
                s,
                "persistence engines (persistence_engine) are not supported by lb",
            ),
            "protocol" => {
                if let Some(name) = self.value(s) {
                    match name.to_ascii_uppercase().as_str() {
                        "TCP" => vs.protocol = Some(Protocol::Tcp),
                        "UDP" => vs.protocol = Some(Protocol::Udp),
                        "SCTP" => self.error(
                            ErrorKind::Unsupported,
                            s,
                            "SCTP services are not supported by lb",
                        ),
                        _ => {
                            let message = format!("unknown protocol '{name}': expected TCP or UDP");
                            self.error(ErrorKind::Invalid, s, message);
                        }
                    }
                }
            }
            "ip_family" => {
                if let Some(family) = self.value(s) {
                    match family {
                        "inet" => vs.family = Some((false, s.location.clone())),
                        "inet6" => vs.family = Some((true, s.location.clone())),
                        other => {
                            let message =
                                format!("unknown ip_family '{other}': expected inet or inet6");
                            self.error(ErrorKind::Invalid, s, message);
                        }
                    }
                }
            }
            "ha_suspend" => vs.ha_suspend |= self.flag(s),
            "alpha" => vs.alpha |= self.flag(s),
            "omega" => vs.omega |= self.flag(s),
            "inhibit_on_failure" => vs.inhibit |= self.flag(s),
            "virtualhost" => vs.virtualhost = self.string(s).or(vs.virtualhost.take()),
            "quorum" => {
                if let Some(n) = self.unsigned(s, 1, u32::MAX) {
                    vs.quorum = Some((n, s.location.clone()));
                }
            }
            "hysteresis" => {
                if let Some(n) = self.unsigned(s, 0, u32::MAX) {
                    vs.hysteresis = Some((n, s.location.clone()));
                }
            }
            "quorum_up" => self.once_script(s, &mut vs.quorum_up),
            "quorum_down" => self.once_script(s, &mut vs.quorum_down),
            "weight" => {
                if let Some(n) = self.unsigned(s, 1, MAX_WEIGHT) {
                    vs.weight = Some(n);
                }
            }
            "sorry_server" => {
                if self.no_block(s)
                    && let Some((addr, port)) = self.address_port(s, "sorry_server")
                {
                    vs.sorry = Some((addr, port, s.location.clone()));
                }
            }
            "sorry_server_inhibit" => {
                if self.flag(s) {
                    vs.sorry_inhibit = Some(s.location.clone());
                }
            }
            "sorry_server_lvs_method" => {
                if let Some(f) = self.forward(s) {
                    vs.sorry_forward = Some((f, s.location.clone()));
                }
            }
            "smtp_alert" => {
                if self.opt_bool(s).is_some() {
                    self.report
                        .note(&s.location, "smtp_alert ignored: lb sends no e-mail");
                }
            }
            "snmp_name" => {
                if self.value(s).is_some() {
                    self.report
                        .note(&s.location, "snmp_name ignored: lb has no SNMP agent");
                }
            }
            "real_server" => {
                if let Some(rs) = self.real_server(s) {
                    vs.reals.push(rs);
                }
            }
            _ => self.unknown(s),
        }
    }

    /// A script keyword keepalived takes once ("already specified - ignoring" the second).
    fn once_script(&mut self, s: &Stmt, slot: &mut Option<Script>) {
        let Some(script) = self.script(s) else {
            return;
        };
        if slot.is_some() {
            let message = format!("'{}' is given twice", s.keyword());
            self.error(ErrorKind::Duplicate, s, message);
        } else {
            *slot = Some(script);
        }
    }

    /// keepalived's `validate_check_config` for one virtual server.
    fn finish_virtual_server(
        &mut self,
        stmt: &Stmt,
        (addr, port): (IpAddr, u16),
        vs: VsDraft,
    ) -> Option<VirtualServer> {
        let at = &stmt.location;
        let name = format!("virtual_server {addr} {port}");
        if let Some((v6, family_at)) = &vs.family
            && *v6 != addr.is_ipv6()
        {
            let family = if *v6 { "inet6" } else { "inet" };
            let message = format!("ip_family {family} does not match {name}");
            self.report.error(ErrorKind::Invalid, family_at, message);
        }
        let granularity = match vs.granularity {
            Some(g) if matches!(g, Netmask::V6(_)) != addr.is_ipv6() => {
                let message = format!(
                    "persistence_granularity {g} does not fit {name}: a netmask for IPv4, a \
                     prefix length (1-128) for IPv6"
                );
                self.report.error(ErrorKind::Invalid, at, message);
                None
            }
            g => g,
        };
        if vs.reals.is_empty() {
            let message = format!("{name} has no real servers: keepalived ignores it");
            self.report.note(at, message);
            return None;
        }
        let protocol = vs.protocol.unwrap_or_else(|| {
            let message = format!(
                "{name} has no 'protocol': keepalived makes it a UDP service (write protocol \
                 TCP for a TCP one)"
            );
            self.report.note(at, message);
            Protocol::Udp
        });
        if let Some(ops_at) = &vs.ops {
            if protocol == Protocol::Udp {
                let message = "one-packet scheduling (ops) is not supported by lb";
                self.report.error(ErrorKind::Unsupported, ops_at, message);
            } else {
                let message = "ops ignored: one-packet scheduling only applies to UDP \
                               (keepalived ignores it too)";
                self.report.note(ops_at, message);
            }
        }
        let mut persistence_timeout = vs
            .persistence_timeout
            .or(granularity.map(|_| DEFAULT_PERSISTENCE_TIMEOUT));
        if port == 0 && persistence_timeout.is_none() {
            let message = format!(
                "{name}: port 0 (all ports) needs persistence: keepalived makes it persistent \
                 ({DEFAULT_PERSISTENCE_TIMEOUT} s)"
            );
            self.report.note(at, message);
            persistence_timeout = Some(DEFAULT_PERSISTENCE_TIMEOUT);
        }
        let scheduler = vs.scheduler.unwrap_or_else(|| {
            let message = format!("{name} has no 'lb_algo': keepalived uses wlc");
            self.report.note(at, message);
            Scheduler::Wlc
        });
        let sched_flags = self.sched_flags(scheduler, &vs.flags);

        let needs_default_forward = vs.forward.is_none()
            && (vs.reals.iter().any(|r| r.forward.is_none())
                || (vs.sorry.is_some() && vs.sorry_forward.is_none()));
        if needs_default_forward {
            let message = format!("{name} has no 'lb_kind': keepalived uses NAT");
            self.report.note(at, message);
        }
        let default_forward = vs.forward.unwrap_or((Forward::Masq, Tunnel::default()));

        let service = ServiceAddr {
            protocol,
            addr,
            port,
        };
        let mut reals: Vec<RealServerConf> = Vec::new();
        let mut real_locations: HashMap<(IpAddr, u16), Location> = HashMap::new();
        for rs in &vs.reals {
            let (forward, tunnel) = rs.forward.unwrap_or(default_forward);
            let real_port = self.real_port(forward, rs.port, port, &rs.location, "real_server");
            match real_locations.entry((rs.addr, real_port)) {
                Entry::Occupied(first) => {
                    let message = format!(
                        "real_server {} is defined twice in {name} (first at {})",
                        AddrPort(rs.addr, real_port),
                        first.get()
                    );
                    self.report
                        .error(ErrorKind::Duplicate, &rs.location, message);
                    continue;
                }
                Entry::Vacant(v) => {
                    v.insert(rs.location.clone());
                }
            }
            self.check_family(&name, addr, rs.addr, forward, &rs.location, "real_server");
            if rs.lower_threshold > rs.upper_threshold {
                let message = format!(
                    "lthreshold {} is above uthreshold {}: IPVS refuses such a real server \
                     (keepalived would log the kernel's error and leave it out); give it an \
                     uthreshold of at least its lthreshold",
                    rs.lower_threshold, rs.upper_threshold
                );
                self.report.error(ErrorKind::Invalid, &rs.location, message);
            }
            let checks = rs
                .checks
                .iter()
                .filter_map(|c| self.finish_check(c, rs, &vs))
                .collect();
            reals.push(RealServerConf {
                spec: RealSpec {
                    addr: rs.addr,
                    port: real_port,
                    forward,
                    weight: rs.weight.or(vs.weight).unwrap_or(1),
                    upper_threshold: rs.upper_threshold,
                    lower_threshold: rs.lower_threshold,
                    tunnel,
                },
                inhibit_on_failure: rs.inhibit.unwrap_or(vs.inhibit),
                checks,
                notify_up: rs.notify_up.clone(),
                notify_down: rs.notify_down.clone(),
                location: rs.location.clone(),
            });
        }

        let sorry_server = match vs.sorry {
            Some((sorry_addr, sorry_port, ref sorry_at)) => {
                let (forward, tunnel) = vs.sorry_forward.as_ref().map_or(default_forward, |f| f.0);
                let sorry_port =
                    self.real_port(forward, sorry_port, port, sorry_at, "sorry_server");
                self.check_family(&name, addr, sorry_addr, forward, sorry_at, "sorry_server");
                let mut inhibit = vs.sorry_inhibit.is_some();
                if let Some(rs) = reals
                    .iter()
                    .find(|r| r.spec.addr == sorry_addr && r.spec.port == sorry_port)
                    && rs.inhibit_on_failure != inhibit
                {
                    let message = format!(
                        "sorry_server {sorry_addr}:{sorry_port} is also a real_server with \
                         another inhibit_on_failure: keepalived uses the real server's"
                    );
                    self.report.note(sorry_at, message);
                    inhibit = rs.inhibit_on_failure;
                }
                Some(SorryServer {
                    spec: RealSpec {
                        addr: sorry_addr,
                        port: sorry_port,
                        forward,
                        weight: 1,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        tunnel,
                    },
                    inhibit,
                })
            }
            None => {
                for (keyword, location) in [
                    ("sorry_server_inhibit", vs.sorry_inhibit.as_ref()),
                    (
                        "sorry_server_lvs_method",
                        vs.sorry_forward.as_ref().map(|f| &f.1),
                    ),
                ] {
                    if let Some(location) = location {
                        let message = format!("{keyword} without a sorry_server");
                        self.report.error(ErrorKind::Invalid, location, message);
                    }
                }
                None
            }
        };

        let (quorum, hysteresis) = self.quorum(&vs, &reals, at);
        Some(VirtualServer {
            spec: ServiceSpec {
                addr: service,
                scheduler,
                persistence: persistence_timeout.map(|timeout| Persistence {
                    timeout,
                    netmask: granularity.unwrap_or(Netmask::host(addr)),
                }),
                sched_flags,
            },
            reals,
            sorry_server,
            quorum,
            hysteresis,
            quorum_up: vs.quorum_up,
            quorum_down: vs.quorum_down,
            delay_loop: vs.timing.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP),
            alpha: vs.alpha,
            omega: vs.omega,
            ha_suspend: vs.ha_suspend,
            group: None,
            location: at.clone(),
        })
    }

    /// IPVS takes a real server of the other family than its virtual server's only through a
    /// tunnel (Linux 3.18 and later); the kernel refuses the others.
    fn check_family(
        &mut self,
        name: &str,
        vip: IpAddr,
        real: IpAddr,
        forward: Forward,
        at: &Location,
        what: &str,
    ) {
        if vip.is_ipv6() != real.is_ipv6() && forward != Forward::Tunnel {
            let family = |a: IpAddr| if a.is_ipv6() { "IPv6" } else { "IPv4" };
            let message = format!(
                "{what} {real} is {} but {name} is {}: only lb_kind TUN forwards to the other \
                 family (IPVS refuses it for DR and NAT)",
                family(real),
                family(vip)
            );
            self.report.error(ErrorKind::Invalid, at, message);
        }
    }

    /// The port IPVS gets: DR and TUN cannot change the port, so keepalived resets a
    /// different one to the service's (with a warning); NAT without a port takes the service's.
    fn real_port(
        &mut self,
        forward: Forward,
        written: u16,
        service_port: u16,
        at: &Location,
        what: &str,
    ) -> u16 {
        if forward == Forward::Masq {
            return if written == 0 { service_port } else { written };
        }
        if written != 0 && written != service_port {
            let method = if forward == Forward::Route {
                "DR"
            } else {
                "TUN"
            };
            let message = format!(
                "{what} port {written} differs from the virtual server's {service_port}: with \
                 {method} the port cannot change, keepalived resets it to {service_port}"
            );
            self.report.note(at, message);
        }
        service_port
    }

    /// The `sh-*`, `mh-*` and `flag-N` keywords, checked against the scheduler (keepalived
    /// ignores the sh/mh ones with an error for other schedulers, and only if they come after
    /// `lb_algo`; lb does not mind the order).
    fn sched_flags(&mut self, scheduler: Scheduler, flags: &[(String, Location)]) -> SchedFlags {
        let mut out = SchedFlags::default();
        for (flag, at) in flags {
            let needs = match flag.as_str() {
                "sh-port" | "sh-fallback" => Some(Scheduler::Sh),
                "mh-port" | "mh-fallback" => Some(Scheduler::Mh),
                _ => None,
            };
            if let Some(needed) = needs
                && needed != scheduler
            {
                let message =
                    format!("{flag} only applies to the {needed} scheduler, not {scheduler}");
                self.report.error(ErrorKind::Invalid, at, message);
                continue;
            }
            match flag.as_str() {
                "flag-1" | "sh-fallback" | "mh-fallback" => out.fallback = true,
                "flag-2" | "sh-port" | "mh-port" => out.port = true,
                _ => out.flag3 = true,
            }
        }
        out
    }

    /// keepalived's corrections: a quorum above the real servers' total weight is lowered to
    /// it, a hysteresis not under the quorum is lowered to quorum - 1.
    fn quorum(&mut self, vs: &VsDraft, reals: &[RealServerConf], at: &Location) -> (u32, u32) {
        let total: u64 = reals.iter().map(|r| u64::from(r.spec.weight)).sum();
        let (mut quorum, quorum_at) = vs.quorum.clone().unwrap_or((1, at.clone()));
        if u64::from(quorum) > total {
            let lowered = u32::try_from(total).unwrap_or(u32::MAX);
            let message = format!(
                "quorum {quorum} exceeds the total weight of the real servers ({total}): \
                 keepalived lowers it to {lowered}"
            );
            self.report.note(&quorum_at, message);
            quorum = lowered;
        }
        let (mut hysteresis, hysteresis_at) = vs.hysteresis.clone().unwrap_or((0, at.clone()));
        if hysteresis > 0 && hysteresis >= quorum {
            let lowered = quorum.saturating_sub(1);
            let message = format!(
                "hysteresis {hysteresis} is not under the quorum {quorum}: keepalived lowers it \
                 to {lowered}"
            );
            self.report.note(&hysteresis_at, message);
            hysteresis = lowered;
        }
        (quorum, hysteresis)
    }

    // ---- real_server --------------------------------------------------------------------

    fn real_server(&mut self, stmt: &Stmt) -> Option<RsDraft> {
        let header = self.address_port(stmt, "real_server");
        let block = self.block(stmt)?;
        let (addr, port) = header.unwrap_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        let mut rs = RsDraft {
            addr,
            port,
            weight: None,
            forward: None,
            upper_threshold: 0,
            lower_threshold: 0,
            inhibit: None,
            alpha: None,
            notify_up: None,
            notify_down: None,
            timing: Timing::default(),
            virtualhost: None,
            checks: Vec::new(),
            location: stmt.location.clone(),
        };
        let mut seen = Seen::default();
        for s in block {
            seen.check(self.report, s);
            self.rs_keyword(s, &mut rs);
        }
        header.map(|_| rs)
    }

    fn rs_keyword(&mut self, s: &Stmt, rs: &mut RsDraft) {
        if self.timing(s, &mut rs.timing, 1) {
            return;
        }
        match s.keyword() {
            "weight" => {
                if let Some(n) = self.unsigned(s, 0, MAX_WEIGHT) {
                    rs.weight = Some(n);
                }
            }
            "lvs_method" => {
                if let Some(f) = self.forward(s) {
                    rs.forward = Some(f);
                }
            }
            "uthreshold" => {
                if let Some(n) = self.unsigned(s, 0, u32::MAX) {
                    rs.upper_threshold = n;
                }
            }
            "lthreshold" => {
                if let Some(n) = self.unsigned(s, 0, u32::MAX) {
                    rs.lower_threshold = n;
                }
            }
            "inhibit_on_failure" => {
                if let Some(b) = self.opt_bool(s) {
                    rs.inhibit = Some(b);
                }
            }
            "alpha" => {
                if let Some(b) = self.opt_bool(s) {
                    rs.alpha = Some(b);
                }
            }
            "notify_up" => self.once_script(s, &mut rs.notify_up),
            "notify_down" => self.once_script(s, &mut rs.notify_down),
            "virtualhost" => rs.virtualhost = self.string(s).or(rs.virtualhost.take()),
            "smtp_alert" => {
                if self.opt_bool(s).is_some() {
                    self.report
                        .note(&s.location, "smtp_alert ignored: lb sends no e-mail");
                }
            }
            "snmp_name" => {
                if self.value(s).is_some() {
                    self.report
                        .note(&s.location, "snmp_name ignored: lb has no SNMP agent");
                }
            }
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK" | "UDP_CHECK"
            | "DNS_CHECK" | "PING_CHECK" => {
                if let Some(check) = self.checker(s) {
                    rs.checks.push(check);
                }
            }
            keyword => match unsupported_checker(keyword) {
                Some(message) => self.error(ErrorKind::Unsupported, s, message),
                None => self.unknown(s),
            },
        }
    }

    // ---- checks -------------------------------------------------------------------------

    fn checker(&mut self, stmt: &Stmt) -> Option<CheckDraft> {
        let http = matches!(stmt.keyword(), "HTTP_GET" | "SSL_GET");
        let misc = stmt.keyword() == "MISC_CHECK";
        if !stmt.args().is_empty() {
            let message = format!("'{}' takes no value before its {{ }} block", stmt.keyword());
            self.error(ErrorKind::Syntax, stmt, message);
        }
        let block = self.block(stmt)?;
        let errors_before = self.report.errors.len();
        let mut check = CheckDraft {
            keyword: stmt.keyword().to_owned(),
            http: http.then(|| HttpDraft {
                tls: stmt.keyword() == "SSL_GET",
                ..HttpDraft::default()
            }),
            misc: misc.then(MiscDraft::default),
            other: match stmt.keyword() {
                "SMTP_CHECK" => Some(OtherDraft::Smtp { helo_name: None }),
                "UDP_CHECK" => Some(OtherDraft::Udp(UdpProbe {
                    max_reply_length: u16::from(u8::MAX),
                    ..UdpProbe::default()
                })),
                "DNS_CHECK" => Some(OtherDraft::Dns {
                    qtype: None,
                    name: None,
                }),
                "PING_CHECK" => Some(OtherDraft::Ping),
                _ => None,
            },
            connect_ip: None,
            connect_port: None,
            bindto: None,
            bind_port: None,
            timing: Timing::default(),
            alpha: None,
            log_all_failures: false,
            location: stmt.location.clone(),
        };
        let mut seen = Seen::default();
        for s in block {
            seen.check(self.report, s);
            self.check_keyword(s, &mut check);
        }
        // Unless a url was refused already: one error for one mistake.
        if let Some(h) = &check.http
            && h.urls.is_empty()
            && self.report.errors.len() == errors_before
        {
            let message = format!(
                "{} needs at least one url {{ path ... }} (keepalived would drop the check)",
                stmt.keyword()
            );
            self.error(ErrorKind::Invalid, stmt, message);
            return None;
        }
        if let Some(m) = &check.misc
            && m.script.is_none()
            && self.report.errors.len() == errors_before
        {
            let message = "MISC_CHECK needs a misc_path (keepalived would drop the check)";
            self.error(ErrorKind::Invalid, stmt, message);
            return None;
        }
        Some(check)
    }

    /// The keywords of SMTP_CHECK, UDP_CHECK, DNS_CHECK and PING_CHECK of their own; false if
    /// `s` is not one (then the common ones apply).
    fn other_keyword(&mut self, s: &Stmt, other: &mut OtherDraft) -> bool {
        match (other, s.keyword()) {
            // keepalived takes them (they are common to its checkers) and does nothing with
            // them: ICMP has no ports.
            (OtherDraft::Ping, keyword @ ("connect_port" | "bind_port")) => {
                if let Some(text) = self.value(s)
                    && self.problem(s, values::port(text, keyword)).is_some()
                {
                    self.report.note(
                        &s.location,
                        format!(
                            "{keyword} ignored in PING_CHECK, as by keepalived: ICMP has no ports"
                        ),
                    );
                }
            }
            (OtherDraft::Smtp { helo_name }, "helo_name") => {
                if let Some(name) = self.string(s) {
                    *helo_name = Some(name);
                }
            }
            (OtherDraft::Smtp { .. }, "host") => self.error(
                ErrorKind::Unsupported,
                s,
                "SMTP_CHECK host blocks are deprecated in keepalived and not supported by lb: \
                 write one SMTP_CHECK per host, with connect_ip and connect_port",
            ),
            (OtherDraft::Udp(udp), "payload") => {
                if let Some(args) = self.values(s, 1, usize::MAX)
                    && let Some((data, _)) = self.hex(s, &args.join(" "), false)
                {
                    udp.payload = Some(data);
                }
            }
            (OtherDraft::Udp(udp), "require_reply") => {
                if let Some(args) = self.values(s, 0, usize::MAX) {
                    udp.require_reply = true;
                    if !args.is_empty() {
                        udp.reply = self.hex(s, &args.join(" "), true);
                    }
                }
            }
            (OtherDraft::Udp(udp), "min_reply_length") => {
                if let Some(n) = self.unsigned(s, 0, u32::from(u16::MAX)) {
                    udp.min_reply_length = u16::try_from(n).unwrap_or(u16::MAX);
                }
            }
            (OtherDraft::Udp(udp), "max_reply_length") => {
                if let Some(n) = self.unsigned(s, 0, u32::from(u16::MAX)) {
                    udp.max_reply_length = u16::try_from(n).unwrap_or(u16::MAX);
                }
            }
            (OtherDraft::Dns { qtype, .. }, "type") => {
                if let Some(name) = self.value(s) {
                    match dns_type(name) {
                        Some(t) => *qtype = Some(t),
                        None => {
                            let message = format!(
                                "unknown DNS_CHECK type '{name}': expected A, NS, CNAME, SOA, MX, \
                                 TXT, AAAA, RRSIG or DNSKEY"
                            );
                            self.error(ErrorKind::Invalid, s, message);
                        }
                    }
                }
            }
            (OtherDraft::Dns { name, .. }, "name") => {
                if let Some(text) = self.value(s) {
                    // check_dns.c: no empty label.
                    let empty_label = (text.starts_with('.') && text != ".") || text.contains("..");
                    if empty_label {
                        let message = format!("DNS_CHECK name '{text}' has an empty label");
                        self.error(ErrorKind::Invalid, s, message);
                    } else {
                        *name = Some(text.to_owned());
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// keepalived's `read_hex_str`: hex digits in pairs (a lone digit is a byte of its own),
    /// blanks between bytes; with `wildcards`, an `X` digit matches anything (the mask).
    fn hex(&mut self, s: &Stmt, text: &str, wildcards: bool) -> Option<(Vec<u8>, Vec<u8>)> {
        match hex_bytes(text, wildcards) {
            Some(bytes) if !bytes.0.is_empty() => Some(bytes),
            _ => {
                let message = format!(
                    "invalid hex string '{text}' for {}: expected bytes like 0a 1b2c{}",
                    s.keyword(),
                    if wildcards { " (X for any digit)" } else { "" }
                );
                self.error(ErrorKind::Invalid, s, message);
                None
            }
        }
    }

    /// The keywords of a MISC_CHECK besides the timing ones.
    fn misc_keyword(&mut self, s: &Stmt, misc: &mut MiscDraft) {
        match s.keyword() {
            "misc_path" => {
                if let Some(line) = self.value(s) {
                    misc.script = self.words(s, line).or(misc.script.take());
                }
            }
            "misc_timeout" => {
                if let Some(n) = self.unsigned(s, 0, u32::MAX / 1_000_000) {
                    // keepalived: 0 means the default.
                    misc.timeout = (n > 0).then(|| Duration::from_secs(u64::from(n)));
                }
            }
            "misc_dynamic" => misc.dynamic |= self.flag(s),
            "user" => {
                if let Some(args) = self.values(s, 1, 2) {
                    misc.user = self.user(s, &args[0], args.get(1).map(String::as_str));
                }
            }
            "connect_ip" | "connect_port" | "bindto" | "bind_port" | "bind_if"
            | "connect_timeout" | "fwmark" => {
                let message = format!(
                    "{} does not apply to MISC_CHECK (its program does the connecting)",
                    s.keyword()
                );
                self.error(ErrorKind::Invalid, s, message);
            }
            _ => self.unknown(s),
        }
    }

    fn check_keyword(&mut self, s: &Stmt, check: &mut CheckDraft) {
        let misc_connect_timeout = check.misc.is_some() && s.keyword() == "connect_timeout";
        if !misc_connect_timeout && self.timing(s, &mut check.timing, 0) {
            return;
        }
        let keyword = s.keyword();
        if let Some(other) = &mut check.other
            && self.other_keyword(s, other)
        {
            return;
        }
        if let Some(misc) = &mut check.misc
            && !matches!(keyword, "alpha" | "log_all_failures")
        {
            let mut m = std::mem::take(misc);
            self.misc_keyword(s, &mut m);
            check.misc = Some(m);
            return;
        }
        match keyword {
            "connect_ip" => {
                if let Some(text) = self.value(s) {
                    check.connect_ip = self.problem(s, values::ip(text, "connect_ip"));
                }
            }
            "connect_port" => {
                if let Some(text) = self.value(s) {
                    check.connect_port = self.problem(s, values::port(text, "connect_port"));
                }
            }
            "bindto" => {
                if let Some(text) = self.value(s) {
                    check.bindto = self.problem(s, values::ip(text, "bindto"));
                }
            }
            "bind_port" => {
                if let Some(text) = self.value(s) {
                    check.bind_port = self.problem(s, values::port(text, "bind_port"));
                }
            }
            "bind_if" => self.error(
                ErrorKind::Unsupported,
                s,
                "bind_if is for IPv6 link-local addresses, which lb does not support",
            ),
            "fwmark" => self.error(
                ErrorKind::Unsupported,
                s,
                "marking health-check packets (fwmark) is not supported by lb",
            ),
            "alpha" => {
                if let Some(b) = self.opt_bool(s) {
                    check.alpha = Some(b);
                }
            }
            "log_all_failures" => {
                if let Some(b) = self.opt_bool(s) {
                    check.log_all_failures = b;
                }
            }
            "nb_get_retry" if check.http.is_some() => {
                if let Some(n) = self.unsigned(s, 0, u32::MAX) {
                    check.timing.retry = Some(n);
                    self.report.note(
                        &s.location,
                        "nb_get_retry is deprecated in keepalived: read as 'retry'",
                    );
                }
            }
            "virtualhost" | "http_protocol" | "fast_recovery" | "url" if check.http.is_some() => {
                let mut http = check.http.take().unwrap_or_default();
                self.http_keyword(s, &mut http);
                check.http = Some(http);
            }
            "enable_sni" | "sni_name" | "tls_compliant" if check.http.is_some() => {
                let message = match check.http.as_ref().is_some_and(|h| h.tls) {
                    true => format!("{keyword}: lb's SSL_GET sends no SNI and has no such setting"),
                    false => format!("{keyword} is a TLS setting, for SSL_GET"),
                };
                self.error(ErrorKind::Unsupported, s, message)
            }
            _ => self.unknown(s),
        }
    }

    fn http_keyword(&mut self, s: &Stmt, http: &mut HttpDraft) {
        match s.keyword() {
            "virtualhost" => http.virtualhost = self.string(s).or(http.virtualhost.take()),
            "http_protocol" => {
                if let Some(version) = self.value(s) {
                    http.protocol = match version {
                        "1.0" => HttpVersion::V1_0,
                        "1.0C" | "1.0c" => HttpVersion::V1_0Close,
                        "1.1" => HttpVersion::V1_1,
                        other => {
                            let message = format!(
                                "unknown http_protocol '{other}': expected 1.0, 1.0C or 1.1"
                            );
                            self.error(ErrorKind::Invalid, s, message);
                            return;
                        }
                    };
                }
            }
            "fast_recovery" => {
                if let Some(b) = self.opt_bool(s) {
                    http.fast_recovery = b;
                }
            }
            _ => {
                if let Some(url) = self.url(s) {
                    http.urls.push(url);
                }
            }
        }
    }

    fn url(&mut self, stmt: &Stmt) -> Option<UrlDraft> {
        if !stmt.args().is_empty() {
            self.error(
                ErrorKind::Syntax,
                stmt,
                "'url' takes no value before its { } block",
            );
        }
        let block = self.block(stmt)?;
        let errors_before = self.report.errors.len();
        let mut path = None;
        let mut status_codes = Vec::new();
        let mut virtualhost = None;
        let mut digest = None;
        let mut regex = RegexDraft::default();
        let mut seen = Seen::default();
        for s in block {
            seen.check(self.report, s);
            match s.keyword() {
                "path" => path = self.string(s).or(path),
                // keepalived adds up the codes of every status_code line.
                "status_code" => {
                    if let Some(args) = self.values(s, 1, usize::MAX) {
                        for arg in args {
                            match status_range(arg) {
                                Some(range) => status_codes.push(range),
                                None => {
                                    let message = format!(
                                        "invalid status_code '{arg}': expected a code or a \
                                         range like 200-299, within 100-599"
                                    );
                                    self.error(ErrorKind::Invalid, s, message);
                                }
                            }
                        }
                    }
                }
                "virtualhost" => virtualhost = self.string(s).or(virtualhost),
                "digest" => {
                    if let Some(text) = self.value(s) {
                        match md5_hex(text) {
                            Some(sum) => digest = Some(sum),
                            None => {
                                let message = format!(
                                    "invalid digest '{text}': expected an MD5 sum, 32 hex digits \
                                     (as genhash prints it)"
                                );
                                self.error(ErrorKind::Invalid, s, message);
                            }
                        }
                    }
                }
                "regex" | "regex_no_match" | "regex_options" | "regex_stack"
                | "regex_min_offset" | "regex_max_offset" => self.regex_keyword(s, &mut regex),
                "tls_compliant" => self.error(
                    ErrorKind::Unsupported,
                    s,
                    "tls_compliant: lb's SSL_GET has no such setting",
                ),
                _ => self.unknown(s),
            }
        }
        let regex = self.url_regex(regex);
        let Some(path) = path else {
            if self.report.errors.len() > errors_before {
                return None;
            }
            self.error(
                ErrorKind::Invalid,
                stmt,
                "url needs a path (keepalived would drop it)",
            );
            return None;
        };
        Some(UrlDraft {
            path,
            status_codes,
            virtualhost,
            digest,
            regex,
        })
    }

    /// check_http.c's `regex*` keywords. keepalived logs and ignores what is wrong with
    /// them (an unknown option, an offset that is no number); lb refuses it.
    fn regex_keyword(&mut self, s: &Stmt, regex: &mut RegexDraft) {
        let keyword = s.keyword();
        if keyword != "regex" && regex.first_setting.is_none() {
            regex.first_setting = Some(s.location.clone());
        }
        let offset = |text: &str| -> Result<usize, Problem> {
            text.parse::<usize>().map_err(|_| {
                let message = format!("invalid {keyword} '{text}': expected a byte offset");
                (ErrorKind::Invalid, message)
            })
        };
        match keyword {
            "regex" => {
                if let Some(pattern) = self.value(s) {
                    regex.pattern = Some((pattern.to_owned(), s.location.clone()));
                }
            }
            "regex_no_match" => regex.no_match |= self.flag(s),
            "regex_options" => {
                if let Some(words) = self.values(s, 1, usize::MAX) {
                    for word in words {
                        match body_regex::check_option(word) {
                            Ok(()) => regex.options.push(word.clone()),
                            Err(message) => self.error(ErrorKind::Unsupported, s, message),
                        }
                    }
                }
            }
            "regex_min_offset" => {
                if let Some(text) = self.value(s) {
                    regex.min_offset = self.problem(s, offset(text)).or(regex.min_offset);
                }
            }
            "regex_max_offset" => {
                if let Some(text) = self.value(s) {
                    regex.max_offset = self.problem(s, offset(text)).or(regex.max_offset);
                }
            }
            // regex_stack START MAX: the size of PCRE2's JIT stack.
            _ => {
                if let Some([start, max]) = self.values(s, 2, 2) {
                    match (start.parse::<u64>(), max.parse::<u64>()) {
                        (Ok(start), Ok(max)) if start <= max => self.report.note(
                            &s.location,
                            "regex_stack ignored: lb's regex engine (the regex crate) does not \
                             backtrack and has no JIT stack to size",
                        ),
                        _ => {
                            let message = format!(
                                "invalid regex_stack '{start} {max}': expected a start and a \
                                 maximum size, the start not above the maximum"
                            );
                            self.error(ErrorKind::Invalid, s, message);
                        }
                    }
                }
            }
        }
    }

    /// The url's regex, compiled; errors at the `regex` line (or the first setting's).
    fn url_regex(&mut self, draft: RegexDraft) -> Option<BodyRegex> {
        let Some((pattern, at)) = draft.pattern else {
            if let Some(at) = draft.first_setting {
                self.report.error(
                    ErrorKind::Invalid,
                    &at,
                    "regex settings without a regex (keepalived would ignore them): add the \
                     url's regex, or remove them",
                );
            }
            return None;
        };
        let (min, max) = (draft.min_offset.unwrap_or(0), draft.max_offset);
        if let Some(max) = max
            && min > max
        {
            let message = format!(
                "regex_min_offset {min} is above regex_max_offset {max} (keepalived would \
                 ignore both)"
            );
            self.report.error(ErrorKind::Invalid, &at, message);
            return None;
        }
        match BodyRegex::new(&pattern, &draft.options, draft.no_match, min, max) {
            Ok(regex) => Some(regex),
            Err(message) => {
                let message = format!(
                    "{message} (lb matches with the regex crate: backreferences, lookaround, \
                     atomic groups and possessive quantifiers are not available)"
                );
                self.report.error(ErrorKind::Unsupported, &at, message);
                None
            }
        }
    }

    /// A check with its settings inherited from the real and virtual servers
    /// (`validate_check_config`).
    fn finish_check(
        &mut self,
        check: &CheckDraft,
        rs: &RsDraft,
        vs: &VsDraft,
    ) -> Option<HealthCheck> {
        let timing = check.timing.or(&rs.timing).or(&vs.timing);
        let ping = matches!(check.other, Some(OtherDraft::Ping));
        let port = match ping {
            true => 0,
            false => check.connect_port.unwrap_or(rs.port),
        };
        if port == 0 && check.misc.is_none() && !ping {
            let message = format!(
                "{} has no port to connect to: real_server {} has none; give the real_server a \
                 port or the check a connect_port",
                check.keyword, rs.addr
            );
            self.report
                .error(ErrorKind::Invalid, &check.location, message);
            return None;
        }
        let delay_loop = timing.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
        let kind = match (&check.http, &check.misc) {
            (None, Some(misc)) => CheckKind::Misc(MiscCheck {
                script: ScriptSpec {
                    argv: misc.script.clone().unwrap_or_default(),
                    uid: misc.user.or(self.script_user).map(|i| i.0),
                    gid: misc.user.or(self.script_user).map(|i| i.1),
                },
                // check_misc.c: the virtual server's delay_loop, not the check's.
                timeout: misc
                    .timeout
                    .unwrap_or(vs.timing.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP)),
                dynamic: misc.dynamic,
            }),
            (None, None) => match &check.other {
                None => CheckKind::Tcp,
                Some(OtherDraft::Smtp { helo_name }) => CheckKind::Smtp {
                    helo_name: helo_name
                        .clone()
                        .unwrap_or_else(|| "smtpchecker.keepalived.org".to_owned()),
                },
                Some(OtherDraft::Udp(udp)) => {
                    if udp.min_reply_length > udp.max_reply_length {
                        let message = format!(
                            "UDP_CHECK min_reply_length {} is above max_reply_length {}: the \
                             check would always fail",
                            udp.min_reply_length, udp.max_reply_length
                        );
                        self.report
                            .error(ErrorKind::Invalid, &check.location, message);
                    }
                    CheckKind::Udp(udp.clone())
                }
                Some(OtherDraft::Dns { qtype, name }) => CheckKind::Dns(DnsProbe {
                    qtype: qtype.unwrap_or(6),
                    name: name.clone().unwrap_or_else(|| ".".to_owned()),
                }),
                Some(OtherDraft::Ping) => CheckKind::Ping,
            },
            (Some(http), _) => {
                let outer_host = http
                    .virtualhost
                    .as_ref()
                    .or(rs.virtualhost.as_ref())
                    .or(vs.virtualhost.as_ref());
                CheckKind::Http(HttpGet {
                    urls: http
                        .urls
                        .iter()
                        .map(|u| HttpUrl {
                            path: u.path.clone(),
                            status_codes: if u.status_codes.is_empty() {
                                StatusCodes::success()
                            } else {
                                StatusCodes(u.status_codes.clone())
                            },
                            virtualhost: u.virtualhost.as_ref().or(outer_host).cloned(),
                            digest: u.digest,
                            regex: u.regex.clone(),
                        })
                        .collect(),
                    protocol: http.protocol,
                    fast_recovery: http.fast_recovery,
                    tls: http.tls,
                    client_cert: self.client_cert.clone().filter(|_| http.tls),
                })
            }
        };
        let default_delay_before_retry = match kind {
            CheckKind::Http(_) => Duration::from_secs(3),
            // dns_check_handler(): delay_loop.
            CheckKind::Dns(_) => delay_loop,
            _ => Duration::from_secs(1),
        };
        // MISC_CHECK's default retry is 0 (misc_check_handler), DNS_CHECK's 3, the others' 1.
        let default_retry = match kind {
            CheckKind::Misc(_) => 0,
            CheckKind::Dns(_) => 3,
            _ => 1,
        };
        let addr = check.connect_ip.unwrap_or(rs.addr);
        if let Some(bindto) = check.bindto
            && bindto.is_ipv6() != addr.is_ipv6()
        {
            let message = format!(
                "bindto {bindto} is not of the family of the address checked ({addr}): a check \
                 connects from an address of its target's family"
            );
            self.report
                .error(ErrorKind::Invalid, &check.location, message);
        }
        Some(HealthCheck {
            kind,
            addr,
            port,
            bindto: check.bindto,
            bind_port: check.bind_port,
            connect_timeout: timing.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            retry: timing.retry.unwrap_or(default_retry),
            delay_before_retry: timing
                .delay_before_retry
                .unwrap_or(default_delay_before_retry),
            delay_loop,
            warmup: timing.warmup.unwrap_or(delay_loop),
            alpha: check.alpha.or(rs.alpha).unwrap_or(vs.alpha),
            // check_api.c: the global setting or the check's.
            log_all_failures: check.log_all_failures || self.log_all_failures,
            location: check.location.clone(),
        })
    }
}

/// An MD5 sum in hex (`digest_handler`: exactly 32 digits).
fn md5_hex(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut sum = [0u8; 16];
    for (i, byte) in sum.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(sum)
}

/// The first and last address of a virtual_server_group entry's address part, as numbers,
/// and whether they are IPv6 addresses.
fn group_range(text: &str) -> Result<(u128, u128, bool), Problem> {
    if text.contains(':') {
        return group_range6(text);
    }
    let what = "virtual_server_group address";
    if let Some((addr, bits)) = text.split_once('/') {
        let base = u32::from(values::ipv4(addr, what)?);
        let bits: u32 = match bits.parse() {
            Ok(b) if (1..=32).contains(&b) => b,
            _ => return Err((ErrorKind::Invalid, format!("invalid netmask in '{text}'"))),
        };
        let host = if bits == 32 { 0 } else { u32::MAX >> bits };
        if base & host != 0 {
            let message = format!("'{text}': the address has bits set past the netmask");
            return Err((ErrorKind::Invalid, message));
        }
        return Ok((base.into(), (base | host).into(), false));
    }
    let Some((start, end)) = text.split_once('-') else {
        let a = u32::from(values::ipv4(text, what)?);
        return Ok((a.into(), a.into(), false));
    };
    let first = u32::from(values::ipv4(start, what)?);
    let last = if end.contains('.') {
        u32::from(values::ipv4(end, what)?)
    } else {
        // keepalived's inet_stor: the end of a range of the last byte.
        match end.parse::<u8>() {
            Ok(n) => (first & !0xff) | u32::from(n),
            Err(_) => return Err((ErrorKind::Invalid, format!("invalid range end in '{text}'"))),
        }
    };
    if last < first {
        let message = format!("'{text}': the range ends before it starts");
        return Err((ErrorKind::Invalid, message));
    }
    Ok((first.into(), last.into(), false))
}

/// [`group_range`] of an IPv6 entry: an address, a network (`2001:db8::/126`), or a range
/// of the last 16 bits whose end is hexadecimal (`2001:db8::1-a`: keepalived's `inet_stor`
/// reads it with `strtoul(.., 16)` and refuses more than 0xffff; IPVS's wrapper then walks
/// the address's last 16-bit group).
fn group_range6(text: &str) -> Result<(u128, u128, bool), Problem> {
    let what = "virtual_server_group address";
    let ipv6 = |t: &str| -> Result<u128, Problem> {
        match values::ip(t, what)? {
            IpAddr::V6(a) => Ok(u128::from(a)),
            IpAddr::V4(_) => Err((
                ErrorKind::Invalid,
                format!("invalid {what} '{t}': not an IPv6 address"),
            )),
        }
    };
    if let Some((addr, bits)) = text.split_once('/') {
        let base = ipv6(addr)?;
        let bits: u32 = match bits.parse() {
            Ok(b) if (1..=128).contains(&b) => b,
            _ => return Err((ErrorKind::Invalid, format!("invalid netmask in '{text}'"))),
        };
        let host = if bits == 128 { 0 } else { u128::MAX >> bits };
        if base & host != 0 {
            let message = format!("'{text}': the address has bits set past the netmask");
            return Err((ErrorKind::Invalid, message));
        }
        return Ok((base, base | host, true));
    }
    let Some((start, end)) = text.split_once('-') else {
        let a = ipv6(text)?;
        return Ok((a, a, true));
    };
    let first = ipv6(start)?;
    let last = match u16::from_str_radix(end, 16) {
        Ok(n) => (first & !0xffff) | u128::from(n),
        Err(_) => {
            let message = format!(
                "invalid range end in '{text}': the last 16 bits' end, in hexadecimal (0-ffff)"
            );
            return Err((ErrorKind::Invalid, message));
        }
    };
    if last < first {
        let message = format!("'{text}': the range ends before it starts");
        return Err((ErrorKind::Invalid, message));
    }
    Ok((first, last, true))
}

/// check_dns.c's query types.
fn dns_type(name: &str) -> Option<u16> {
    const TYPES: &[(&str, u16)] = &[
        ("A", 1),
        ("NS", 2),
        ("CNAME", 5),
        ("SOA", 6),
        ("MX", 15),
        ("TXT", 16),
        ("AAAA", 28),
        ("RRSIG", 46),
        ("DNSKEY", 48),
    ];
    TYPES
        .iter()
        .find(|(label, _)| label.eq_ignore_ascii_case(name))
        .map(|&(_, t)| t)
}

/// The bytes of keepalived's hex strings, and the wildcard mask (`X` digits).
fn hex_bytes(text: &str, wildcards: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let digit = |c: char| -> Option<(u8, u8)> {
        match c {
            'X' | 'x' if wildcards => Some((0, 0x0f)),
            _ => c.to_digit(16).map(|d| (d as u8, 0)),
        }
    };
    let (mut data, mut mask) = (Vec::new(), Vec::new());
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(first) = chars.next() else { break };
        let (mut value, mut m) = digit(first)?;
        if let Some(&next) = chars.peek()
            && next != ' '
            && next != '\t'
        {
            chars.next();
            let (low, low_mask) = digit(next)?;
            value = value << 4 | low;
            m = m << 4 | low_mask;
        }
        data.push(value);
        mask.push(m);
    }
    Some((data, mask))
}

/// `200` or `200-299`, within 100-599.
fn status_range(text: &str) -> Option<(u16, u16)> {
    let code = |t: &str| {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u16>().ok())
            .flatten()
            .filter(|c| (100..=599).contains(c))
    };
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (code(lo)?, code(hi)?),
        None => (code(text)?, code(text)?),
    };
    (lo <= hi).then_some((lo, hi))
}

/// keepalived's tunnel options after `TUN`, checked as IPVS (ipvsadm's `tunnel_opt_check`)
/// would: a port only, and always, for GUE; a checksum option for GUE and GRE, at most one,
/// `remcsum` for GUE only.
fn tunnel_options(options: &[String]) -> Result<Tunnel, (ErrorKind, String)> {
    let mut tunnel = Tunnel::default();
    let (mut port, mut csum): (Option<u16>, Option<&str>) = (None, None);
    let mut i = 0;
    while i < options.len() {
        let value = options.get(i + 1).map(String::as_str);
        match (options[i].as_str(), value) {
            ("type", Some(name)) => {
                tunnel.kind = TunnelType::from_name(name).ok_or_else(|| {
                    (
                        ErrorKind::Invalid,
                        format!("unknown tunnel type '{name}': expected ipip, gue or gre"),
                    )
                })?;
                i += 1;
            }
            ("port", Some(value)) => {
                let number = value
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| {
                        (
                            ErrorKind::Invalid,
                            format!("Invalid gue tunnel port {value}: expected 1-65535"),
                        )
                    })?;
                port = Some(number);
                i += 1;
            }
            (keyword @ ("type" | "port"), None) => {
                return Err((ErrorKind::Syntax, format!("'{keyword}' needs a value")));
            }
            (word @ ("nocsum" | "csum" | "remcsum"), _) => {
                if let Some(first) = csum {
                    return Err((
                        ErrorKind::Invalid,
                        format!("'{word}' conflicts with '{first}': give one checksum option"),
                    ));
                }
                csum = Some(word);
            }
            (other, _) => {
                return Err((
                    ErrorKind::Invalid,
                    format!("unknown tunnel option '{other}'"),
                ));
            }
        }
        i += 1;
    }
    let kind = tunnel.kind.name();
    match (tunnel.kind, port) {
        // keepalived's words (check_parser.c).
        (TunnelType::Gue, None) | (TunnelType::Ipip | TunnelType::Gre, Some(_)) => {
            return Err((
                ErrorKind::Invalid,
                "gue tunnels require port, otherwise cannot have port".to_owned(),
            ));
        }
        (TunnelType::Gue, Some(port)) => tunnel.port = port,
        (_, None) => {}
    }
    tunnel.csum = match (tunnel.kind, csum) {
        // keepalived has always taken `nocsum` after any type (the default).
        (_, None | Some("nocsum")) => TunnelCsum::Nocsum,
        (TunnelType::Gue | TunnelType::Gre, Some("csum")) => TunnelCsum::Csum,
        (TunnelType::Gue, Some("remcsum")) => TunnelCsum::Remcsum,
        (TunnelType::Ipip, Some(_)) => {
            return Err((
                ErrorKind::Invalid,
                "ipip tunnels do not support checksum option".to_owned(),
            ));
        }
        (_, Some(word)) => {
            return Err((
                ErrorKind::Invalid,
                format!("{kind} tunnels do not support the {word} option"),
            ));
        }
    };
    Ok(tunnel)
}
