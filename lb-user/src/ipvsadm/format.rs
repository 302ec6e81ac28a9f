//! ipvsadm's output, byte for byte: the `-L` table in all its variants, the `-S` rules, the
//! `-L -c` connection table and `-L --timeout`. The column widths, paddings (including the
//! trailing blanks of the `-L` rows) and number abbreviations are ipvsadm's `printf` formats;
//! scripts that cut or awk its output keep working.

use std::{fmt::Write as _, net::IpAddr};

use super::{error::CliError, names::Names, parse::ListOptions};
use crate::model::{
    ConnectionStatus, Forward, Protocol, RealSpec, RealStatus, SchedFlags, Scheduler, ServiceAddr,
    ServiceStatus, Snapshot, Timeouts,
};

/// The IPVS version ipvsadm reports from the kernel; every kernel since 2.6.x says 1.2.1.
pub const IPVS_VERSION: &str = "1.2.1";

/// ipvsadm cuts `PROT host:port` of an IPv4 service to this many bytes in listings (names can
/// be long); IPv6 ones it prints whole.
const SERVICE_NAME_WIDTH: usize = 33;
/// ... and an IPv4 real server's `host:port` to this many (IPv6 ones whole, again).
const REAL_NAME_WIDTH: usize = 28;

/// `-L` / `-l` of the service table: everything, or only `opts.service` (then without the
/// version header, as ipvsadm). Fails like ipvsadm when that service does not exist.
pub fn format_list(
    snapshot: &Snapshot,
    opts: &ListOptions,
    names: &dyn Names,
) -> Result<String, CliError> {
    let mut out = String::new();
    let style = Style::of(opts);
    if let Some(addr) = opts.service {
        let service = snapshot
            .services
            .iter()
            .find(|s| s.spec.addr == addr)
            .ok_or_else(|| CliError::ListFailed("No such service".to_owned()))?;
        out.push_str(&title(style));
        service_rows(&mut out, service, style, opts, names);
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "IP Virtual Server version {IPVS_VERSION} (size={})",
        snapshot.conn_table_size
    );
    out.push_str(&title(style));
    for service in sorted_services(snapshot, opts.nosort) {
        service_rows(&mut out, service, style, opts, names);
    }
    Ok(out)
}

/// `-S` (`numeric` for `-Sn`): the rules as `-A`/`-a` lines that `-R` reads back.
///
/// Tunnel real servers get ipvsadm 1.31's `--tun-type ipip`. Two differences from ipvsadm,
/// both so that saving and restoring loses nothing: real-server thresholds are written
/// (`-x`/`-y`, only when set, so the usual output is ipvsadm's), and a generic `flag-3` is
/// written for `sh`/`mh` services instead of nothing.
pub fn format_save(snapshot: &Snapshot, numeric: bool, names: &dyn Names) -> String {
    let mut out = String::new();
    for service in sorted_services(snapshot, false) {
        let spec = &service.spec;
        let svc = format!(
            "{} {}",
            spec.addr.protocol.flag(),
            host_port(
                spec.addr.addr,
                spec.addr.port,
                spec.addr.protocol,
                numeric,
                names
            )
        );
        let _ = write!(out, "-A {svc} -s {}", spec.scheduler);
        if let Some(p) = spec.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            // A mask for IPv4 services, a prefix length for IPv6 ones (`-M 64`).
            if !p.netmask.is_host() {
                let _ = write!(out, " -M {}", p.netmask);
            }
        }
        if any_flag(spec.sched_flags) {
            let _ = write!(
                out,
                " -b {}",
                save_sched_flags(spec.scheduler, spec.sched_flags)
            );
        }
        out.push('\n');
        for real in sorted_reals(service, false) {
            let r = &real.spec;
            let _ = write!(
                out,
                "-a {svc} -r {} {} -w {}",
                host_port(r.addr, r.port, spec.addr.protocol, numeric, names),
                r.forward.flag(),
                r.weight
            );
            // ipvsadm 1.31's print_tunnel_rule(): a tunnel's type and its options.
            if r.forward == Forward::Tunnel {
                out.push_str(&r.tunnel.save_options());
            }
            if r.upper_threshold != 0 {
                let _ = write!(out, " -x {}", r.upper_threshold);
            }
            if r.lower_threshold != 0 {
                let _ = write!(out, " -y {}", r.lower_threshold);
            }
            out.push('\n');
        }
    }
    out
}

/// `-L -c`: the connection table, in the order given (ipvsadm prints the kernel's order).
/// With `--persistent-conn` the header has the persistence-engine columns; lb has no engines,
/// so rows never carry them, as ipvsadm's rows without engine data.
pub fn format_connections(
    connections: &[ConnectionStatus],
    opts: &ListOptions,
    names: &dyn Names,
) -> String {
    let mut out = String::from("IPVS connection entries\n");
    // ipvsadm pads the header with the row widths.
    if opts.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in connections {
        let name =
            |(addr, port): (IpAddr, u16)| host_port(addr, port, c.protocol, opts.numeric, names);
        let expire = format!("{:02}:{:02}", c.expires_in / 60, c.expires_in % 60);
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.protocol.label(),
            expire,
            c.state,
            name(c.client),
            name(c.virtual_addr),
            name(c.real)
        );
    }
    out
}

/// `-L --timeout`.
pub fn format_timeouts(timeouts: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        timeouts.tcp, timeouts.tcp_fin, timeouts.udp
    )
}

/// `-L --daemon`: one line per running sync daemon, master first (ipvsadm's `list_daemon`).
pub fn format_daemon(daemons: &crate::sync::SyncDaemons) -> String {
    crate::sync::format_daemons(daemons)
}

/// Which `-L` layout, in ipvsadm's order of precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
    Plain,
}

impl Style {
    fn of(opts: &ListOptions) -> Style {
        if opts.stats {
            Style::Stats
        } else if opts.rate {
            Style::Rate
        } else if opts.thresholds {
            Style::Thresholds
        } else if opts.persistent_conn {
            Style::PersistentConn
        } else if opts.tun_info {
            Style::TunInfo
        } else {
            Style::Plain
        }
    }
}

/// ipvsadm's `print_title`, with its printf widths.
fn title(style: Style) -> String {
    const PROT: &str = "Prot LocalAddress:Port";
    const REAL: &str = "  -> RemoteAddress:Port";
    match style {
        Style::Stats => format!(
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REAL}\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Style::Rate => format!(
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REAL}\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        Style::Thresholds => format!(
            "{PROT:<33} {:<10} {:<10} {:<10} {:<10}\n{REAL}\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        Style::PersistentConn => format!(
            "{PROT:<33} {:<9} {:<11} {:<10} {:<10}\n{REAL}\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        Style::TunInfo => format!(
            "{PROT} Scheduler Flags\n{REAL}           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        ),
        Style::Plain => format!(
            "{PROT} Scheduler Flags\n{REAL}           Forward Weight ActiveConn InActConn\n"
        ),
    }
}

/// One service's line and its real servers' lines.
fn service_rows(
    out: &mut String,
    service: &ServiceStatus,
    style: Style,
    opts: &ListOptions,
    names: &dyn Names,
) {
    let spec = &service.spec;
    let addr = spec.addr;
    let mut svc = format!(
        "{:<4} {}",
        addr.protocol.label(),
        host_port(addr.addr, addr.port, addr.protocol, opts.numeric, names)
    );
    if addr.addr.is_ipv4() {
        truncate(&mut svc, SERVICE_NAME_WIDTH);
    }
    match style {
        Style::Stats => {
            let s = &service.stats;
            let _ = write!(out, "{svc:<33}");
            for n in [s.conns, s.in_pkts, s.out_pkts, s.in_bytes, s.out_bytes] {
                large_number(out, n, opts.exact);
            }
        }
        Style::Rate => {
            let r = &service.rates;
            let _ = write!(out, "{svc:<33}");
            for n in [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps] {
                large_number(out, n, opts.exact);
            }
        }
        _ => {
            let _ = write!(out, "{svc} {}", spec.scheduler);
            if any_flag(spec.sched_flags) {
                let _ = write!(
                    out,
                    " ({})",
                    list_sched_flags(spec.scheduler, spec.sched_flags)
                );
            }
            if let Some(p) = spec.persistence {
                let _ = write!(out, " persistent {}", p.timeout);
                if !p.netmask.is_host() {
                    let _ = write!(out, " mask {}", p.netmask);
                }
            }
        }
    }
    out.push('\n');

    for real in sorted_reals(service, opts.nosort) {
        let r = &real.spec;
        let mut dest = host_port(r.addr, r.port, addr.protocol, opts.numeric, names);
        if r.addr.is_ipv4() {
            truncate(&mut dest, REAL_NAME_WIDTH);
        }
        let _ = write!(out, "  -> {dest:<28}");
        match style {
            Style::Stats => {
                let s = &real.stats;
                for n in [s.conns, s.in_pkts, s.out_pkts, s.in_bytes, s.out_bytes] {
                    large_number(out, n, opts.exact);
                }
            }
            Style::Rate => {
                // ipvsadm prints the per-second counts of real servers in full.
                let r = &real.rates;
                let _ = write!(out, " {:>8} {:>8} {:>8}", r.cps, r.in_pps, r.out_pps);
                large_number(out, r.in_bps, opts.exact);
                large_number(out, r.out_bps, opts.exact);
            }
            Style::Thresholds => {
                let _ = write!(
                    out,
                    " {:<10} {:<10} {:<10} {:<10}",
                    r.upper_threshold, r.lower_threshold, real.active_conns, real.inactive_conns
                );
            }
            Style::PersistentConn => {
                let _ = write!(
                    out,
                    " {:<9} {:<11} {:<10} {:<10}",
                    r.weight, real.persistent_conns, real.active_conns, real.inactive_conns
                );
            }
            Style::TunInfo => {
                let info = if r.forward == Forward::Tunnel {
                    r.tunnel.info()
                } else {
                    "n/a".to_owned()
                };
                let _ = write!(
                    out,
                    " {:<7} {:<13} {:<6} {:<10} {:<10}",
                    r.forward.label(),
                    info,
                    r.weight,
                    real.active_conns,
                    real.inactive_conns
                );
            }
            Style::Plain => {
                let _ = write!(
                    out,
                    " {:<7} {:<6} {:<10} {:<10}",
                    r.forward.label(),
                    r.weight,
                    real.active_conns,
                    real.inactive_conns
                );
            }
        }
        out.push('\n');
    }
}

/// ipvsadm's `print_largenum`: nine columns, abbreviated with K/M/G/T above 99,999,999 unless
/// `--exact`, which widens the column for longer numbers instead.
fn large_number(out: &mut String, n: u64, exact: bool) {
    let _ = if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        write!(out, "{digits:>width$}")
    } else if n < 100_000_000 {
        write!(out, "{n:>9}")
    } else if n < 1_000_000_000 {
        write!(out, "{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        write!(out, "{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        write!(out, "{:>8}G", n / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", n / 1_000_000_000_000)
    };
}

fn any_flag(flags: SchedFlags) -> bool {
    flags.fallback || flags.port || flags.flag3
}

/// ipvsadm's `print_sched_flags` for `-L`: `sh`/`mh` name their own two flags (and show
/// nothing for the third), other schedulers get the generic names.
fn list_sched_flags(scheduler: Scheduler, flags: SchedFlags) -> String {
    let hide_flag3 = matches!(scheduler, Scheduler::Sh | Scheduler::Mh);
    flags
        .names(scheduler)
        .into_iter()
        .filter(|name| !(hide_flag3 && *name == "flag-3"))
        .collect::<Vec<_>>()
        .join(",")
}

/// As [`list_sched_flags`], but never drops a flag, so that `-R` restores it.
fn save_sched_flags(scheduler: Scheduler, flags: SchedFlags) -> String {
    flags.names(scheduler).join(",")
}

/// ipvsadm's `addrport_to_anyname`: `host:port`, with names unless `numeric`; IPv6 hosts (names
/// too) in brackets.
fn host_port(
    addr: IpAddr,
    port: u16,
    protocol: Protocol,
    numeric: bool,
    names: &dyn Names,
) -> String {
    let (open, close) = if addr.is_ipv6() { ("[", "]") } else { ("", "") };
    if numeric {
        return format!("{open}{addr}{close}:{port}");
    }
    let host = names.host_name(addr).unwrap_or_else(|| addr.to_string());
    let port = names
        .service_name(port, protocol)
        .unwrap_or_else(|| port.to_string());
    format!("{open}{host}{close}:{port}")
}

/// Cuts to at most `max` bytes (on a character boundary: names may not be ASCII).
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// An address as libipvs sees it in its `nf_inet_addr` union, four words in host order: an
/// IPv4 address is the first word, the others zero.
fn host_words(addr: IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(v4) => [u32::from(v4), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// `ntohl(a) - ntohl(b)` as libipvs computes it: the difference of the addresses wraps into a
/// signed 32-bit int, so two addresses more than 2^31 apart compare the "wrong" way round:
/// 192.168.0.1 sorts before 10.0.0.1. IPv6 addresses (by `a`'s family, as libipvs decides)
/// compare word by word that way, IPv4 ones by their one word.
fn address_difference(a: IpAddr, b: IpAddr) -> i32 {
    let (a_words, b_words) = (host_words(a), host_words(b));
    let words = if a.is_ipv6() { 4 } else { 1 };
    a_words[..words]
        .iter()
        .zip(&b_words[..words])
        .map(|(x, y)| x.wrapping_sub(*y) as i32)
        .find(|&d| d != 0)
        .unwrap_or(0)
}

/// libipvs' `ipvs_cmp_services`: family (IPv4 first), protocol number, then address (as
/// above), then port.
fn compare_services(a: &ServiceAddr, b: &ServiceAddr) -> i32 {
    let by_family = i32::from(a.family()) - i32::from(b.family());
    if by_family != 0 {
        return by_family;
    }
    let by_protocol = i32::from(a.protocol.number()) - i32::from(b.protocol.number());
    if by_protocol != 0 {
        return by_protocol;
    }
    match address_difference(a.addr, b.addr) {
        0 => i32::from(a.port) - i32::from(b.port),
        by_address => by_address,
    }
}

/// libipvs' `ipvs_cmp_dests`: address (as above, so a tunnel service's real servers of both
/// families compare by the first one's family), then port.
fn compare_reals(a: &RealSpec, b: &RealSpec) -> i32 {
    match address_difference(a.addr, b.addr) {
        0 => i32::from(a.port) - i32::from(b.port),
        by_address => by_address,
    }
}

/// glibc's `qsort` (`msort_with_tmp`: a stable top-down merge sort), with a comparison in C's
/// style. The comparisons above are not a total order when addresses span more than half of
/// the address space (10.x < 100.x < 192.168.x < 10.x), so the result then depends on the
/// algorithm and the input order, as with ipvsadm; Rust's own sorts may panic on such an
/// order, this one never does.
fn glibc_qsort<T: Copy>(v: &mut [T], compare: &impl Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    glibc_qsort(&mut v[..n1], compare);
    glibc_qsort(&mut v[n1..], compare);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if compare(&v[i], &v[j]) <= 0 {
            merged.push(v[i]);
            i += 1;
        } else {
            merged.push(v[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    let done = merged.len();
    v[..done].copy_from_slice(&merged);
}

/// Services as ipvsadm lists them: sorted with `ipvs_sort_services` unless `--nosort`.
fn sorted_services(snapshot: &Snapshot, nosort: bool) -> Vec<&ServiceStatus> {
    let mut services: Vec<&ServiceStatus> = snapshot.services.iter().collect();
    if !nosort {
        glibc_qsort(&mut services, &|a, b| {
            compare_services(&a.spec.addr, &b.spec.addr)
        });
    }
    services
}

/// Real servers as ipvsadm lists them: IPVS keeps them newest first (that is `--nosort`'s
/// order), then `ipvs_sort_dests` sorts them.
fn sorted_reals(service: &ServiceStatus, nosort: bool) -> Vec<&RealStatus> {
    let mut reals: Vec<&RealStatus> = service.reals.iter().rev().collect();
    if !nosort {
        glibc_qsort(&mut reals, &|a, b| compare_reals(&a.spec, &b.spec));
    }
    reals
}

#[cfg(test)]
mod tests;
