//! `lbd`'s command line (clap), shared by the binary and the man page and completions.

use std::path::PathBuf;

use clap::Parser;

use crate::{
    control::DEFAULT_SOCKET, dataplane::AttachMode, dataplane::OnExit, logging::LogFormat,
    pinning::DEFAULT_BPFFS, state::DEFAULT_STATE, sysctl::Sysctl,
};

/// lb's director daemon: an XDP layer-4 load balancer driven like LVS.
#[derive(Parser, Debug)]
#[command(
    name = "lbd",
    version,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Interface to attach the XDP program to (repeat for several, e.g. NAT's two NICs).
    #[arg(long = "iface", value_name = "IF")]
    pub ifaces: Vec<String>,
    /// XDP attach mode: native (driver) if possible, or generic (skb).
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: AttachMode,
    /// Control socket lbadm talks to.
    #[arg(long, default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,
    /// A group (name or gid) whose members may use the control socket too (mode 0660);
    /// without it only root and lbd's own user may.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Where the configuration is saved and restored from.
    #[arg(long, default_value = DEFAULT_STATE, value_name = "PATH")]
    pub state: PathBuf,
    /// Connection-table entries (IPVS's "size" in `-Ln`).
    #[arg(long, default_value_t = lb_common::DEFAULT_CONN_TABLE_SIZE)]
    pub conn_table_size: u32,
    /// Connection-table entries the sweep reads per tick (for tests: a pass over several
    /// ticks without a table of hundreds of thousands).
    #[arg(long, hide = true, value_name = "N")]
    pub sweep_budget: Option<usize>,
    /// Where the data path's maps and XDP links are pinned (one directory per lbd).
    #[arg(long, default_value = DEFAULT_BPFFS, value_name = "PATH")]
    pub bpffs: PathBuf,
    /// On exit, detach the data path (a clean stop) or keep it running for the next lbd
    /// (restart or upgrade without dropping a connection).
    #[arg(long, value_enum, default_value = "detach")]
    pub on_exit: OnExit,
    /// Remove what an lbd left running under --bpffs (after `--on-exit keep`), then exit.
    #[arg(long)]
    pub cleanup: bool,
    /// Read the virtual servers (and their health checks) from this keepalived.conf; SIGHUP
    /// or `lbd reload` re-reads it and applies what changed.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9300); off by default. There
    /// is no authentication: keep it on loopback or behind a firewall.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Set one of IPVS's sysctls that lb implements, as `sysctl -w` would on LVS (repeat for
    /// several), e.g. `net.ipv4.vs.sloppy_tcp=1`; kept with the configuration, and changed at
    /// run time with `lbadm --sysctl NAME=VALUE`.
    #[arg(long = "sysctl", value_name = "NAME=VALUE", value_parser = parse_sysctl)]
    pub sysctls: Vec<(Sysctl, u32)>,
    /// Announce the VIPs through BIRD: lbd writes this BIRD include file (a `route VIP/32
    /// blackhole;` per IPv4 VIP of a service with a healthy real server, none while drained),
    /// the IPv6 ones (`/128`) to the same name with a 6 before the extension, and runs `birdc
    /// configure`. Include each in a `protocol static` of its family, exported by BGP.
    #[arg(long, value_name = "FILE")]
    pub bird_vips: Option<PathBuf>,
    /// BIRD's control socket, for `birdc -s PATH configure` (with --bird-vips).
    #[arg(long, default_value = crate::bird::DEFAULT_BIRDC_SOCKET, value_name = "PATH")]
    pub birdc_socket: PathBuf,
    /// The birdc program (with --bird-vips).
    #[arg(long, default_value = "birdc", value_name = "PATH")]
    pub birdc: PathBuf,
    /// Where the director's drain state is kept across restarts (`lbd drain`); default: `drain.json`
    /// beside the --state file.
    #[arg(long, value_name = "PATH")]
    pub drain_state: Option<PathBuf>,
    /// Log as plain text (coloured only when standard error is a terminal) or as one JSON
    /// object per line, for log shippers. `LBD_LOG` sets the level (e.g. `debug`).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

fn parse_sysctl(text: &str) -> Result<(Sysctl, u32), String> {
    crate::sysctl::parse_assignment(text).map_err(|e| e.to_string())
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// On a real server of an LVS-TUN service: strip the director's IP-in-IP, GUE or GRE
    /// headers in XDP, for kernels without the ipip, fou or gre modules (no tunl0). Put the
    /// VIP on `lo` as with tunl0.
    Decap {
        /// The real server's interface facing the director.
        #[arg(long = "iface", required = true, value_name = "IF")]
        ifaces: Vec<String>,
        /// A UDP port GUE arrives on (the director's `--tun-port` for this real server);
        /// repeatable. Without it only IP-in-IP and GRE are stripped.
        #[arg(long = "gue-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        gue_ports: Vec<u16>,
        /// XDP attach mode: native (driver) if possible, or generic (skb).
        #[arg(long, value_enum, default_value = "auto")]
        xdp_mode: AttachMode,
    },
    /// Ask the running lbd to re-read its --config file and apply what changed.
    Reload {
        /// Control socket of the running lbd.
        #[arg(long, default_value = DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
    },
    /// Drain the director for maintenance: the running lbd (started with --bird-vips) withdraws
    /// every VIP from BIRD, so the router sends new flows elsewhere, while connections that
    /// still arrive keep flowing. Kept across restarts until `lbd undrain`.
    Drain {
        /// Control socket of the running lbd.
        #[arg(long, default_value = DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
    },
    /// Return a drained director to service: the VIPs of healthy services are announced again.
    Undrain {
        /// Control socket of the running lbd.
        #[arg(long, default_value = DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
    },
    /// Show whether the director is drained and which VIPs it announces through BIRD, and why.
    Status {
        /// Control socket of the running lbd.
        #[arg(long, default_value = DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
    },
}

/// lbd's command as clap sees it (for the man page and completions).
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn log_format_is_taken_before_and_after_a_subcommand() {
        let args = Args::try_parse_from(["lbd", "--iface", "eth0"]).unwrap();
        assert_eq!(args.log_format, LogFormat::Text);
        let args =
            Args::try_parse_from(["lbd", "--log-format", "json", "--iface", "eth0"]).unwrap();
        assert_eq!(args.log_format, LogFormat::Json);
        let args =
            Args::try_parse_from(["lbd", "decap", "--iface", "eth1", "--log-format", "json"])
                .unwrap();
        assert_eq!(args.log_format, LogFormat::Json);
        assert!(matches!(args.command, Some(Sub::Decap { .. })));
        assert!(Args::try_parse_from(["lbd", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn bird_options_and_drain_commands() {
        let args = Args::try_parse_from([
            "lbd",
            "--iface",
            "eth0",
            "--bird-vips",
            "/etc/bird/lb-vips.conf",
            "--birdc-socket",
            "/run/bird.ctl",
        ])
        .unwrap();
        assert_eq!(
            args.bird_vips,
            Some(PathBuf::from("/etc/bird/lb-vips.conf"))
        );
        assert_eq!(args.birdc_socket, PathBuf::from("/run/bird.ctl"));
        assert_eq!(args.birdc, PathBuf::from("birdc"));
        let args = Args::try_parse_from(["lbd", "drain", "--socket", "/tmp/s"]).unwrap();
        assert!(
            matches!(args.command, Some(Sub::Drain { socket }) if socket.as_os_str() == "/tmp/s")
        );
        let args = Args::try_parse_from(["lbd", "undrain"]).unwrap();
        assert!(matches!(args.command, Some(Sub::Undrain { .. })));
        let args = Args::try_parse_from(["lbd", "status"]).unwrap();
        assert!(matches!(args.command, Some(Sub::Status { .. })));
    }
}
