//! `lbadm -h` and `lbadm -v`: ipvsadm's usage text, with lbadm's name, only the options lb
//! implements, and lbadm's own `--socket`.

use std::fmt::Write as _;

use super::{PROGRAM, format::IPVS_VERSION};
use crate::control::{DEFAULT_SOCKET, SOCKET_ENV};

/// The ipvsadm release whose syntax and layouts lbadm follows.
pub const IPVSADM_COMPAT: &str = "1.31";

/// Schedulers in ipvsadm's order (its `SCHEDULERS` list); all of them are lb's.
const SCHEDULERS: &str = "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh";

/// The first line of `-h`, and all of `-v`.
pub fn version_text() -> String {
    format!(
        "{PROGRAM} v{} (ipvsadm v{IPVSADM_COMPAT} syntax, IPVS v{IPVS_VERSION})\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The `-h` text (printed on standard output, exit 0).
pub fn help_text() -> String {
    let p = PROGRAM;
    let mut out = version_text();
    let _ = write!(
        out,
        "Usage:
  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
  {p} -D virtual-service
  {p} -C
  {p} -R
  {p} -S [-n]
  {p} -a|e virtual-service -r server-address [options]
  {p} -d virtual-service -r server-address
  {p} -L|l [virtual-service] [options]
  {p} -Z [virtual-service]
  {p} --set tcp tcpfin udp
  {p} --start-daemon {{master|backup}} [daemon-options]
  {p} --stop-daemon {{master|backup}}
  {p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message
  --version         -v        display the version

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]

Options:
  --scheduler    -s scheduler         one of {SCHEDULERS},
                                      the default scheduler is wlc.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)

Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)

{p} options (anywhere on the command line):
  --socket PATH                       control socket of lbd; default ${SOCKET_ENV}
                                      if set, else {DEFAULT_SOCKET}
  --sysctl [NAME[=VALUE]]...          list, show or set IPVS's sysctls as lbd has
                                      them (net.ipv4.vs.NAME); first, after --socket

Not supported by lb: firewall-mark (-f), SCTP services, --pe and --ops.
"
    );
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::model::Scheduler;

    #[test]
    fn version_line() {
        let v = version_text();
        assert!(v.starts_with("lbadm v"), "{v}");
        assert!(v.ends_with("(ipvsadm v1.31 syntax, IPVS v1.2.1)\n"), "{v}");
    }

    #[test]
    fn help_names_lbadm_and_the_socket() {
        let h = help_text();
        assert!(h.starts_with(&version_text()));
        assert!(h.contains("  lbadm -A|E virtual-service [-s scheduler]"));
        assert!(h.contains("--socket PATH"));
        assert!(h.contains("$LBD_SOCKET"));
        assert!(h.contains("/run/lb/lbd.sock"));
        assert!(!h.contains("ipvsadm -"));
        assert!(h.ends_with("--pe and --ops.\n"));
        assert!(h.contains("  lbadm --start-daemon {master|backup} [daemon-options]\n"));
    }

    #[test]
    fn help_lists_every_scheduler_lb_has() {
        let listed: Vec<&str> = SCHEDULERS.split('|').collect();
        assert_eq!(listed.len(), Scheduler::ALL.len());
        for name in listed {
            Scheduler::from_str(name).unwrap();
        }
    }
}
