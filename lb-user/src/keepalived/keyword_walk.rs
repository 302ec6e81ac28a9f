//! Every keyword the reader accepts either changes the configuration lb runs, or is refused at
//! its line, or is noted at its line as left aside (with the reason): none is silently ignored.
//!
//! The walk has two halves. [`every_keyword_in_the_reader_is_walked`] reads the reader's own
//! source (`lvs.rs`) for the keywords its `match` arms accept, and fails on any missing from
//! [`WALK`]; [`every_keyword_has_an_effect_or_is_refused_or_noted`] then puts each keyword of
//! [`WALK`] in a minimal file and compares the outcome with the same file without it. That the
//! health checker and lbd act on every field of the configuration is tested where they are
//! (`health`, `managed`).

use super::{ConfigErrors, LvsConfig, files::mem::MemFiles, parse_with};

/// What a keyword does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// The configuration differs.
    Applied,
    /// Refused with an error at its line.
    Refused,
    /// Accepted, and a note at its line says it is left aside and why.
    Noted,
}
use Fate::*;

/// Where a keyword goes in [`TEMPLATE`].
const VS: &str = "@VS@";
const RS: &str = "@RS@";
const TCP: &str = "@TCP@";
const HTTP: &str = "@HTTP@";
const URL: &str = "@URL@";
const MISC: &str = "@MISC@";
const SMTP: &str = "@SMTP@";
const UDP: &str = "@UDP@";
const DNS: &str = "@DNS@";
const PING: &str = "@PING@";
const GLOBAL: &str = "@GLOBAL@";
const ROOT: &str = "@ROOT@";

const TEMPLATE: &str = "virtual_server 10.0.0.1 80 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    weight 5
    @VS@
    real_server 10.0.0.11 80 {
        @RS@
        TCP_CHECK {
            @TCP@
        }
        HTTP_GET {
            @HTTP@
            url {
                path /
                @URL@
            }
        }
        MISC_CHECK {
            misc_path /bin/true
            @MISC@
        }
        SMTP_CHECK {
            @SMTP@
        }
        UDP_CHECK {
            @UDP@
        }
        DNS_CHECK {
            @DNS@
        }
        PING_CHECK {
            @PING@
        }
    }
}
global_defs {
    @GLOBAL@
}
@ROOT@
";

/// (keyword, where, lines in both files before it, its line(s), fate).
type Entry = (&'static str, &'static str, &'static str, &'static str, Fate);

#[rustfmt::skip]
const WALK: &[Entry] = &[
    // virtual_server
    ("lb_algo", VS, "", "lb_algo wrr", Applied),
    ("lvs_sched", VS, "", "lvs_sched wrr", Applied),
    ("lb_kind", VS, "", "lb_kind DR", Applied),
    ("lvs_method", VS, "", "lvs_method TUN", Applied),
    ("flag-1", VS, "", "flag-1", Applied),
    ("flag-2", VS, "", "flag-2", Applied),
    ("flag-3", VS, "", "flag-3", Applied),
    ("sh-port", VS, "lb_algo sh", "sh-port", Applied),
    ("sh-fallback", VS, "lb_algo sh", "sh-fallback", Applied),
    ("mh-port", VS, "lb_algo mh", "mh-port", Applied),
    ("mh-fallback", VS, "lb_algo mh", "mh-fallback", Applied),
    ("ops", VS, "", "ops", Noted), // on TCP; refused on UDP
    ("hashed", VS, "", "hashed", Noted),
    ("persistence_timeout", VS, "", "persistence_timeout 60", Applied),
    ("persistence_granularity", VS, "", "persistence_granularity 255.255.255.0", Applied),
    ("nat_mask", VS, "", "nat_mask 255.255.255.0", Noted),
    ("persistence_engine", VS, "", "persistence_engine sip", Refused),
    ("protocol", VS, "", "protocol UDP", Applied),
    ("ip_family", VS, "", "ip_family inet6", Refused), // checked against the (IPv4) address
    ("ha_suspend", VS, "", "ha_suspend", Applied),
    ("alpha", VS, "", "alpha", Applied),
    ("omega", VS, "", "omega", Applied),
    ("inhibit_on_failure", VS, "", "inhibit_on_failure", Applied),
    ("virtualhost", VS, "", "virtualhost www.example.com", Applied),
    ("quorum", VS, "", "quorum 3", Applied),
    ("hysteresis", VS, "quorum 3", "hysteresis 1", Applied),
    ("quorum_up", VS, "", "quorum_up /bin/true", Applied),
    ("quorum_down", VS, "", "quorum_down /bin/true", Applied),
    ("weight", VS, "", "weight 2", Applied),
    ("sorry_server", VS, "", "sorry_server 10.0.0.99 80", Applied),
    ("sorry_server_inhibit", VS, "sorry_server 10.0.0.99 80", "sorry_server_inhibit", Applied),
    ("sorry_server_lvs_method", VS, "sorry_server 10.0.0.99 80", "sorry_server_lvs_method DR", Applied),
    ("smtp_alert", VS, "", "smtp_alert", Noted),
    ("snmp_name", VS, "", "snmp_name web", Noted),
    ("real_server", VS, "", "real_server 10.0.0.12 80 {\n}", Applied),
    ("connect_timeout", VS, "", "connect_timeout 2", Applied),
    ("retry", VS, "", "retry 3", Applied),
    ("delay_before_retry", VS, "", "delay_before_retry 2", Applied),
    ("warmup", VS, "", "warmup 0", Applied),
    ("delay_loop", VS, "", "delay_loop 7", Applied),
    // real_server
    ("weight", RS, "", "weight 2", Applied),
    ("lvs_method", RS, "", "lvs_method DR", Applied),
    ("uthreshold", RS, "", "uthreshold 100", Applied),
    ("lthreshold", RS, "uthreshold 100", "lthreshold 10", Applied),
    ("inhibit_on_failure", RS, "", "inhibit_on_failure", Applied),
    ("alpha", RS, "", "alpha", Applied),
    ("notify_up", RS, "", "notify_up \"/bin/echo up\"", Applied),
    ("notify_down", RS, "", "notify_down \"/bin/echo down\" nobody", Applied),
    ("virtualhost", RS, "", "virtualhost rs.example.com", Applied),
    ("smtp_alert", RS, "", "smtp_alert", Noted),
    ("snmp_name", RS, "", "snmp_name rs1", Noted),
    ("TCP_CHECK", RS, "", "TCP_CHECK {\n}", Applied),
    ("HTTP_GET", RS, "", "HTTP_GET {\nurl {\npath /x\n}\n}", Applied),
    ("MISC_CHECK", RS, "", "MISC_CHECK {\nmisc_path /bin/false\n}", Applied),
    ("SSL_GET", RS, "", "SSL_GET {\nurl {\npath /x\n}\n}", Applied),
    ("SMTP_CHECK", RS, "", "SMTP_CHECK {\nconnect_port 25\n}", Applied),
    ("DNS_CHECK", RS, "", "DNS_CHECK {\nconnect_port 53\n}", Applied),
    ("UDP_CHECK", RS, "", "UDP_CHECK {\nconnect_port 53\n}", Applied),
    ("PING_CHECK", RS, "", "PING_CHECK {\n}", Applied),
    ("BFD_CHECK", RS, "", "BFD_CHECK {\n}", Refused),
    ("FILE_CHECK", RS, "", "FILE_CHECK {\n}", Refused),
    ("connect_timeout", RS, "", "connect_timeout 2", Applied),
    ("retry", RS, "", "retry 3", Applied),
    ("delay_before_retry", RS, "", "delay_before_retry 2", Applied),
    ("warmup", RS, "", "warmup 0", Applied),
    ("delay_loop", RS, "", "delay_loop 7", Applied),
    // TCP_CHECK (and the connection keywords of HTTP_GET)
    ("connect_ip", TCP, "", "connect_ip 10.0.0.21", Applied),
    ("connect_port", TCP, "", "connect_port 81", Applied),
    ("bindto", TCP, "", "bindto 10.0.0.2", Applied),
    ("bind_port", TCP, "", "bind_port 4000", Applied),
    ("bind_if", TCP, "", "bind_if eth0", Refused),
    ("fwmark", TCP, "", "fwmark 7", Refused),
    ("alpha", TCP, "", "alpha", Applied),
    ("log_all_failures", TCP, "", "log_all_failures", Applied),
    ("connect_timeout", TCP, "", "connect_timeout 2", Applied),
    ("retry", TCP, "", "retry 3", Applied),
    ("delay_before_retry", TCP, "", "delay_before_retry 2", Applied),
    ("warmup", TCP, "", "warmup 0", Applied),
    ("delay_loop", TCP, "", "delay_loop 7", Applied),
    // HTTP_GET
    ("nb_get_retry", HTTP, "", "nb_get_retry 3", Applied),
    ("virtualhost", HTTP, "", "virtualhost check.example.com", Applied),
    ("http_protocol", HTTP, "", "http_protocol 1.1", Applied),
    ("fast_recovery", HTTP, "", "fast_recovery", Applied),
    ("url", HTTP, "", "url {\npath /y\n}", Applied),
    ("enable_sni", HTTP, "", "enable_sni", Refused),
    ("sni_name", HTTP, "", "sni_name x", Refused),
    ("tls_compliant", HTTP, "", "tls_compliant", Refused),
    // url
    ("path", URL, "", "path /z", Applied),
    ("status_code", URL, "", "status_code 200 301-302", Applied),
    ("virtualhost", URL, "", "virtualhost url.example.com", Applied),
    ("digest", URL, "", "digest 9b3a0c85a887a256d6939da88aabd8cd", Applied),
    ("regex", URL, "", "regex ok", Applied),
    ("regex_no_match", URL, "regex ok", "regex_no_match", Applied),
    ("regex_options", URL, "regex ok", "regex_options caseless", Applied),
    ("regex_stack", URL, "regex ok", "regex_stack 1 2", Noted),
    ("regex_min_offset", URL, "regex ok", "regex_min_offset 1", Applied),
    ("regex_max_offset", URL, "regex ok", "regex_max_offset 9", Applied),
    ("regex_options", URL, "", "regex_options caseless", Refused), // without a regex
    ("tls_compliant", URL, "", "tls_compliant", Refused),
    // MISC_CHECK
    ("misc_path", MISC, "", "misc_path \"/bin/sh -c 'exit 0'\"", Applied),
    ("misc_timeout", MISC, "", "misc_timeout 3", Applied),
    ("misc_dynamic", MISC, "", "misc_dynamic", Applied),
    ("user", MISC, "", "user nobody", Applied),
    ("connect_timeout", MISC, "", "connect_timeout 2", Refused),
    // SMTP_CHECK, UDP_CHECK, DNS_CHECK
    ("helo_name", SMTP, "", "helo_name lb.example.com", Applied),
    ("host", SMTP, "", "host {\nconnect_ip 10.0.0.3\n}", Refused),
    ("payload", UDP, "", "payload 0a0b 0c", Applied),
    ("require_reply", UDP, "", "require_reply 0aXX", Applied),
    ("min_reply_length", UDP, "", "min_reply_length 2", Applied),
    ("max_reply_length", UDP, "", "max_reply_length 100", Applied),
    ("type", DNS, "", "type A", Applied),
    ("name", DNS, "", "name example.com", Applied),
    // PING_CHECK: the connection keywords but the ports (TCP_CHECK's above); the ports noted.
    ("connect_ip", PING, "", "connect_ip 10.0.0.21", Applied),
    ("bindto", PING, "", "bindto 10.0.0.2", Applied),
    ("connect_timeout", PING, "", "connect_timeout 2", Applied),
    ("retry", PING, "", "retry 3", Applied),
    ("connect_port", PING, "", "connect_port 81", Noted),
    ("bind_port", PING, "", "bind_port 4000", Noted),
    // global_defs
    ("lvs_timeouts", GLOBAL, "", "lvs_timeouts tcp 100", Applied),
    ("lvs_flush", GLOBAL, "", "lvs_flush", Applied),
    ("lvs_sync_daemon", GLOBAL, "", "lvs_sync_daemon eth0 VI_1", Noted),
    ("lvs_flush_on_stop", GLOBAL, "", "lvs_flush_on_stop", Noted),
    ("lvs_flush_onstop", GLOBAL, "", "lvs_flush_onstop", Noted),
    ("script_user", GLOBAL, "", "script_user nobody", Applied),
    ("checker_log_all_failures", GLOBAL, "", "checker_log_all_failures", Applied),
    ("lvs_notify_fifo", GLOBAL, "", "lvs_notify_fifo /run/k.fifo", Noted),
    ("lvs_notify_fifo_script", GLOBAL, "", "lvs_notify_fifo_script /bin/true", Noted),
    ("notify_fifo", GLOBAL, "", "notify_fifo /run/k.fifo", Noted),
    ("notify_fifo_script", GLOBAL, "", "notify_fifo_script /bin/true", Noted),
    ("enable_script_security", GLOBAL, "", "enable_script_security", Noted),
    // top level
    ("virtual_server", ROOT, "", "virtual_server 10.0.0.2 80 {\nprotocol TCP\nreal_server 10.0.0.11 80 {\n}\n}", Applied),
    ("virtual_server_group", ROOT, "", "virtual_server_group g {\n10.0.0.7-8 80\n}\nvirtual_server group g {\nprotocol TCP\nreal_server 10.0.0.11 80 {\n}\n}", Applied),
    ("global_defs", ROOT, "", "global_defs {\n}", Noted),
    ("vrrp_instance", ROOT, "", "vrrp_instance VI_1 {\n}", Noted),
    ("vrrp_sync_group", ROOT, "", "vrrp_sync_group G {\n}", Noted),
    ("garp_group", ROOT, "", "garp_group {\n}", Noted),
    ("track_group", ROOT, "", "track_group G {\n}", Noted),
    ("linkbeat_interfaces", ROOT, "", "linkbeat_interfaces {\n}", Noted),
    ("interface_up_down_delays", ROOT, "", "interface_up_down_delays {\n}", Noted),
    ("vrrp_script", ROOT, "", "vrrp_script s {\n}", Noted),
    ("vrrp_track_process", ROOT, "", "vrrp_track_process p {\n}", Noted),
    ("track_file", ROOT, "", "track_file f {\n}", Noted),
    ("vrrp_track_file", ROOT, "", "vrrp_track_file f {\n}", Noted),
    ("static_ipaddress", ROOT, "", "static_ipaddress {\n}", Noted),
    ("static_routes", ROOT, "", "static_routes {\n}", Noted),
    ("static_rules", ROOT, "", "static_rules {\n}", Noted),
    ("bfd_instance", ROOT, "", "bfd_instance b {\n}", Noted),
    ("net_namespace_ipvs", ROOT, "", "net_namespace_ipvs ns", Noted),
    ("net_namespace", ROOT, "", "net_namespace ns", Noted),
    ("namespace_with_ipsets", ROOT, "", "namespace_with_ipsets", Noted),
    ("use_pid_dir", ROOT, "", "use_pid_dir", Noted),
    ("instance", ROOT, "", "instance i", Noted),
    ("child_wait_time", ROOT, "", "child_wait_time 5", Noted),
    ("linkbeat_use_polling", ROOT, "", "linkbeat_use_polling", Noted),
    ("SSL", ROOT, "", "SSL {\n}", Noted),
    ("password", ROOT, "", "SSL { password secret }", Refused),
    ("ca", ROOT, "", "SSL { ca /k/ca.pem }", Noted),
    ("certificate", ROOT, "", "SSL {\ncertificate /k/client.pem\nkey /k/client.key\n}", Applied),
    ("key", ROOT, "", "SSL {\nkey /k/client.key\ncertificate /k/client.pem\n}", Applied),
];

/// Literals in the reader's `match` arms that are values, not keywords.
const VALUES: &[&str] = &[
    "NAT",
    "DR",
    "TUN",
    "type",
    "ipip",
    "gue",
    "gre",
    "port",
    "nocsum",
    "csum",
    "remcsum",
    "tcp",
    "tcpfin",
    "udp",
    "TCP",
    "UDP",
    "SCTP",
    "inet",
    "inet6",
    "1.0",
    "1.0C",
    "1.0c",
    "1.1",
    "twos",
    "group",
    "fwmark",
    "sh-port",
    "sh-fallback",
    "mh-port",
    "mh-fallback",
];

/// The text with `lines` at `slot` (after `prefix`), and the line number of `lines`.
fn file(slot: &str, prefix: &str, lines: &str) -> (String, u32) {
    let at = TEMPLATE.lines().position(|l| l.contains(slot)).unwrap();
    let mut body = String::new();
    if !prefix.is_empty() {
        body = format!("{prefix}\n");
    }
    body += lines;
    let text = TEMPLATE.replace(slot, &body);
    let mut clean = String::new();
    for l in text.lines() {
        if !l.trim_start().starts_with('@') {
            clean += l;
        }
        clean.push('\n');
    }
    let line = u32::try_from(at + 1 + prefix.lines().count()).unwrap();
    (clean, line)
}

fn read(text: &str) -> Result<LvsConfig, ConfigErrors> {
    let files = MemFiles::default()
        .with("/k/client.pem", include_str!("testdata/client.pem"))
        .with("/k/client.key", include_str!("testdata/client.key"))
        .with("/k/ca.pem", include_str!("testdata/ca.pem"));
    parse_with(&files, text, "k.conf", "lb1")
}

fn same(a: &LvsConfig, b: &LvsConfig) -> bool {
    a.services == b.services
        && a.timeouts == b.timeouts
        && a.flush == b.flush
        && a.client_cert == b.client_cert
}

#[test]
fn every_keyword_has_an_effect_or_is_refused_or_noted() {
    let mut wrong = Vec::new();
    for &(keyword, slot, prefix, lines, fate) in WALK {
        let (without, _) = file(slot, prefix, "");
        let (with, line) = file(slot, prefix, lines);
        let base = read(&without).unwrap_or_else(|e| panic!("{keyword}: base refused:\n{e}"));
        let outcome = read(&with);
        let ok = match (fate, &outcome) {
            (Applied, Ok(c)) => !same(c, &base),
            (Refused, Err(e)) => e.0.iter().any(|e| e.location.line == line),
            (Noted, Ok(c)) => {
                same(c, &base)
                    && c.notes
                        .iter()
                        .any(|n| n.location.line == line && n.message.contains(keyword))
            }
            _ => false,
        };
        if !ok {
            wrong.push(format!(
                "{keyword} in {slot} expected {fate:?}, got {outcome:#?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn every_keyword_in_the_reader_is_walked() {
    let source = include_str!("lvs.rs");
    let source = source.split("#[cfg(test)]").next().unwrap();
    let mut missing = Vec::new();
    let lines: Vec<&str> = source.lines().map(str::trim).collect();
    for (i, &line) in lines.iter().enumerate() {
        // A match arm's pattern: it has the arrow, or is continued by a `|` line.
        let continued = lines.get(i + 1).is_some_and(|next| next.starts_with('|'));
        if !line.contains("=>") && !line.starts_with('|') && !continued {
            continue;
        }
        let pattern = line.split("=>").next().unwrap();
        let pattern = pattern.split(" if ").next().unwrap().trim();
        let pattern = pattern.strip_prefix('|').unwrap_or(pattern).trim();
        // A tuple pattern, `(OtherDraft::Udp(udp), "payload")`: its literals.
        if pattern.starts_with('(') {
            for word in pattern.split('"').skip(1).step_by(2) {
                if !VALUES.contains(&word)
                    && !WALK.iter().any(|e| e.0 == word)
                    && !missing.contains(&word)
                {
                    missing.push(word);
                }
            }
            continue;
        }
        if !pattern.starts_with('"') {
            continue;
        }
        let words: Vec<&str> = pattern.split('|').map(str::trim).collect();
        let literals: Option<Vec<&str>> = words
            .iter()
            .map(|w| w.strip_prefix('"').and_then(|w| w.strip_suffix('"')))
            .collect();
        let Some(literals) = literals else { continue };
        for word in literals {
            if word.is_empty() || VALUES.contains(&word) {
                continue;
            }
            if !WALK.iter().any(|e| e.0 == word) && !missing.contains(&word) {
                missing.push(word);
            }
        }
    }
    assert!(missing.is_empty(), "accepted but not walked: {missing:?}");
    // The scan finds the reader's keywords at all.
    assert!(WALK.len() > 100);
}
