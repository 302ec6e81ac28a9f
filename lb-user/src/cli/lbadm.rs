//! `lbadm`'s command line described for clap, for its man page and shell completions only.
//!
//! lbadm does not parse with clap: it parses ipvsadm's popt syntax itself ([`crate::ipvsadm`]),
//! where the order of options, `-p` with an optional value and ipvsadm's messages matter.
//! This description lists the options `lbadm -h` lists, grouped as ipvsadm(8) groups them
//! (COMMANDS, PARAMETERS); a test keeps it and `lbadm -h` in step.

use clap::{Arg, ArgAction, Command};

use crate::{
    control::{DEFAULT_SOCKET, SOCKET_ENV},
    ipvsadm::IPVSADM_COMPAT,
    model::Scheduler,
};

const COMMANDS: &str = "Commands";
const PARAMETERS: &str = "Parameters";

/// lbadm's options as clap arguments, for generating documentation (not for parsing).
pub fn command() -> Command {
    let flag = |long: &'static str, short: Option<char>, help: &'static str| {
        let arg = Arg::new(long)
            .long(long)
            .action(ArgAction::SetTrue)
            .help(help);
        match short {
            Some(c) => arg.short(c),
            None => arg,
        }
    };
    let value =
        |long: &'static str, short: Option<char>, name: &'static str, help: &'static str| {
            flag(long, short, help)
                .action(ArgAction::Set)
                .value_name(name)
        };
    let cmd = |arg: Arg| arg.help_heading(COMMANDS);
    let param = |arg: Arg| arg.help_heading(PARAMETERS);
    let schedulers: Vec<&'static str> = Scheduler::ALL.iter().map(|s| s.name()).collect();
    Command::new("lbadm")
        .version(env!("CARGO_PKG_VERSION"))
        .about("administer lb's virtual services with ipvsadm's command line")
        .long_about(None)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args([
            cmd(flag("add-service", Some('A'), "Add a virtual service. A service address is uniquely defined by a triplet: IP address, port number, and protocol.")),
            cmd(flag("edit-service", Some('E'), "Edit a virtual service.")),
            cmd(flag("delete-service", Some('D'), "Delete a virtual service, along with any associated real servers.")),
            cmd(flag("clear", Some('C'), "Clear the virtual server table.")),
            cmd(flag("restore", Some('R'), "Restore lb's table from standard input, as one transaction: each line is a command (without the program name) as written by --save. A line with an error is reported with its number and nothing of the input is applied (ipvsadm keeps the lines before it).")),
            cmd(flag("save", Some('S'), "Dump lb's table to standard output in a format that --restore can read.")),
            cmd(flag("add-server", Some('a'), "Add a real server to a virtual service.")),
            cmd(flag("edit-server", Some('e'), "Edit a real server in a virtual service.")),
            cmd(flag("delete-server", Some('d'), "Remove a real server from a virtual service.")),
            cmd(flag("list", Some('L'), "List the virtual server table if no argument is specified. If a service-address is selected, list this service only. With --connection, list the connection table.").short_alias('l')),
            cmd(flag("zero", Some('Z'), "Zero the packet, byte and rate counters in a service or all services.")),
            cmd(flag("set", None, "Change the timeout values used for IPVS connections: tcp, tcpfin and udp, in seconds (0 keeps a value).").action(ArgAction::Set).num_args(3).value_names(["tcp", "tcpfin", "udp"])),
            cmd(flag("sysctl", None, "lbadm's own: list IPVS's sysctls as lbd has them (sysctl's layout), print one (NAME), or set them (NAME=VALUE), as sysctl -w net.ipv4.vs.NAME=VALUE would on LVS. Must come first, after --socket.").action(ArgAction::Set).num_args(0..).value_name("NAME[=VALUE]")),
            cmd(value("start-daemon", None, "master|backup", "Start the connection synchronisation daemon in lbd, as a master (it multicasts the connections and persistence templates of lb's connection table in IPVS's sync protocol, version 1) or a backup (it puts those it receives in lb's table, so that their packets go to the same real servers when this director takes the traffic). The daemon's settings are kept in lbd's state file.").value_parser(["master", "backup"])),
            cmd(value("stop-daemon", None, "master|backup", "Stop the connection synchronisation daemon.").value_parser(["master", "backup"])),
            cmd(flag("help", Some('h'), "Display a description of the command syntax.")),
            cmd(flag("version", Some('v'), "Display the version of lbadm, the ipvsadm syntax it follows, and the IPVS version it reports.")),
            param(value("tcp-service", Some('t'), "service-address", "Use TCP service. The service-address is of the form host[:port]. Host may be one of a plain IPv4 address or a hostname. Port may be either a plain port number or the service name of port. If the port is omitted, zero is used, which only a persistent service (-p) allows: it then takes connections to any port.")),
            param(value("udp-service", Some('u'), "service-address", "Use UDP service. See the -t|--tcp-service for the description of the service-address.")),
            param(value("scheduler", Some('s'), "scheduling-method", "The algorithm for allocating connections to real servers; the default is wlc. All of IPVS's schedulers are lb's, computed in user space where they can be.").value_parser(schedulers)),
            param(flag("persistent", Some('p'), "Make the virtual service persistent: multiple requests from a client go to the same real server. The timeout (in seconds) defaults to 300.").action(ArgAction::Set).num_args(0..=1).value_name("timeout")),
            param(value("netmask", Some('M'), "netmask", "Specify the granularity with which clients are grouped for persistent virtual services.")),
            param(value("sched-flags", Some('b'), "sched-flags", "Set scheduler flags for this virtual server (comma-separated): sh-fallback, sh-port, mh-fallback, mh-port, as ipvsadm.")),
            param(value("real-server", Some('r'), "server-address", "Real server that an associated request for service may be assigned to. The server-address is the host address of a real server, and may plus port.")),
            param(flag("gatewaying", Some('g'), "Use gatewaying (direct routing). This is the default.")),
            param(flag("ipip", Some('i'), "Use ipip encapsulation (tunneling).")),
            param(flag("masquerading", Some('m'), "Use masquerading (network access translation, or NAT).")),
            param(value("tun-type", None, "tun-type", "Tunnel type of a tunnelled (-i) real server: ipip (the default), gue (UDP to --tun-port, then a GUE header) or gre.").value_parser(["ipip", "gue", "gre"])),
            param(value("tun-port", None, "tun-port", "GUE's UDP destination port on the real server (1-65535); required with --tun-type gue, refused with the others.")),
            param(flag("tun-nocsum", None, "Tunnel encapsulation without checksum (the default); gue and gre only.")),
            param(flag("tun-csum", None, "Tunnel encapsulation with checksum: GUE's UDP checksum, GRE's checksum; gue and gre only.")),
            param(flag("tun-remcsum", None, "GUE with remote checksum offload; gue only. As IPVS for the packets it forwards, the UDP checksum is sent in full.")),
            param(value("weight", Some('w'), "weight", "Weight is an integer specifying the capacity of a server relative to the others in the pool. The valid values of weight are 0 through to 65535. The default is 1. A weight of 0 stops new connections only.")),
            param(value("u-threshold", Some('x'), "uthreshold", "Upper connection threshold of a server: no new connections once it has this many (0: no limit).")),
            param(value("l-threshold", Some('y'), "lthreshold", "Lower connection threshold of a server: new connections again once it has fewer than this many.")),
            param(flag("connection", Some('c'), "Connection output. The list command with this option will list current connections.")),
            param(flag("timeout", None, "Timeout output. The list command with this option will display the timeout values (in seconds) for TCP sessions, TCP sessions after receiving a FIN packet, and UDP packets.")),
            param(flag("daemon", None, "Daemon information output. The list command with this option will display the daemon status.")),
            param(flag("stats", None, "Output of statistics information.")),
            param(flag("rate", None, "Output of rate information.")),
            param(flag("thresholds", None, "Output of thresholds information.")),
            param(flag("persistent-conn", None, "Output of persistent connection information.")),
            param(flag("tun-info", None, "Output of tunnel information.")),
            param(flag("nosort", None, "Do not sort the services and real servers (real servers are then listed newest first, as IPVS keeps them).")),
            param(flag("sort", None, "Does nothing, for backwards compatibility.")),
            param(flag("exact", Some('X'), "Expand numbers (display exact values).")),
            param(flag("numeric", Some('n'), "Numeric output. IP addresses and port numbers will be printed in numeric format rather than as host names and services.")),
            param(value("mcast-interface", None, "interface", "Multicast interface used by the connection synchronisation daemon (default eth0).")),
            param(value("syncid", None, "syncid", "SyncID of the synchronisation daemon (0-255): a master stamps its messages with it, a backup takes only messages with it (0: all).")),
            param(value("sync-maxlen", None, "length", "Largest sync message, without IP and UDP headers (default: 1472 for a master, the interface's MTU less 28 for a backup).")),
            param(value("mcast-group", None, "address", "Multicast group (IPv4 or IPv6) of the synchronisation daemon (default 224.0.0.81).")),
            param(value("mcast-port", None, "port", "UDP port of the synchronisation daemon (default 8848).")),
            param(value("mcast-ttl", None, "ttl", "Multicast TTL (hop limit) of the master's messages (default 1).")),
            param(value("socket", None, "PATH", socket_help())),
        ])
        .after_help(format!("lbadm follows ipvsadm {IPVSADM_COMPAT}'s syntax."))
}

fn socket_help() -> &'static str {
    // Leaked once per process: clap wants a 'static string for a computed help.
    Box::leak(
        format!(
            "lbadm's own: lbd's control socket; default ${SOCKET_ENV} if set, else {DEFAULT_SOCKET}. May appear anywhere on the command line."
        )
        .into_boxed_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm::help_text;

    #[test]
    fn description_is_well_formed() {
        command().debug_assert();
    }

    /// Long option names a text mentions (`--name`).
    fn long_options(text: &str) -> std::collections::BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter_map(|w| w.strip_prefix("--"))
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn it_lists_the_options_lbadm_help_lists() {
        let help = help_text();
        // Less the closing list of what lb does not support.
        let (supported, _) = help.split_once("Not supported by lb").unwrap();
        let help = long_options(supported);
        let described: std::collections::BTreeSet<String> = command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        // `-h` lists every option lb implements; --sysctl (lbadm's own, parsed before
        // ipvsadm's syntax) is documented here only.
        let extra: Vec<&String> = described
            .difference(&help)
            .filter(|o| !["sysctl"].contains(&o.as_str()))
            .collect();
        let missing: Vec<&String> = help.difference(&described).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "only in the man page: {extra:?}; only in -h: {missing:?}"
        );
    }

    #[test]
    fn every_described_option_is_one_lbadm_parses() {
        for arg in command().get_arguments() {
            let long = arg.get_long().unwrap();
            if ["socket", "sysctl"].contains(&long) {
                continue;
            }
            let spec = crate::ipvsadm::options::find_long(long)
                .unwrap_or_else(|| panic!("--{long} is not ipvsadm's"));
            assert_eq!(spec.short, arg.get_short(), "--{long}'s short option");
        }
    }

    #[test]
    fn every_scheduler_can_be_completed() {
        let cmd = command();
        let scheduler = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("scheduler"))
            .unwrap();
        let values: Vec<String> = scheduler
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect();
        assert_eq!(values.len(), Scheduler::ALL.len());
        assert!(values.iter().any(|v| v == "wlc"));
    }
}
