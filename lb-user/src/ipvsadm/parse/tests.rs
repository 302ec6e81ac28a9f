//! Command lines in, [`Invocation`]s or ipvsadm's error messages out.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::{
    ipvsadm::{
        testutil::{FakeNames, args},
        values::MAX_TIMEOUT,
    },
    model::{
        Forward, Netmask, Persistence, Protocol, RealSpec, SchedFlags, Scheduler, ServiceSpec,
        Timeouts, Tunnel, TunnelCsum, TunnelType,
    },
};

fn parse_line(line: &str) -> Result<Parsed, CliError> {
    parse_with(&args(line), &FakeNames::new())
}

fn invocation(line: &str) -> Invocation {
    match parse_line(line) {
        Ok(parsed) => {
            assert_eq!(parsed.socket, None, "{line}");
            parsed.invocation
        }
        Err(e) => panic!("{line}: {e}"),
    }
}

/// The single command of an apply line.
fn command(line: &str) -> Command {
    match invocation(line) {
        Invocation::Apply(mut commands) => {
            assert_eq!(commands.len(), 1, "{line}");
            commands.remove(0)
        }
        other => panic!("{line}: not a change: {other:?}"),
    }
}

fn list(line: &str) -> ListOptions {
    match invocation(line) {
        Invocation::List(opts) => opts,
        other => panic!("{line}: not a listing: {other:?}"),
    }
}

/// The message and exit status of a refused line.
fn error(line: &str) -> (String, i32) {
    match parse_line(line) {
        Ok(p) => panic!("{line}: accepted as {:?}", p.invocation),
        Err(e) => (e.to_string(), e.exit_code()),
    }
}

fn usage(line: &str) -> String {
    let (message, code) = error(line);
    assert_eq!(code, 2, "{line}: {message}");
    message
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn ip6(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn tcp(addr: IpAddr, port: u16) -> ServiceAddr {
    ServiceAddr {
        protocol: Protocol::Tcp,
        addr,
        port,
    }
}

fn vip80() -> ServiceAddr {
    tcp(ip(192, 168, 1, 99), 80)
}

fn service(addr: ServiceAddr, scheduler: Scheduler) -> ServiceSpec {
    ServiceSpec {
        addr,
        scheduler,
        persistence: None,
        sched_flags: SchedFlags::default(),
    }
}

fn real(addr: IpAddr, port: u16, forward: Forward, weight: u32) -> RealSpec {
    RealSpec {
        addr,
        port,
        forward,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        tunnel: Default::default(),
    }
}

// ---- services -----------------------------------------------------------------------------

#[test]
fn add_service_defaults_to_wlc_without_persistence() {
    assert_eq!(
        command("-A -t 192.168.1.99:80"),
        Command::AddService {
            service: service(vip80(), Scheduler::Wlc)
        }
    );
}

#[test]
fn add_service_with_scheduler_short_and_long() {
    let expected = Command::AddService {
        service: service(vip80(), Scheduler::Rr),
    };
    assert_eq!(command("-A -t 192.168.1.99:80 -s rr"), expected);
    assert_eq!(
        command("--add-service --tcp-service 192.168.1.99:80 --scheduler rr"),
        expected
    );
    assert_eq!(
        command("--add-service --tcp-service=192.168.1.99:80 --scheduler=rr"),
        expected
    );
    assert_eq!(command("-At 192.168.1.99:80 -srr"), expected);
}

#[test]
fn every_scheduler_name() {
    for sched in Scheduler::ALL {
        assert_eq!(
            command(&format!("-A -t 192.168.1.99:80 -s {sched}")),
            Command::AddService {
                service: service(vip80(), sched)
            }
        );
    }
}

#[test]
fn udp_service() {
    assert_eq!(
        command("-A -u 10.0.0.53:53 -s sh"),
        Command::AddService {
            service: service(
                ServiceAddr {
                    protocol: Protocol::Udp,
                    addr: ip(10, 0, 0, 53),
                    port: 53
                },
                Scheduler::Sh
            )
        }
    );
}

#[test]
fn persistence_default_timeout_and_mask() {
    let persistent = |timeout, netmask| Command::AddService {
        service: ServiceSpec {
            persistence: Some(Persistence { timeout, netmask }),
            ..service(vip80(), Scheduler::Rr)
        },
    };
    assert_eq!(
        command("-A -t 192.168.1.99:80 -s rr -p"),
        persistent(360, Netmask::V4(Ipv4Addr::BROADCAST))
    );
    assert_eq!(
        command("-A -t 192.168.1.99:80 -p -s rr"),
        persistent(360, Netmask::V4(Ipv4Addr::BROADCAST))
    );
    assert_eq!(
        command("-A -t 192.168.1.99:80 -s rr -p 600 -M 255.255.255.0"),
        persistent(600, Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        command("-A -t 192.168.1.99:80 -s rr --persistent=60 --netmask 255.255.0.0"),
        persistent(60, Netmask::V4(Ipv4Addr::new(255, 255, 0, 0)))
    );
    assert_eq!(
        command("-A -t 192.168.1.99:80 -s rr -p2678400"),
        persistent(MAX_TIMEOUT, Netmask::V4(Ipv4Addr::BROADCAST))
    );
}

#[test]
fn netmask_without_persistence_is_dropped_as_the_kernel_ignores_it() {
    assert_eq!(
        command("-A -t 192.168.1.99:80 -s rr -M 255.255.255.0"),
        Command::AddService {
            service: service(vip80(), Scheduler::Rr)
        }
    );
}

#[test]
fn zero_port_needs_persistence() {
    assert_eq!(
        usage("-A -t 192.168.1.99 -s rr"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        usage("-E -t 192.168.1.99:0"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        command("-A -t 192.168.1.99 -s rr -p"),
        Command::AddService {
            service: ServiceSpec {
                persistence: Some(Persistence {
                    timeout: 360,
                    netmask: Netmask::V4(Ipv4Addr::BROADCAST)
                }),
                ..service(tcp(ip(192, 168, 1, 99), 0), Scheduler::Rr)
            }
        }
    );
}

#[test]
fn edit_service_resets_what_is_not_given() {
    // ipvsadm sends a whole new definition: no -s means wlc, no -p means not persistent.
    assert_eq!(
        command("-E -t 192.168.1.99:80"),
        Command::EditService {
            service: service(vip80(), Scheduler::Wlc)
        }
    );
    assert_eq!(
        command("--edit-service -t 192.168.1.99:80 -s sh -b sh-port"),
        Command::EditService {
            service: ServiceSpec {
                sched_flags: SchedFlags {
                    port: true,
                    ..SchedFlags::default()
                },
                ..service(vip80(), Scheduler::Sh)
            }
        }
    );
}

#[test]
fn delete_service() {
    let expected = Command::DeleteService { service: vip80() };
    assert_eq!(command("-D -t 192.168.1.99:80"), expected);
    assert_eq!(
        command("--delete-service --tcp-service 192.168.1.99:80"),
        expected
    );
}

#[test]
fn scheduler_flags() {
    let flags = |line: &str| match command(line) {
        Command::AddService { service } => service.sched_flags,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        flags("-A -t 1.2.3.4:80 -s sh -b sh-fallback,sh-port"),
        SchedFlags {
            fallback: true,
            port: true,
            flag3: false
        }
    );
    assert_eq!(
        flags("-A -t 1.2.3.4:80 -s mh --sched-flags mh-port"),
        SchedFlags {
            port: true,
            ..SchedFlags::default()
        }
    );
    assert_eq!(
        flags("-A -t 1.2.3.4:80 -s rr -b flag-1,flag-3"),
        SchedFlags {
            fallback: true,
            flag3: true,
            port: false
        }
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -b sh-port"),
        "incompatible scheduler flag `sh-port'"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -s sh -b mh-fallback"),
        "incompatible scheduler flag `mh-fallback'"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -s sh -b sh-port,bogus"),
        "invalid scheduler flag `bogus'"
    );
}

#[test]
fn unknown_scheduler_is_what_the_kernel_says() {
    let (message, code) = error("-A -t 1.2.3.4:80 -s fastest");
    assert_eq!(message, "Scheduler or persistence engine not found");
    assert_eq!(code, 255);
}

// ---- real servers -------------------------------------------------------------------------

#[test]
fn add_server_defaults_route_weight_1_and_the_service_port() {
    assert_eq!(
        command("-a -t 192.168.1.99:80 -r 192.168.1.12"),
        Command::AddReal {
            service: vip80(),
            real: real(ip(192, 168, 1, 12), 80, Forward::Route, 1)
        }
    );
}

#[test]
fn forwarding_methods() {
    let forward = |line: &str| match command(line) {
        Command::AddReal { real, .. } => real.forward,
        other => panic!("{other:?}"),
    };
    assert_eq!(forward("-a -t 1.2.3.4:80 -r 10.0.0.1 -g"), Forward::Route);
    assert_eq!(forward("-a -t 1.2.3.4:80 -r 10.0.0.1 -i"), Forward::Tunnel);
    assert_eq!(forward("-a -t 1.2.3.4:80 -r 10.0.0.1 -m"), Forward::Masq);
    assert_eq!(
        forward("-a -t 1.2.3.4:80 -r 10.0.0.1 --gatewaying"),
        Forward::Route
    );
    assert_eq!(
        forward("-a -t 1.2.3.4:80 -r 10.0.0.1 --ipip"),
        Forward::Tunnel
    );
    assert_eq!(
        forward("-a -t 1.2.3.4:80 -r 10.0.0.1 --masquerading"),
        Forward::Masq
    );
    assert_eq!(
        forward("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type ipip"),
        Forward::Tunnel
    );
}

#[test]
fn masquerading_keeps_its_port_routing_and_tunnelling_take_the_service_port() {
    let port = |line: &str| match command(line) {
        Command::AddReal { real, .. } => real.port,
        other => panic!("{other:?}"),
    };
    assert_eq!(port("-a -t 1.2.3.4:80 -r 10.0.0.1:8080 -m"), 8080);
    assert_eq!(port("-a -t 1.2.3.4:80 -r 10.0.0.1:8080 -g"), 80);
    assert_eq!(port("-a -t 1.2.3.4:80 -r 10.0.0.1:8080"), 80);
    assert_eq!(port("-a -t 1.2.3.4:80 -r 10.0.0.1:8080 -i"), 80);
    // The port is copied from the service as far as it is known when -r is read.
    assert_eq!(port("-a -r 10.0.0.1 -m -t 1.2.3.4:80"), 0);
    assert_eq!(port("-a -r 10.0.0.1 -t 1.2.3.4:80"), 80);
}

#[test]
fn weight_and_thresholds() {
    let expected = Command::AddReal {
        service: vip80(),
        real: RealSpec {
            upper_threshold: 100,
            lower_threshold: 50,
            ..real(ip(10, 0, 0, 5), 8080, Forward::Masq, 3)
        },
    };
    assert_eq!(
        command("-a -t 192.168.1.99:80 -r 10.0.0.5:8080 -m -w 3 -x 100 -y 50"),
        expected
    );
    assert_eq!(
        command(
            "--add-server --tcp-service 192.168.1.99:80 --real-server 10.0.0.5:8080 \
             --masquerading --weight 3 --u-threshold 100 --l-threshold 50"
        ),
        expected
    );
    let weight = |line: &str| match command(line) {
        Command::AddReal { real, .. } => real.weight,
        other => panic!("{other:?}"),
    };
    assert_eq!(weight("-a -t 1.2.3.4:80 -r 10.0.0.1 -w 0"), 0);
    assert_eq!(weight("-a -t 1.2.3.4:80 -r 10.0.0.1 -w 65535"), 65535);
    assert_eq!(weight("-a -t 1.2.3.4:80 -r 10.0.0.1 -w +7"), 7);
}

#[test]
fn edit_server_resets_what_is_not_given() {
    assert_eq!(
        command("-e -t 192.168.1.99:80 -r 192.168.1.12"),
        Command::EditReal {
            service: vip80(),
            real: real(ip(192, 168, 1, 12), 80, Forward::Route, 1)
        }
    );
    assert_eq!(
        command("--edit-server -t 192.168.1.99:80 -r 192.168.1.12:81 -m -w 0"),
        Command::EditReal {
            service: vip80(),
            real: real(ip(192, 168, 1, 12), 81, Forward::Masq, 0)
        }
    );
}

#[test]
fn delete_server() {
    let expected = Command::DeleteReal {
        service: vip80(),
        addr: ip(192, 168, 1, 12),
        port: 80,
    };
    assert_eq!(command("-d -t 192.168.1.99:80 -r 192.168.1.12"), expected);
    assert_eq!(
        command("-d -t 192.168.1.99:80 -r 192.168.1.12:80"),
        expected
    );
    assert_eq!(
        command("--delete-server --tcp-service 192.168.1.99:80 --real-server 192.168.1.12"),
        expected
    );
    // No forwarding method here, so the port given is the port meant.
    assert_eq!(
        command("-d -t 192.168.1.99:80 -r 192.168.1.12:8080"),
        Command::DeleteReal {
            service: vip80(),
            addr: ip(192, 168, 1, 12),
            port: 8080
        }
    );
}

// ---- addresses and names ------------------------------------------------------------------

#[test]
fn service_names_and_host_names() {
    assert_eq!(
        command("-A -t 192.168.1.99:http -s rr"),
        Command::AddService {
            service: service(vip80(), Scheduler::Rr)
        }
    );
    assert_eq!(
        command("-a -t 192.168.1.99:www -r web1:http -m"),
        Command::AddReal {
            service: vip80(),
            real: real(ip(10, 0, 0, 1), 80, Forward::Masq, 1)
        }
    );
    assert_eq!(
        command("-A -t web1:https -s rr"),
        Command::AddService {
            service: service(tcp(ip(10, 0, 0, 1), 443), Scheduler::Rr)
        }
    );
    // Names of UDP services are looked up as UDP.
    assert_eq!(
        usage("-A -u 10.0.0.53:http"),
        "illegal virtual server address[:port] specified"
    );
    // Before -t the protocol is unknown, so a service name cannot resolve.
    assert_eq!(
        usage("-a -r 10.0.0.1:http -m -t 1.2.3.4:80"),
        "illegal real server address[:port] specified"
    );
}

#[test]
fn addresses_in_every_inet_aton_form() {
    assert_eq!(
        command("-D -t 10.1:80"),
        Command::DeleteService {
            service: tcp(ip(10, 0, 0, 1), 80)
        }
    );
    assert_eq!(
        command("-D -t 0xc0.0250.1.99:80"),
        Command::DeleteService { service: vip80() }
    );
}

#[test]
fn system_names_resolve_localhost() {
    let parsed = parse(&args("-D -t localhost:80")).unwrap();
    assert_eq!(
        parsed.invocation,
        Invocation::Apply(vec![Command::DeleteService {
            service: tcp(Ipv4Addr::LOCALHOST.into(), 80)
        }])
    );
}

#[test]
fn illegal_addresses() {
    let vs = "illegal virtual server address[:port] specified";
    for bad in [
        "80",
        "",
        "1.2.3.4:65536",
        "1.2.3.4:-1",
        "1.2.3.4:",
        "nohost:80",
        "1.2.3.4:nosuch",
        "256.1.1.1:80",
    ] {
        assert_eq!(usage(&format!("-A -t {bad} -s rr")), vs, "{bad}");
    }
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1:99999"),
        "illegal real server address[:port] specified"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 8080"),
        "illegal real server address[:port] specified"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -p -M 255.255.255.0.1"),
        "illegal virtual server persistent mask specified"
    );
}

// ---- other changes ------------------------------------------------------------------------

#[test]
fn clear_zero_and_timeouts() {
    assert_eq!(command("-C"), Command::Clear);
    assert_eq!(command("--clear"), Command::Clear);
    assert_eq!(command("-Z"), Command::Zero { service: None });
    assert_eq!(
        command("--zero -t 192.168.1.99:80"),
        Command::Zero {
            service: Some(vip80())
        }
    );
    assert_eq!(
        command("--set 900 120 300"),
        Command::SetTimeouts {
            timeouts: Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            }
        }
    );
    assert_eq!(
        command("--set 0 60 0"),
        Command::SetTimeouts {
            timeouts: Timeouts {
                tcp: 0,
                tcp_fin: 60,
                udp: 0
            }
        }
    );
}

// ---- listing, save, restore, help ---------------------------------------------------------

#[test]
fn bare_command_lists() {
    assert_eq!(invocation(""), Invocation::List(ListOptions::default()));
}

#[test]
fn list_spellings() {
    let numeric = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    for line in ["-Ln", "-ln", "-L -n", "-l -n", "--list --numeric", "-nL"] {
        if line == "-nL" {
            // ipvsadm wants the command first.
            assert_eq!(error(line), (CliError::TryHelp.to_string(), 255));
            continue;
        }
        assert_eq!(list(line), numeric, "{line}");
    }
    assert_eq!(list("-L"), ListOptions::default());
    assert_eq!(list("-L --sort"), ListOptions::default());
    assert_eq!(list("-L").what(), ListWhat::Services);
}

#[test]
fn list_variants() {
    let o = list("-l -n --stats --exact");
    assert!(o.numeric && o.stats && o.exact && !o.rate);
    assert!(list("-L --rate").rate);
    assert!(list("-L --thresholds").thresholds);
    assert!(list("-L --persistent-conn").persistent_conn);
    assert!(list("-L --nosort").nosort);
    assert!(list("-L --tun-info").tun_info);

    let c = list("-L -c -n");
    assert!(c.connection && c.numeric);
    assert_eq!(c.what(), ListWhat::Connections);
    assert_eq!(list("-Lnc --persistent-conn").what(), ListWhat::Connections);
    assert_eq!(list("-L --connection").what(), ListWhat::Connections);
    assert_eq!(list("-L --timeout").what(), ListWhat::Timeouts);
    assert_eq!(list("-L --daemon").what(), ListWhat::Daemon);

    let one = list("-L -n -t 192.168.1.99:80");
    assert_eq!(one.service, Some(vip80()));
    assert_eq!(one.what(), ListWhat::Services);
}

#[test]
fn list_conflicts() {
    assert_eq!(
        usage("-L -c --stats"),
        "options conflicts in the list command"
    );
    assert_eq!(
        usage("-L --timeout --rate"),
        "options conflicts in the list command"
    );
    assert_eq!(
        usage("-L --daemon --persistent-conn"),
        "options conflicts in the list command"
    );
    assert_eq!(
        usage("-L -c -t 1.2.3.4:80"),
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        usage("-L --timeout --daemon"),
        "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"
    );
    assert_eq!(
        usage("-L -s rr"),
        "Illegal 'scheduler' option with the 'list' command"
    );
}

#[test]
fn save_restore_help_version() {
    assert_eq!(invocation("-S"), Invocation::Save { numeric: false });
    assert_eq!(invocation("-Sn"), Invocation::Save { numeric: true });
    assert_eq!(invocation("--save -n"), Invocation::Save { numeric: true });
    assert_eq!(invocation("-R"), Invocation::Restore);
    assert_eq!(invocation("--restore"), Invocation::Restore);
    assert_eq!(invocation("-h"), Invocation::Help);
    assert_eq!(invocation("--help"), Invocation::Help);
    // ipvsadm prints its help as soon as it reads -h, whatever follows.
    assert_eq!(invocation("-h --bogus"), Invocation::Help);
    assert_eq!(invocation("-v"), Invocation::Version);
    assert_eq!(invocation("--version"), Invocation::Version);
    assert_eq!(
        usage("-R -n"),
        "Illegal 'numeric' option with the 'restore' command"
    );
    assert_eq!(
        usage("-S -c"),
        "Illegal 'connection' option with the 'save' command"
    );
}

// ---- lbadm's --socket ---------------------------------------------------------------------

#[test]
fn socket_anywhere() {
    for line in [
        "--socket /tmp/lbd.sock -Ln",
        "-Ln --socket /tmp/lbd.sock",
        "-L --socket=/tmp/lbd.sock -n",
    ] {
        let parsed = parse_line(line).unwrap();
        assert_eq!(
            parsed.socket,
            Some(PathBuf::from("/tmp/lbd.sock")),
            "{line}"
        );
        assert_eq!(
            parsed.invocation,
            Invocation::List(ListOptions {
                numeric: true,
                ..ListOptions::default()
            })
        );
    }
    let bare = parse_line("--socket /x").unwrap();
    assert_eq!(bare.invocation, Invocation::List(ListOptions::default()));
    assert_eq!(bare.socket, Some(PathBuf::from("/x")));
}

#[test]
fn socket_errors() {
    assert_eq!(
        error("-Ln --socket"),
        ("--socket: missing argument".to_owned(), 255)
    );
    assert_eq!(
        usage("--socket /a -L --socket /b"),
        "multiple 'socket' options specified"
    );
}

// ---- ipvsadm's errors ---------------------------------------------------------------------

#[test]
fn command_must_come_first() {
    let hint = (
        "Try `lbadm -h' or 'lbadm --help' for more information.".to_owned(),
        255,
    );
    assert_eq!(error("-t 1.2.3.4:80 -A"), hint);
    assert_eq!(error("list"), hint);
    assert_eq!(error("--bogus -L"), hint);
    assert_eq!(error("-n"), hint);
}

#[test]
fn popt_errors_after_the_command() {
    assert_eq!(
        error("-L --bogus"),
        ("--bogus: unknown option".to_owned(), 255)
    );
    assert_eq!(error("-Lq"), ("-Lq: unknown option".to_owned(), 255));
    assert_eq!(error("-A -t"), ("-t: missing argument".to_owned(), 255));
    assert_eq!(
        error("-a -t 1.2.3.4:80 --weight"),
        ("--weight: missing argument".to_owned(), 255)
    );
}

#[test]
fn second_command_is_an_invalid_option() {
    assert_eq!(usage("-A -t 1.2.3.4:80 -a"), "invalid option `-a'");
    assert_eq!(usage("-C --list"), "invalid option `--list'");
    assert_eq!(usage("-L -h"), "invalid option `-h'");
}

#[test]
fn missing_required_options() {
    assert_eq!(
        usage("-A -s rr"),
        "You need to supply the 'service-address' option for the 'add-service' command"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -w 2"),
        "You need to supply the 'real-server' option for the 'add-server' command"
    );
    assert_eq!(
        usage("-d -r 10.0.0.1"),
        "You need to supply the 'service-address' option for the 'delete-server' command"
    );
    assert_eq!(
        usage("-e -t 1.2.3.4:80"),
        "You need to supply the 'real-server' option for the 'edit-server' command"
    );
    assert_eq!(
        usage("-D"),
        "You need to supply the 'service-address' option for the 'delete-service' command"
    );
}

#[test]
fn illegal_options_for_the_command() {
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -w 2"),
        "Illegal 'weight' option with the 'add-service' command"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -r 10.0.0.1"),
        "Illegal 'real-server' option with the 'add-service' command"
    );
    assert_eq!(
        usage("-D -t 1.2.3.4:80 -s rr"),
        "Illegal 'scheduler' option with the 'delete-service' command"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -s rr"),
        "Illegal 'scheduler' option with the 'add-server' command"
    );
    assert_eq!(
        usage("-d -t 1.2.3.4:80 -r 10.0.0.1 -m"),
        "Illegal 'forwarding-method' option with the 'delete-server' command"
    );
    assert_eq!(
        usage("-C -t 1.2.3.4:80"),
        "Illegal 'service-address' option with the 'flush' command"
    );
    assert_eq!(
        usage("-Z -n"),
        "Illegal 'numeric' option with the 'zero' command"
    );
    assert_eq!(
        usage("--set 1 2 3 -n"),
        "Illegal 'numeric' option with the 'set' command"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -n"),
        "Illegal 'numeric' option with the 'add-service' command"
    );
    // Daemon options are checked as values, then refused by the table.
    assert_eq!(
        usage("-A -t 1.2.3.4:80 --mcast-port 8848"),
        "Illegal 'mcast-port' option with the 'add-service' command"
    );
    assert_eq!(usage("-L --syncid 300"), "illegal syncid specified");
    assert_eq!(usage("-L --mcast-ttl 0"), "illegal mcast-ttl specified");
    assert_eq!(
        usage("-L --sync-maxlen 70000"),
        "illegal sync-maxlen specified"
    );
    assert_eq!(
        usage("-L --mcast-group 10.0.0.1"),
        "invalid IPv4 mcast-group `10.0.0.1'"
    );
    assert_eq!(
        usage("-L --mcast-group ::1"),
        "invalid IPv6 mcast-group `::1'"
    );
}

#[test]
fn repeated_options() {
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -g -m"),
        "multiple 'forwarding-method' options specified"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -u 1.2.3.4:80"),
        "multiple 'service-address' options specified"
    );
    assert_eq!(usage("-Ln -n"), "multiple 'numeric' options specified");
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -w 1 -w 2"),
        "multiple 'weight' options specified"
    );
}

#[test]
fn illegal_values() {
    for w in ["65536", "-1", "x", "", "1.5"] {
        assert_eq!(
            usage(&format!("-a -t 1.2.3.4:80 -r 10.0.0.1 -w={w}")),
            "illegal weight specified",
            "{w}"
        );
    }
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -x 2147483648"),
        "illegal u_threshold specified"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -y many"),
        "illegal l_threshold specified"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -p 0"),
        "invalid timeout value `0' specified"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -p 2678401"),
        "invalid timeout value `2678401' specified"
    );
    assert_eq!(
        usage("--set 900 120 x"),
        "invalid timeout value `x' specified"
    );
    assert_eq!(
        usage("--set 900 120"),
        "--set option requires 3 timeout values"
    );
    assert_eq!(usage("--set 900 120 300 60"), "unexpected argument 60");
    assert_eq!(usage("-L extra"), "unexpected argument extra");
    assert_eq!(usage("-C now"), "unexpected argument now");
}

#[test]
fn checks_come_in_ipvsadm_order() {
    // A bad value is reported before a bad option further right...
    assert_eq!(
        usage("-A -t 1.2.3.4:80 -w x -p 0"),
        "illegal weight specified"
    );
    // ...the table before the zero-port rule, and both before the kernel's scheduler check.
    assert_eq!(
        usage("-A -t 1.2.3.4 -s fastest -r 10.0.0.1"),
        "Illegal 'real-server' option with the 'add-service' command"
    );
    assert_eq!(
        usage("-A -t 1.2.3.4 -s fastest"),
        "Zero port specified for non-persistent service"
    );
    // Plain arguments are judged before the scheduler flags and the table.
    assert_eq!(
        usage("-D -t 1.2.3.4:80 -b bogus extra"),
        "unexpected argument extra"
    );
    assert_eq!(
        usage("-D -t 1.2.3.4:80 -b bogus"),
        "invalid scheduler flag `bogus'"
    );
}

#[test]
fn tunnel_options() {
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 --tun-type ipip"),
        "Tunnel options conflict with forward method"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-port 6080"),
        "Illegal 'tun-port' option with the 'ipip' tunnel type"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-csum"),
        "Illegal 'tun-csum' option with the 'ipip' tunnel type"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type vxlan"),
        "illegal tunnel type specified"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-port 0"),
        "illegal tunnel port specified"
    );
    // ipvsadm 1.31's tunnel_opt_check, for gue and gre.
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue"),
        "You need to supply the 'tun-port' option for the 'gue' tunnel type"
    );
    assert_eq!(
        usage(
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue --tun-port 6080 --tun-csum --tun-remcsum"
        ),
        "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"
    );
    assert_eq!(
        usage(
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue --tun-port 6080 --tun-nocsum --tun-csum"
        ),
        "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gre --tun-port 6080"),
        "Illegal 'tun-port' option with the 'gre' tunnel type"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gre --tun-remcsum"),
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type"
    );
    assert_eq!(
        usage("-a -t 1.2.3.4:80 -r 10.0.0.1 -m --tun-type gre"),
        "Tunnel options conflict with forward method"
    );
}

#[test]
fn gue_and_gre_real_servers() {
    let tunnel = |line: &str| match invocation(line) {
        Invocation::Apply(commands) => match &commands[..] {
            [Command::AddReal { real, .. } | Command::EditReal { real, .. }] => real.tunnel,
            other => panic!("{line}: {other:?}"),
        },
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        tunnel("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue --tun-port 6080"),
        Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            csum: TunnelCsum::Nocsum
        }
    );
    assert_eq!(
        tunnel("-e -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue --tun-port 6079 --tun-remcsum"),
        Tunnel {
            kind: TunnelType::Gue,
            port: 6079,
            csum: TunnelCsum::Remcsum
        }
    );
    assert_eq!(
        tunnel("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gre --tun-csum"),
        Tunnel {
            kind: TunnelType::Gre,
            port: 0,
            csum: TunnelCsum::Csum
        }
    );
    assert_eq!(tunnel("-a -t 1.2.3.4:80 -r 10.0.0.1 -i"), Tunnel::default());
}

#[test]
fn features_lb_does_not_have() {
    let unsupported = |line: &str, what: &str| {
        let (message, code) = error(line);
        assert_eq!(message, format!("{what} not supported by lb"), "{line}");
        assert_eq!(code, 2, "{line}");
    };
    unsupported("-A -f 1 -s rr", "firewall-mark services (-f) are");
    unsupported("-A --sctp-service 1.2.3.4:80", "SCTP services are");
    unsupported("-A -u 1.2.3.4:53 -o", "One-Packet Scheduling (-o) is");
    unsupported(
        "-A -t 1.2.3.4:5060 -p --pe sip",
        "Persistence engines (--pe) are",
    );
    assert_eq!(usage("-A -f 0"), "invalid fwmark value `0' specified");
    assert_eq!(usage("-A -t 1.2.3.4:80 -6"), "-6 used before -f\n");
}

#[test]
fn sync_daemon_commands() {
    use crate::sync::{Role, SyncDaemon};
    let daemon = |line: &str| match command(line) {
        Command::StartDaemon { daemon } => daemon,
        other => panic!("{line}: {other:?}"),
    };
    // Without options: ipvsadm's eth0, the rest left to the kernel's defaults.
    assert_eq!(
        daemon("--start-daemon master"),
        SyncDaemon {
            role: Role::Master,
            mcast_ifn: "eth0".to_owned(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        }
    );
    assert_eq!(
        daemon(
            "--start-daemon backup --mcast-interface ens3 --syncid 7 --sync-maxlen 1400 \
             --mcast-group 239.0.0.9 --mcast-port 9000 --mcast-ttl 3"
        ),
        SyncDaemon {
            role: Role::Backup,
            mcast_ifn: "ens3".to_owned(),
            syncid: 7,
            sync_maxlen: 1400,
            mcast_group: Some(ip(239, 0, 0, 9)),
            mcast_port: 9000,
            mcast_ttl: 3,
        }
    );
    assert_eq!(
        daemon("--start-daemon master --mcast-group ff02::81").mcast_group,
        Some(ip6("ff02::81"))
    );
    assert_eq!(
        command("--stop-daemon backup"),
        Command::StopDaemon { role: Role::Backup }
    );
    // --syncid is allowed when stopping (ipvsadm sends it; the kernel ignores it).
    assert_eq!(
        command("--stop-daemon master --syncid 3"),
        Command::StopDaemon { role: Role::Master }
    );
    // ipvsadm's messages, in its order.
    assert_eq!(
        usage("--start-daemon primary"),
        "illegal start-daemon parameter specified"
    );
    assert_eq!(
        usage("--stop-daemon primary"),
        "illegal start_daemon specified"
    );
    assert_eq!(
        usage("--stop-daemon master --mcast-interface eth0"),
        "Illegal 'mcast-interface' option with the 'stop-daemon' command"
    );
    assert_eq!(
        usage("--start-daemon master -n"),
        "Illegal 'numeric' option with the 'start-daemon' command"
    );
    assert_eq!(
        usage("--start-daemon master --syncid 256"),
        "illegal syncid specified"
    );
    assert_eq!(
        usage("--start-daemon master --syncid 1 --syncid 2"),
        "multiple 'syncid' options specified"
    );
    assert_eq!(
        usage("--start-daemon master --mcast-group 10.1.1.1"),
        "invalid IPv4 mcast-group `10.1.1.1'"
    );
    assert_eq!(
        usage("--start-daemon master extra"),
        "unexpected argument extra"
    );
    assert_eq!(usage("--start-daemon master -A"), "invalid option `-A'");
    // -L --daemon lists them; other listing options conflict as in ipvsadm.
    assert_eq!(list("-L --daemon").what(), ListWhat::Daemon);
    assert_eq!(
        usage("-L --daemon --stats"),
        "options conflicts in the list command"
    );
}

// ---- restore ------------------------------------------------------------------------------

fn restore(input: &str) -> Result<Vec<Command>, CliError> {
    parse_restore_with(input, &FakeNames::new())
}

#[test]
fn restore_reads_rules_skipping_blanks_comments_and_program_name() {
    let input = "\
# saved by ipvsadm -Sn
-A -t 192.168.1.99:80 -s rr

ipvsadm -a -t 192.168.1.99:80 -r 192.168.1.12:80 -g -w 1
lbadm -a -t 192.168.1.99:80 -r 192.168.1.13:80 -g -w 1   # second
\t-Z\r
--set 900 120 300
-C
";
    assert_eq!(
        restore(input).unwrap(),
        vec![
            Command::AddService {
                service: service(vip80(), Scheduler::Rr)
            },
            Command::AddReal {
                service: vip80(),
                real: real(ip(192, 168, 1, 12), 80, Forward::Route, 1)
            },
            Command::AddReal {
                service: vip80(),
                real: real(ip(192, 168, 1, 13), 80, Forward::Route, 1)
            },
            Command::Zero { service: None },
            Command::SetTimeouts {
                timeouts: Timeouts {
                    tcp: 900,
                    tcp_fin: 120,
                    udp: 300
                }
            },
            Command::Clear,
        ]
    );
    assert_eq!(restore("").unwrap(), vec![]);
    assert_eq!(restore("\n# nothing\n   \n").unwrap(), vec![]);
}

#[test]
fn restore_reports_the_failing_line() {
    let input = "-A -t 192.168.1.99:80 -s rr\n-a -t 192.168.1.99:80 -r 192.168.1.12 -w 70000\n";
    let e = restore(input).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        e.to_string(),
        "illegal weight specified\n  in line 2 of the restore input: -a -t 192.168.1.99:80 -r 192.168.1.12 -w 70000"
    );
    let e = restore("\n\n-A -t 1.2.3.4:80 -s best\r\n").unwrap_err();
    assert_eq!(e.exit_code(), 255);
    assert_eq!(
        e.to_string(),
        "Scheduler or persistence engine not found\n  in line 3 of the restore input: -A -t 1.2.3.4:80 -s best"
    );
}

#[test]
fn restore_only_takes_rules() {
    let e = restore("-R\n").unwrap_err();
    assert_eq!(e.exit_code(), 255);
    assert!(e.to_string().starts_with("Try `lbadm -h'"));
    let e = restore("-A -t 1.2.3.4:80\n-L -n\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "only rules (-A -E -D -a -e -d -C -Z --set) can be restored\n  in line 2 of the restore input: -L -n"
    );
    // lbadm's own option is not part of the rule syntax.
    assert_eq!(
        restore("-C --socket /x\n").unwrap_err().to_string(),
        "--socket: unknown option\n  in line 1 of the restore input: -C --socket /x"
    );
}

// ---- IPv6 ---------------------------------------------------------------------------------
// Messages and outcomes as the real ipvsadm 1.31 gave them (tests/golden/ipvsadm/ipv6.golden).

fn v6(port: u16) -> ServiceAddr {
    tcp(ip6("2001:db8::1"), port)
}

fn with_persistence(line: &str) -> Persistence {
    match command(line) {
        Command::AddService { service } => service.persistence.expect(line),
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn ipv6_services_in_brackets() {
    assert_eq!(
        command("-A -t [2001:db8::1]:80 -s rr"),
        Command::AddService {
            service: service(v6(80), Scheduler::Rr)
        }
    );
    // Service names resolve after the brackets as after an IPv4 address.
    assert_eq!(
        command("-D -t [2001:db8::1]:http"),
        Command::DeleteService { service: v6(80) }
    );
    // Without brackets the whole text is the address, without a port.
    assert_eq!(
        command("-D -t 2001:db8::1:80"),
        Command::DeleteService {
            service: tcp(ip6("2001:db8::1:80"), 0)
        }
    );
    assert_eq!(
        usage("-A -t 2001:db8::5 -s rr"),
        "Zero port specified for non-persistent service"
    );
    for bad in [
        "[2001:db8::6]",
        "[2001:db8::6",
        "[2001:db8::6]80",
        "[2001:db8::6]:",
    ] {
        assert_eq!(
            usage(&format!("-A -t {bad} -s rr")),
            "illegal virtual server address[:port] specified",
            "{bad}"
        );
    }
    // Brackets around an IPv4 address: ipvsadm looks for the port inside them, finds none.
    assert_eq!(
        usage("-A -t [10.0.0.6]:80 -s rr"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        command("-A -t [::ffff:10.0.0.9]:80 -s rr"),
        Command::AddService {
            service: service(tcp(ip6("::ffff:10.0.0.9"), 80), Scheduler::Rr)
        }
    );
    assert_eq!(list("-L -n -t [2001:db8::1]:80").service, Some(v6(80)));
}

#[test]
fn ipv6_persistence_takes_a_prefix_length() {
    let v6mask = |len| Netmask::V6(len);
    assert_eq!(
        with_persistence("-A -t [2001:db8::1]:80 -p 600 -M 64").netmask,
        v6mask(64)
    );
    assert_eq!(
        with_persistence("-A -t [2001:db8::1]:80 -p").netmask,
        v6mask(128)
    );
    // atoi: digits as far as they go.
    assert_eq!(
        with_persistence("-A -t [2001:db8::1]:80 -p -M 48abc").netmask,
        v6mask(48)
    );
    // -M before -t is read as an IPv4 netmask, then the IPv6 address resets it to 128.
    assert_eq!(
        with_persistence("-A -M 56 -t [2001:db8::3]:443 -p 100").netmask,
        v6mask(128)
    );
    assert_eq!(
        usage("-A -M nosuchmask -t [2001:db8::3]:443 -p 100"),
        "illegal virtual server persistent mask specified"
    );
    for bad in ["0", "129", "255.255.255.0", "abc", "-1"] {
        assert_eq!(
            usage(&format!("-A -t [2001:db8::2]:443 -p -M {bad}")),
            "illegal ipv6 netmask specified",
            "{bad}"
        );
    }
    // An IPv4 service still takes a netmask, even a number (inet_aton: 0.0.0.64).
    assert_eq!(
        with_persistence("-A -t 10.0.0.3:443 -p 100 -M 64").netmask,
        Netmask::V4(Ipv4Addr::new(0, 0, 0, 64))
    );
}

#[test]
fn ipv6_real_servers_and_mixed_families() {
    assert_eq!(
        command("-a -t [2001:db8::1]:80 -r [2001:db8::12]:8080 -g -w 2"),
        Command::AddReal {
            service: v6(80),
            // Direct routing keeps the service's port.
            real: real(ip6("2001:db8::12"), 80, Forward::Route, 2),
        }
    );
    assert_eq!(
        command("-a -t [2001:db8::1]:80 -r [2001:db8::12]:8080 -m"),
        Command::AddReal {
            service: v6(80),
            real: real(ip6("2001:db8::12"), 8080, Forward::Masq, 1),
        }
    );
    assert_eq!(
        usage("-a -t [2001:db8::1]:80 -r [2001:db8::11] -g"),
        "illegal real server address[:port] specified"
    );
    const MIXED: &str = "Different address family is allowed only for tunneling servers";
    for line in [
        "-a -t [2001:db8::1]:80 -r 10.0.1.1 -g",
        "-a -t [2001:db8::1]:80 -r 10.0.1.1:80 -m",
        "-a -t 10.0.0.1:80 -r [2001:db8::23]:8080 -m",
        "-e -t [2001:db8::1]:80 -r 10.0.1.1 -g -w 7",
    ] {
        assert_eq!(usage(line), MIXED, "{line}");
    }
    // Tunnels may mix families (IPVS since Linux 3.18), both ways.
    assert_eq!(
        command("-a -t [2001:db8::1]:80 -r 10.0.1.1 -i"),
        Command::AddReal {
            service: v6(80),
            real: real(ip(10, 0, 1, 1), 80, Forward::Tunnel, 1),
        }
    );
    assert_eq!(
        command("-a -t 10.0.0.1:80 -r [2001:db8::21]:80 -i -w 5"),
        Command::AddReal {
            service: tcp(ip(10, 0, 0, 1), 80),
            real: real(ip6("2001:db8::21"), 80, Forward::Tunnel, 5),
        }
    );
    // Deleting checks no family (-d has no forwarding method).
    assert_eq!(
        command("-d -t [2001:db8::1]:80 -r 10.0.1.1"),
        Command::DeleteReal {
            service: v6(80),
            addr: ip(10, 0, 1, 1),
            port: 80,
        }
    );
}

#[test]
fn ipv6_restore_of_a_mixed_file() {
    let commands = parse_restore_with(
        "-A -t [2001:db8::40]:80 -s rr\n\
         -a -t [2001:db8::40]:80 -r [2001:db8::41]:80 -g -w 1\n\
         -A -t 10.0.0.40:80 -s rr\n\
         -a -t 10.0.0.40:80 -r [2001:db8::42]:80 -i -w 1 --tun-type ipip\n\
         -a -t 10.0.0.40:80 -r 10.0.1.40:80 -g -w 1\n\
         -A -u [2001:db8::40]:53 -s rr -p 300 -M 96\n",
        &FakeNames::new(),
    )
    .unwrap();
    assert_eq!(commands.len(), 6);
    assert_eq!(
        commands[5],
        Command::AddService {
            service: ServiceSpec {
                persistence: Some(Persistence {
                    timeout: 300,
                    netmask: Netmask::V6(96)
                }),
                ..service(
                    ServiceAddr {
                        protocol: Protocol::Udp,
                        addr: ip6("2001:db8::40"),
                        port: 53
                    },
                    Scheduler::Rr
                )
            }
        }
    );
    let err = parse_restore_with(
        "-A -t [2001:db8::50]:80 -s rr\n-a -t [2001:db8::50]:80 -r 10.0.1.50:80 -m -w 1\n",
        &FakeNames::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Different address family is allowed only for tunneling servers"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
}
