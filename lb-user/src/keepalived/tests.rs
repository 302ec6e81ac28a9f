//! keepalived.conf files in, LVS configuration, notes and errors out.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::{
    CheckKind, HealthCheck, HttpGet, HttpUrl, HttpVersion, LvsConfig, RealServerConf, Script,
    SorryServer, StatusCodes, files::mem::MemFiles, parse_with, read_file,
};
use crate::{
    health::ScriptSpec,
    model::{
        Forward, Persistence, Protocol, RealSpec, SchedFlags, Scheduler, ServiceAddr, Timeouts,
    },
};

const ETC: &str = "/etc/keepalived/keepalived.conf";

fn parse_files(files: &MemFiles, text: &str, name: &str) -> LvsConfig {
    parse_with(files, text, name, "lb1").unwrap_or_else(|e| panic!("refused:\n{e}"))
}

fn parse(text: &str) -> LvsConfig {
    parse_files(&MemFiles::default(), text, "k.conf")
}

fn errors_in(files: &MemFiles, text: &str, name: &str) -> Vec<String> {
    match parse_with(files, text, name, "lb1") {
        Ok(config) => panic!("accepted: {config:#?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn errors(text: &str) -> Vec<String> {
    errors_in(&MemFiles::default(), text, "k.conf")
}

fn notes(config: &LvsConfig) -> Vec<String> {
    config.notes.iter().map(ToString::to_string).collect()
}

/// The commands in ipvsadm's spelling.
fn commands(config: &LvsConfig) -> Vec<String> {
    config.commands().iter().map(ToString::to_string).collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A one-real-server service around `body`, which starts on line 3.
fn service(body: &str) -> String {
    format!(
        "virtual_server 10.0.0.1 80 {{\n    protocol TCP\n{body}\n    real_server 10.0.0.11 80 \
         {{\n    }}\n}}\n"
    )
}

// ---- the samples ------------------------------------------------------------------------

/// Seed 002: two directors with keepalived in front of LVS-DR, two web servers checked with
/// HTTP_GET. Its screenshots are lost; this is the configuration its text describes.
const SEED_002: &str = r#"! Configuration File for keepalived

global_defs {
   notification_email {
     root@localhost
   }
   notification_email_from keepalived@localhost
   smtp_server 127.0.0.1
   smtp_connect_timeout 30
   router_id director1
}

vrrp_script chk_down {
   script "[ -f /etc/keepalived/down ] && exit 1 || exit 0"
   interval 1
   weight -20
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        172.16.10.50
    }
    track_script {
        chk_down
    }
}

virtual_server 172.16.10.50 80 {
    delay_loop 6
    lb_algo wlc
    lb_kind DR
    nat_mask 255.255.255.0
    persistence_timeout 50
    protocol TCP

    real_server 172.16.10.20 80 {
        weight 1
        HTTP_GET {
            url {
              path /
              status_code 200
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
    real_server 172.16.10.30 80 {
        weight 1
        HTTP_GET {
            url {
              path /
              status_code 200
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
}
"#;

#[test]
fn seed_002_director_with_dr_and_http_checks() {
    let config = parse_files(&MemFiles::default(), SEED_002, ETC);

    assert_eq!(
        notes(&config),
        [
            "/etc/keepalived/keepalived.conf:3: global_defs ignored: it configures keepalived \
             itself",
            "/etc/keepalived/keepalived.conf:13: vrrp_script chk_down ignored: keepalived \
             itself runs VRRP and its trackers",
            "/etc/keepalived/keepalived.conf:19: vrrp_instance VI_1 ignored: keepalived itself \
             runs VRRP",
            "/etc/keepalived/keepalived.conf:41: nat_mask ignored: it only ever applied to Linux \
             2.2, and keepalived no longer has it",
            "/etc/keepalived/keepalived.conf:53: nb_get_retry is deprecated in keepalived: read \
             as 'retry'",
            "/etc/keepalived/keepalived.conf:65: nb_get_retry is deprecated in keepalived: read \
             as 'retry'",
        ]
    );
    assert_eq!(config.services.len(), 1);
    let vs = &config.services[0];
    assert_eq!(
        vs.spec.addr,
        ServiceAddr {
            protocol: Protocol::Tcp,
            addr: ip("172.16.10.50"),
            port: 80
        }
    );
    assert_eq!(vs.spec.scheduler, Scheduler::Wlc);
    assert_eq!(
        vs.spec.persistence,
        Some(Persistence {
            timeout: 50,
            netmask: crate::model::Netmask::V4(Ipv4Addr::BROADCAST)
        })
    );
    assert_eq!(vs.delay_loop, secs(6));
    assert_eq!((vs.quorum, vs.hysteresis), (1, 0));
    assert_eq!(vs.sorry_server, None);
    assert_eq!(vs.location.to_string(), format!("{ETC}:37"));

    let check = |line| HealthCheck {
        kind: CheckKind::Http(HttpGet {
            urls: vec![HttpUrl {
                path: "/".into(),
                status_codes: StatusCodes(vec![(200, 200)]),
                virtualhost: None,
                digest: None,
                regex: None,
            }],
            protocol: HttpVersion::V1_0,
            fast_recovery: false,
            tls: false,
            client_cert: None,
        }),
        addr: Ipv4Addr::UNSPECIFIED.into(),
        port: 80,
        bindto: None,
        bind_port: None,
        connect_timeout: secs(3),
        retry: 3,
        delay_before_retry: secs(3),
        delay_loop: secs(6),
        warmup: secs(6),
        alpha: false,
        log_all_failures: false,
        location: super::Location {
            file: ETC.into(),
            line,
        },
    };
    let real = |addr: &str, line, check_line| RealServerConf {
        spec: RealSpec {
            addr: ip(addr),
            port: 80,
            forward: Forward::Route,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Default::default(),
        },
        inhibit_on_failure: false,
        checks: vec![HealthCheck {
            addr: ip(addr),
            ..check(check_line)
        }],
        notify_up: None,
        notify_down: None,
        location: super::Location {
            file: ETC.into(),
            line,
        },
    };
    assert_eq!(
        vs.reals,
        [real("172.16.10.20", 45, 47), real("172.16.10.30", 57, 59)]
    );
    assert_eq!(
        commands(&config),
        [
            "-A -t 172.16.10.50:80 -s wlc -p 50",
            "-a -t 172.16.10.50:80 -r 172.16.10.20:80 -g -w 1",
            "-a -t 172.16.10.50:80 -r 172.16.10.30:80 -g -w 1",
        ]
    );
}

#[test]
fn example_conf() {
    let config = parse_files(&MemFiles::default(), include_str!("example.conf"), ETC);
    assert_eq!(
        notes(&config),
        [
            "/etc/keepalived/keepalived.conf:8: global_defs ignored but for lvs_timeouts: the \
             rest configures keepalived itself",
            "/etc/keepalived/keepalived.conf:22: vrrp_script chk_down ignored: keepalived \
             itself runs VRRP and its trackers",
            "/etc/keepalived/keepalived.conf:28: vrrp_instance VI_1 ignored: keepalived itself \
             runs VRRP",
        ]
    );
    assert_eq!(
        commands(&config),
        [
            "--set 900 120 300",
            "-A -t 172.16.10.50:80 -s wlc -p 600 -M 255.255.255.0",
            "-a -t 172.16.10.50:80 -r 172.16.10.11:80 -g -w 2",
            "-a -t 172.16.10.50:80 -r 172.16.10.12:80 -g -w 1 -x 5000",
            "-A -u 172.16.10.53:53 -s rr",
            "-a -u 172.16.10.53:53 -r 10.0.1.21:5353 -m -w 1",
            "-a -u 172.16.10.53:53 -r 10.0.1.22:5353 -m -w 1",
        ]
    );
    let web = &config.services[0];
    assert_eq!(
        web.sorry_server,
        Some(SorryServer {
            spec: RealSpec {
                addr: ip("172.16.10.40"),
                port: 80,
                forward: Forward::Route,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
                tunnel: Default::default(),
            },
            inhibit: false,
        })
    );
    assert!(web.reals[0].inhibit_on_failure);
    assert_eq!(
        web.reals[1].notify_down,
        Some(Script {
            command: "/usr/local/bin/page-oncall 'web2 down'".into(),
            user: None,
            group: None,
            spec: ScriptSpec {
                argv: vec!["/usr/local/bin/page-oncall".into(), "web2 down".into()],
                uid: None,
                gid: None,
            },
        })
    );
    let dns_check = &config.services[1].reals[0].checks[0];
    assert_eq!(dns_check.kind, CheckKind::Tcp);
    assert_eq!((dns_check.addr, dns_check.port), (ip("10.0.1.21"), 53));
    assert_eq!(dns_check.connect_timeout, secs(2));
    assert_eq!(dns_check.delay_loop, secs(10));
    assert_eq!(dns_check.delay_before_retry, secs(1));
    assert_eq!(dns_check.retry, 1);
}

#[test]
fn example_conf_from_disk() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/keepalived/example.conf");
    let config = super::parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.services.len(), 2);
    let missing = super::parse_file(std::path::Path::new("/nonexistent/keepalived.conf"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        missing,
        "cannot read /nonexistent/keepalived.conf: No such file or directory (os error 2) at \
         /nonexistent/keepalived.conf"
    );
}

/// The README's two-director sample: keepalived runs its VRRP part, lbd reads the rest.
#[test]
fn two_directors_conf() {
    assert!(
        include_str!("../../../README.md").contains(include_str!("two-directors.conf")),
        "the README's copy of two-directors.conf differs from the file"
    );
    let config = parse_files(
        &MemFiles::default(),
        include_str!("two-directors.conf"),
        ETC,
    );
    assert_eq!(
        notes(&config),
        [
            "/etc/keepalived/keepalived.conf:10: global_defs ignored but for script_user: the \
             rest configures keepalived itself",
            "/etc/keepalived/keepalived.conf:12: enable_script_security ignored: lbd does not \
             check who may write the scripts it runs; keep them writable by root only",
            "/etc/keepalived/keepalived.conf:17: vrrp_script chk_lbd ignored: keepalived \
             itself runs VRRP and its trackers",
            "/etc/keepalived/keepalived.conf:25: vrrp_instance VI_1 ignored: keepalived itself \
             runs VRRP",
        ]
    );
    assert_eq!(
        commands(&config),
        [
            "-A -t 192.168.1.99:80 -s mh -b mh-port",
            "-a -t 192.168.1.99:80 -r 192.168.1.12:80 -g -w 1",
            "-a -t 192.168.1.99:80 -r 192.168.1.13:80 -g -w 1",
        ]
    );
    // mh-port: the client's port is hashed too (the commands' spelling leaves flags out).
    assert_eq!(
        config.services[0].spec.sched_flags,
        SchedFlags {
            fallback: false,
            port: true,
            flag3: false
        }
    );
    let checks = &config.services[0].reals[1].checks;
    assert_eq!(checks.len(), 1);
    assert_eq!(
        (checks[0].addr, checks[0].port, checks[0].delay_loop),
        (ip("192.168.1.13"), 80, secs(3))
    );
}

// ---- every keyword ------------------------------------------------------------------------

const EVERY_KEYWORD: &str = r#"global_defs {
    router_id lb1
    lvs_timeouts tcp 7200 udp 60
    lvs_flush
    lvs_sync_daemon eth1 VI_1
    lvs_flush_on_stop
}
virtual_server 10.0.0.1 80 {
    protocol tcp
    lvs_sched wrr
    lvs_method NAT
    delay_loop 2.5
    connect_timeout 4
    retry 2
    delay_before_retry 0.5
    warmup 1
    inhibit_on_failure
    alpha
    omega
    ha_suspend
    ip_family inet
    quorum 2
    hysteresis 1
    quorum_up "/bin/quorum up" nobody
    quorum_down /bin/quorum-down
    virtualhost www.example.com
    weight 3
    smtp_alert
    snmp_name web
    persistence_granularity 255.255.0.0
    sorry_server 10.0.9.9 8080
    sorry_server_inhibit
    sorry_server_lvs_method DR
    real_server 10.0.1.1 8080 {
        uthreshold 100
        lthreshold 50
        inhibit_on_failure off
        notify_up "/bin/up 10.0.1.1" nobody nogroup
        notify_down /bin/down
        alpha no
        retry 4
        delay_before_retry 2
        warmup 0
        connect_timeout 1.5
        delay_loop 3
        virtualhost rs.example.com
        smtp_alert no
        snmp_name rs1
        TCP_CHECK {
            connect_ip 10.0.2.1
            connect_port 8081
            bindto 10.0.0.250
            bind_port 40000
            connect_timeout 0.25
            retry 0
            delay_before_retry 0.1
            warmup 5
            delay_loop 1
            alpha yes
            log_all_failures
        }
        HTTP_GET {
            nb_get_retry 5
            virtualhost check.example.com
            http_protocol 1.1
            fast_recovery
            url {
                path /ready
                status_code 200 204 300-302
                status_code 418
            }
            url {
                path "/a path?x=1"
                virtualhost url.example.com
            }
        }
    }
    real_server 10.0.1.2 8080 {
        weight 0
        lvs_method TUN type ipip nocsum
        HTTP_GET {
            url {
                path /
            }
        }
    }
}
virtual_server 10.0.0.2 443 {
    protocol TCP
    lb_algo sh
    sh-port
    sh-fallback
    lb_kind TUN
    persistence_timeout
    real_server 10.0.1.1 443 {
    }
}
virtual_server 10.0.0.3 53 {
    protocol UDP
    lb_algo mh
    mh-port
    mh-fallback
    lb_kind DR
    real_server 10.0.1.1 {
    }
}
virtual_server 10.0.0.4 0 {
    protocol TCP
    lb_algo lblcr
    flag-1
    flag-2
    flag-3
    ops
    hashed
    lb_kind DR
    real_server 10.0.1.1 {
    }
}
"#;

#[test]
fn every_supported_keyword() {
    let config = parse(EVERY_KEYWORD);
    assert_eq!(
        config.timeouts,
        Some(Timeouts {
            tcp: 7200,
            tcp_fin: 0,
            udp: 60
        })
    );
    assert!(config.flush);
    assert_eq!(
        notes(&config),
        [
            "k.conf:1: global_defs ignored but for lvs_timeouts, lvs_flush: the rest configures \
             keepalived itself",
            "k.conf:5: lvs_sync_daemon ignored: lb has no connection synchronisation, so \
             connections do not survive a failover to the other director",
            "k.conf:6: lvs_flush_on_stop ignored: lbd keeps its configuration when keepalived \
             stops",
            "k.conf:28: smtp_alert ignored: lb sends no e-mail",
            "k.conf:29: snmp_name ignored: lb has no SNMP agent",
            "k.conf:31: sorry_server port 8080 differs from the virtual server's 80: with DR \
             the port cannot change, keepalived resets it to 80",
            "k.conf:47: smtp_alert ignored: lb sends no e-mail",
            "k.conf:48: snmp_name ignored: lb has no SNMP agent",
            "k.conf:63: nb_get_retry is deprecated in keepalived: read as 'retry'",
            "k.conf:78: real_server port 8080 differs from the virtual server's 80: with TUN \
             the port cannot change, keepalived resets it to 80",
            "k.conf:107: virtual_server 10.0.0.4 0: port 0 (all ports) needs persistence: \
             keepalived makes it persistent (360 s)",
            "k.conf:113: ops ignored: one-packet scheduling only applies to UDP (keepalived \
             ignores it too)",
            "k.conf:114: hashed ignored: it has no effect in keepalived either",
        ]
    );
    let [a, b, c, d] = &config.services[..] else {
        panic!("{:#?}", config.services)
    };
    let at = |line| super::Location {
        file: "k.conf".into(),
        line,
    };

    // virtual_server 10.0.0.1 80: service-level settings and their inheritance.
    assert_eq!(
        a.spec.addr,
        ServiceAddr {
            protocol: Protocol::Tcp,
            addr: ip("10.0.0.1"),
            port: 80
        }
    );
    assert_eq!(a.spec.scheduler, Scheduler::Wrr);
    assert_eq!(
        a.spec.persistence,
        Some(Persistence {
            timeout: 360,
            netmask: crate::model::Netmask::V4("255.255.0.0".parse().unwrap())
        })
    );
    assert_eq!(a.spec.sched_flags, SchedFlags::default());
    assert_eq!((a.quorum, a.hysteresis), (2, 1));
    assert_eq!(
        a.quorum_up,
        Some(Script {
            command: "/bin/quorum up".into(),
            user: Some("nobody".into()),
            group: None,
            spec: ScriptSpec {
                argv: vec!["/bin/quorum".into(), "up".into()],
                uid: Some(65534),
                gid: Some(65534),
            },
        })
    );
    assert_eq!(
        a.quorum_down,
        Some(Script {
            command: "/bin/quorum-down".into(),
            user: None,
            group: None,
            spec: ScriptSpec {
                argv: vec!["/bin/quorum-down".into()],
                uid: None,
                gid: None,
            },
        })
    );
    assert_eq!(a.delay_loop, Duration::from_millis(2500));
    assert!(a.alpha && a.omega && a.ha_suspend);
    assert_eq!(
        a.sorry_server,
        Some(SorryServer {
            spec: RealSpec {
                addr: ip("10.0.9.9"),
                port: 80,
                forward: Forward::Route,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
                tunnel: Default::default(),
            },
            inhibit: true
        })
    );
    let [r1, r2] = &a.reals[..] else {
        panic!("{:#?}", a.reals)
    };
    assert_eq!(
        r1.spec,
        RealSpec {
            addr: ip("10.0.1.1"),
            port: 8080,
            forward: Forward::Masq,
            weight: 3,
            upper_threshold: 100,
            lower_threshold: 50,
            tunnel: Default::default(),
        }
    );
    assert!(!r1.inhibit_on_failure);
    assert_eq!(
        r1.notify_up,
        Some(Script {
            command: "/bin/up 10.0.1.1".into(),
            user: Some("nobody".into()),
            group: Some("nogroup".into()),
            spec: ScriptSpec {
                argv: vec!["/bin/up".into(), "10.0.1.1".into()],
                uid: Some(65534),
                gid: Some(65534),
            },
        })
    );
    assert_eq!(r1.notify_down.as_ref().unwrap().command, "/bin/down");
    assert_eq!(
        r1.checks,
        [
            HealthCheck {
                kind: CheckKind::Tcp,
                addr: ip("10.0.2.1"),
                port: 8081,
                bindto: Some(ip("10.0.0.250")),
                bind_port: Some(40000),
                connect_timeout: Duration::from_millis(250),
                retry: 0,
                delay_before_retry: Duration::from_millis(100),
                delay_loop: secs(1),
                warmup: secs(5),
                alpha: true,
                log_all_failures: true,
                location: at(49),
            },
            // Everything else from the real server.
            HealthCheck {
                kind: CheckKind::Http(HttpGet {
                    urls: vec![
                        HttpUrl {
                            path: "/ready".into(),
                            status_codes: StatusCodes(vec![
                                (200, 200),
                                (204, 204),
                                (300, 302),
                                (418, 418)
                            ]),
                            virtualhost: Some("check.example.com".into()),
                            digest: None,
                            regex: None,
                        },
                        HttpUrl {
                            path: "/a path?x=1".into(),
                            status_codes: StatusCodes::success(),
                            virtualhost: Some("url.example.com".into()),
                            digest: None,
                            regex: None,
                        },
                    ],
                    protocol: HttpVersion::V1_1,
                    fast_recovery: true,
                    tls: false,
                    client_cert: None,
                }),
                addr: ip("10.0.1.1"),
                port: 8080,
                bindto: None,
                bind_port: None,
                connect_timeout: Duration::from_millis(1500),
                retry: 5,
                delay_before_retry: secs(2),
                delay_loop: secs(3),
                warmup: secs(0),
                alpha: false,
                log_all_failures: false,
                location: at(62),
            },
        ]
    );
    // Everything from the virtual server, the real server's written port for the check.
    assert_eq!(
        r2.spec,
        RealSpec {
            addr: ip("10.0.1.2"),
            port: 80,
            forward: Forward::Tunnel,
            weight: 0,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Default::default(),
        }
    );
    assert!(r2.inhibit_on_failure);
    assert_eq!(
        r2.checks,
        [HealthCheck {
            kind: CheckKind::Http(HttpGet {
                urls: vec![HttpUrl {
                    path: "/".into(),
                    status_codes: StatusCodes::success(),
                    virtualhost: Some("www.example.com".into()),
                    digest: None,
                    regex: None,
                }],
                protocol: HttpVersion::V1_0,
                fast_recovery: false,
                tls: false,
                client_cert: None,
            }),
            addr: ip("10.0.1.2"),
            port: 8080,
            bindto: None,
            bind_port: None,
            connect_timeout: secs(4),
            retry: 2,
            delay_before_retry: Duration::from_millis(500),
            delay_loop: Duration::from_millis(2500),
            warmup: secs(1),
            alpha: true,
            log_all_failures: false,
            location: at(81),
        }]
    );

    assert_eq!(b.spec.scheduler, Scheduler::Sh);
    assert_eq!(
        b.spec.sched_flags,
        SchedFlags {
            fallback: true,
            port: true,
            flag3: false
        }
    );
    assert_eq!(b.reals[0].spec.forward, Forward::Tunnel);
    assert_eq!(c.spec.scheduler, Scheduler::Mh);
    assert_eq!(c.spec.addr.protocol, Protocol::Udp);
    assert_eq!(
        c.spec.sched_flags,
        SchedFlags {
            fallback: true,
            port: true,
            flag3: false
        }
    );
    // A DR real server without a port takes the service's.
    assert_eq!(c.reals[0].spec.port, 53);
    assert_eq!(
        d.spec.sched_flags,
        SchedFlags {
            fallback: true,
            port: true,
            flag3: true
        }
    );

    // Both real servers of 10.0.0.1 start failed (alpha): 10.0.1.2 is inhibited (weight 0),
    // the live weight 0 is under quorum + hysteresis, so the sorry server is in.
    assert_eq!(
        commands(&config),
        [
            "-C",
            "--set 7200 0 60",
            "-A -t 10.0.0.1:80 -s wrr -p 360 -M 255.255.0.0",
            "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 0",
            "-a -t 10.0.0.1:80 -r 10.0.9.9:80 -g -w 1",
            "-A -t 10.0.0.2:443 -s sh -b sh-fallback,sh-port -p 360",
            "-a -t 10.0.0.2:443 -r 10.0.1.1:443 -i -w 1",
            "-A -u 10.0.0.3:53 -s mh -b mh-fallback,mh-port",
            "-a -u 10.0.0.3:53 -r 10.0.1.1:53 -g -w 1",
            "-A -t 10.0.0.4:0 -s lblcr -b flag-1,flag-2,flag-3 -p 360",
            "-a -t 10.0.0.4:0 -r 10.0.1.1:0 -g -w 1",
        ]
    );
}

// ---- defaults and keepalived's corrections -------------------------------------------------

#[test]
fn keepalived_defaults_are_applied_and_noted() {
    let config = parse(
        "virtual_server 10.0.0.1 80 {\n\
         \x20   real_server 10.0.0.11 {\n\
         \x20       TCP_CHECK {\n\
         \x20           connect_port 80\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.12 8080 {\n\
         \x20       HTTP_GET {\n\
         \x20           url {\n\
         \x20               path /\n\
         \x20           }\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    assert_eq!(
        notes(&config),
        [
            "k.conf:1: virtual_server 10.0.0.1 80 has no 'protocol': keepalived makes it a UDP \
             service (write protocol TCP for a TCP one)",
            "k.conf:1: virtual_server 10.0.0.1 80 has no 'lb_algo': keepalived uses wlc",
            "k.conf:1: virtual_server 10.0.0.1 80 has no 'lb_kind': keepalived uses NAT",
        ]
    );
    let vs = &config.services[0];
    assert_eq!(vs.spec.addr.protocol, Protocol::Udp);
    assert_eq!(vs.spec.scheduler, Scheduler::Wlc);
    assert_eq!(vs.spec.persistence, None);
    assert_eq!(vs.delay_loop, secs(60));
    // NAT: a real server without a port takes the service's, one with a port keeps it.
    assert_eq!(vs.reals[0].spec.port, 80);
    assert_eq!(vs.reals[1].spec.port, 8080);
    assert_eq!(vs.reals[0].spec.forward, Forward::Masq);
    assert_eq!(vs.reals[0].spec.weight, 1);
    let tcp = &vs.reals[0].checks[0];
    assert_eq!(
        (
            tcp.connect_timeout,
            tcp.retry,
            tcp.delay_before_retry,
            tcp.delay_loop,
            tcp.warmup
        ),
        (secs(5), 1, secs(1), secs(60), secs(60))
    );
    let http = &vs.reals[1].checks[0];
    assert_eq!(
        (http.port, http.retry, http.delay_before_retry),
        (8080, 1, secs(3))
    );
    let CheckKind::Http(get) = &http.kind else {
        panic!()
    };
    assert!(get.urls[0].status_codes.contains(204));
    assert!(!get.urls[0].status_codes.contains(301));
}

#[test]
fn quorum_corrections_and_repeats() {
    let config = parse(&service(
        "    lb_kind NAT\n    lb_algo rr\n    lb_algo wrr\n    quorum 5\n    hysteresis 3",
    ));
    assert_eq!(
        notes(&config),
        [
            "k.conf:5: 'lb_algo' repeated: the last one applies, as in keepalived (first at \
             k.conf:4)",
            "k.conf:6: quorum 5 exceeds the total weight of the real servers (1): keepalived \
             lowers it to 1",
            "k.conf:7: hysteresis 3 is not under the quorum 1: keepalived lowers it to 0",
        ]
    );
    let vs = &config.services[0];
    assert_eq!(vs.spec.scheduler, Scheduler::Wrr);
    assert_eq!((vs.quorum, vs.hysteresis), (1, 0));
}

#[test]
fn virtual_server_without_real_servers_is_ignored() {
    let config = parse("virtual_server 10.0.0.1 80 {\n    protocol TCP\n}\n");
    assert!(config.services.is_empty());
    assert_eq!(
        notes(&config),
        ["k.conf:1: virtual_server 10.0.0.1 80 has no real servers: keepalived ignores it"]
    );
    assert!(config.commands().is_empty());
}

#[test]
fn keepalived_sections_are_noted() {
    let config = parse(
        "static_ipaddress {\n    192.168.1.1/24 dev eth0\n}\n\
         vrrp_sync_group VG_1 {\n    group {\n        VI_1\n    }\n}\n\
         net_namespace blue\n\
         track_file maint {\n    file /etc/keepalived/maint\n}\n\
         bfd_instance peer\n{\n    neighbor_ip 10.0.0.2\n}\n",
    );
    assert_eq!(
        notes(&config),
        [
            "k.conf:1: static_ipaddress ignored: keepalived itself sets up static addresses, \
             routes and rules",
            "k.conf:4: vrrp_sync_group VG_1 ignored: keepalived itself runs VRRP",
            "k.conf:9: net_namespace blue ignored: a setting of keepalived's own processes",
            "k.conf:10: track_file maint ignored: keepalived itself tracks files for VRRP",
            "k.conf:13: bfd_instance peer ignored: keepalived itself runs BFD",
        ]
    );
    assert!(config.services.is_empty());
}

/// What a director pair's VRRP part holds in practice: none of it is lb's business, and none
/// of it stops lb from reading the virtual servers.
#[test]
fn vrrp_keywords_are_left_to_keepalived() {
    let text = r#"global_defs {
    router_id director1
    vrrp_skip_check_adv_addr
    vrrp_garp_master_delay 1
    vrrp_garp_master_refresh 60
    vrrp_version 2
    enable_script_security
    script_user root
}
vrrp_instance VI_1 {
    @director1 state MASTER
    @^director1 state BACKUP
    interface eth0
    track_interface {
        eth1 weight -50
    }
    unicast_src_ip 192.168.1.11
    unicast_peer {
        192.168.1.10
    }
    virtual_router_id 51
    @director1 priority 150
    @^director1 priority 100
    nopreempt
    preempt_delay 30
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass "s3cr#t!"
    }
    virtual_ipaddress {
        192.168.1.99/24 brd 192.168.1.255 dev eth0 scope global label eth0:1
    }
    virtual_ipaddress_excluded {
        192.168.1.98/32 dev eth0
    }
    virtual_routes {
        10.9.0.0/16 via 192.168.1.1 dev eth0
    }
    notify_master "/etc/keepalived/notify.sh master # not a comment"
    notify_backup '/etc/keepalived/notify.sh backup'
    smtp_alert
}
virtual_server 192.168.1.99 80 {
    lb_algo mh
    lb_kind DR
    protocol TCP
    real_server 192.168.1.12 80 {
    }
}
"#;
    let config = parse(text);
    assert_eq!(
        notes(&config),
        [
            "k.conf:1: global_defs ignored but for script_user: the rest configures keepalived \
             itself",
            "k.conf:7: enable_script_security ignored: lbd does not check who may write the \
             scripts it runs; keep them writable by root only",
            "k.conf:10: vrrp_instance VI_1 ignored: keepalived itself runs VRRP",
        ]
    );
    assert_eq!(
        commands(&config),
        [
            "-A -t 192.168.1.99:80 -s mh",
            "-a -t 192.168.1.99:80 -r 192.168.1.12:80 -g -w 1",
        ]
    );
}

#[test]
fn one_file_for_two_directors() {
    let text = "vrrp_instance VI_1 {\n\
                \x20   @lb1 priority 100\n\
                \x20   @lb2 priority 90\n\
                }\n\
                virtual_server 10.0.0.1 80 {\n\
                \x20   protocol TCP\n\
                \x20   lb_algo rr\n\
                \x20   lb_kind DR\n\
                \x20   real_server 10.0.0.11 80 {\n\
                \x20       @lb1 weight 2\n\
                \x20       @^lb1 weight 3\n\
                \x20   }\n\
                }\n";
    let weight = |id: &str| {
        let options = super::ReadOptions {
            config_id: Some(id.to_owned()),
        };
        let config = super::parse_str_with(text, "k.conf", &options).unwrap();
        config.services[0].reals[0].spec.weight
    };
    assert_eq!(weight("lb1"), 2);
    assert_eq!(weight("lb2"), 3);
}

// ---- start-up state --------------------------------------------------------------------------

#[test]
fn startup_follows_alpha_inhibit_and_quorum() {
    let rs = |addr: &str, extra: &str| {
        format!(
            "    real_server {addr} 80 {{\n        weight 2\n{extra}        TCP_CHECK {{\n        \
             }}\n    }}\n"
        )
    };
    let vs = |settings: &str, reals: &str| {
        format!(
            "virtual_server 10.0.0.1 80 {{\n    protocol TCP\n    lb_algo rr\n    lb_kind \
             DR\n{settings}{reals}}}\n"
        )
    };
    let started = |text: String| commands(&parse(&text))[1..].to_vec();

    // No alpha: every real server is in, the inhibited sorry server waits with weight 0.
    let reals = rs("10.0.0.11", "") + &rs("10.0.0.12", "        inhibit_on_failure\n");
    assert_eq!(
        started(vs(
            "    sorry_server 10.0.0.99 80\n    sorry_server_inhibit\n",
            &reals
        )),
        [
            "-a -t 10.0.0.1:80 -r 10.0.0.11:80 -g -w 2",
            "-a -t 10.0.0.1:80 -r 10.0.0.12:80 -g -w 2",
            "-a -t 10.0.0.1:80 -r 10.0.0.99:80 -g -w 0",
        ]
    );
    // alpha: real servers start failed; only the inhibited one is in, with weight 0.
    assert_eq!(
        started(vs("    alpha\n", &reals)),
        ["-a -t 10.0.0.1:80 -r 10.0.0.12:80 -g -w 0"]
    );
    // One real server starts failed: live weight 2 < quorum 3 + 0, the sorry server replaces
    // the live one.
    let reals = rs("10.0.0.11", "") + &rs("10.0.0.12", "        alpha\n");
    assert_eq!(
        started(vs("    quorum 3\n    sorry_server 10.0.0.99 80\n", &reals)),
        ["-a -t 10.0.0.1:80 -r 10.0.0.99:80 -g -w 1"]
    );
    // Without a sorry server, losing quorum changes nothing.
    assert_eq!(
        started(vs("    quorum 3\n", &reals)),
        ["-a -t 10.0.0.1:80 -r 10.0.0.11:80 -g -w 2"]
    );
    // The sorry server may be one of the real servers.
    let reals = rs("10.0.0.11", "") + &rs("10.0.0.12", "        alpha\n");
    assert_eq!(
        started(vs(
            "    quorum 4\n    hysteresis 1\n    sorry_server 10.0.0.12 80\n",
            &reals
        )),
        ["-a -t 10.0.0.1:80 -r 10.0.0.12:80 -g -w 1"]
    );
}

// ---- syntax ------------------------------------------------------------------------------------

#[test]
fn comments_quotes_and_layout() {
    let config = parse(
        "# comment\n\
         ! another\n\
         virtual_server 10.0.0.1 80 # the web service\n\
         {   protocol TCP ! TCP\n\
         \x20   \"lb_algo\" 'rr'\n\
         \x20   lb_kind DR\n\
         \x20   real_server 10.0.0.11 80 { weight 3 }\n\
         \x20   real_server 10.0.0.12 \"80\"{\n\
         \x20       HTTP_GET { url {\n\
         \x20           path \"/status # not a comment\"\n\
         \x20           virtualhost 'my host'\n\
         \x20       } }\n\
         \x20   }\n\
         }",
    );
    assert!(config.notes.is_empty(), "{:?}", config.notes);
    let vs = &config.services[0];
    assert_eq!(vs.spec.scheduler, Scheduler::Rr);
    assert_eq!(vs.reals[0].spec.weight, 3);
    let CheckKind::Http(get) = &vs.reals[1].checks[0].kind else {
        panic!()
    };
    assert_eq!(get.urls[0].path, "/status # not a comment");
    assert_eq!(get.urls[0].virtualhost.as_deref(), Some("my host"));
}

#[test]
fn one_line_blocks_hold_one_statement() {
    // keepalived reads `url { path / status_code 200 }` as `path` with three values and
    // ignores the extra two; lb refuses it.
    assert_eq!(
        errors(&service(
            "    lb_kind DR\n    lb_algo rr\n    real_server 10.0.0.12 80 {\n        HTTP_GET \
             { url { path / status_code 200 } }\n    }"
        )),
        ["'path' takes one value, not 3: / status_code 200 at k.conf:6"]
    );
}

/// Every kind of error, with its file and line.
#[test]
fn errors_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        // Unknown keywords, at each level.
        ("foo bar\n", "unknown keyword 'foo' at k.conf:1"),
        (
            "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  persistance_timeout 5\n}\n",
            "unknown keyword 'persistance_timeout' at k.conf:3",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  wieght 2\n }\n}\n",
            "unknown keyword 'wieght' at k.conf:3",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   \
             path /\n  }\n }\n}\n",
            "unknown keyword 'path' at k.conf:4",
        ),
        // Unsupported.
        (
            "virtual_server fwmark 1 {\n}\n",
            "firewall-mark virtual servers (virtual_server fwmark) are not supported by lb at \
             k.conf:1",
        ),
        (
            "virtual_server group web {\n}\n",
            "virtual_server group web: no virtual_server_group web is defined (or it has \
             errors) at k.conf:1",
        ),
        (
            "virtual_server_group web {\n fwmark 7\n}\n",
            "firewall-mark entries of a virtual_server_group are not supported by lb at k.conf:2",
        ),
        (
            "virtual_server fe80::1%eth0 80 {\n}\n",
            "virtual_server address fe80::1%eth0: scoped (link-local) IPv6 addresses are not \
             supported by lb at k.conf:1",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n protocol SCTP\n}\n",
            "SCTP services are not supported by lb at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_algo twos\n}\n",
            "the twos scheduler is not supported by lb at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n persistence_engine sip\n}\n",
            "persistence engines (persistence_engine) are not supported by lb at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_kind TUN type gue\n}\n",
            "gue tunnels require port, otherwise cannot have port at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_kind TUN type gre remcsum\n}\n",
            "gre tunnels do not support the remcsum option at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 53 {\n protocol UDP\n ops\n real_server 10.0.0.2 53 {\n \
             }\n}\n",
            "one-packet scheduling (ops) is not supported by lb at k.conf:3",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n  \
             lthreshold 10\n }\n}\n",
            "lthreshold 10 is above uthreshold 0: IPVS refuses such a real server (keepalived \
             would log the kernel's error and leave it out); give it an uthreshold of at least \
             its lthreshold at k.conf:3",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  MISC_CHECK {\n   \
             misc_path /bin/true\n   connect_port 80\n  }\n }\n}\n",
            "connect_port does not apply to MISC_CHECK (its program does the connecting) at \
             k.conf:5",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  SSL_GET {\n   url \
             {\n    path /\n   }\n   enable_sni\n  }\n }\n}\n",
            "enable_sni: lb's SSL_GET sends no SNI and has no such setting at k.conf:7",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url \
             {\n    path /\n    digest 9b3a0c85a887a256d6939da88aabd8c\n   }\n  }\n }\n}\n",
            "invalid digest '9b3a0c85a887a256d6939da88aabd8c': expected an MD5 sum, 32 hex \
             digits (as genhash prints it) at k.conf:6",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   \
             bind_if eth0\n  }\n }\n}\n",
            "bind_if is for IPv6 link-local addresses, which lb does not support at k.conf:4",
        ),
        (
            "~SEQ(PORT, 80, 82) virtual_server 10.0.0.1 $PORT {\n",
            "sequence and list blocks (~SEQ, ~LST) are not supported by lb at k.conf:1",
        ),
        (
            "$VIP=10.0.0.1\n",
            "parameter definitions and substitution ('$NAME') are not supported by lb at \
             k.conf:1",
        ),
        // Bad values.
        (
            "virtual_server 10.0.0.256 80 {\n}\n",
            "invalid virtual_server address '10.0.0.256': not an IPv4 or IPv6 address at \
             k.conf:1",
        ),
        (
            "virtual_server 10.0.0.1 http {\n}\n",
            "invalid virtual_server port 'http': must be 1-65535 at k.conf:1",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 65536 {\n }\n}\n",
            "invalid real_server port '65536': must be 1-65535 at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  weight 70000\n \
             }\n}\n",
            "weight 70000 is out of range: must be 0-65535 at k.conf:3",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n delay_loop 0\n}\n",
            "delay_loop 0 is out of range: must be 0.000001-4294967295 seconds at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n delay_loop six\n}\n",
            "invalid delay_loop 'six': expected seconds, e.g. 5 or 2.5 (at most 6 decimals) at \
             k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_algo roundrobin\n}\n",
            "unknown scheduler 'roundrobin': expected \
             rr|wrr|lc|wlc|sed|nq|sh|dh|lblc|lblcr|fo|ovf|mh at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_kind dr\n}\n",
            "unknown forwarding method 'dr': expected NAT, DR or TUN at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n persistence_timeout 0\n}\n",
            "persistence_timeout 0 is out of range: must be 1-2678400 at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n inhibit_on_failure\n real_server 10.0.0.2 80 {\n  \
             inhibit_on_failure maybe\n }\n}\n",
            "invalid inhibit_on_failure value 'maybe': expected on|off|true|false|yes|no at \
             k.conf:4",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url \
             {\n    path /\n    status_code 2xx\n   }\n  }\n }\n}\n",
            "invalid status_code '2xx': expected a code or a range like 200-299, within 100-599 \
             at k.conf:6",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_algo rr\n sh-port\n real_server 10.0.0.2 80 {\n \
             }\n}\n",
            "sh-port only applies to the sh scheduler, not rr at k.conf:3",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n sorry_server_inhibit\n real_server 10.0.0.2 80 \
             {\n }\n}\n",
            "sorry_server_inhibit without a sorry_server at k.conf:2",
        ),
        (
            "global_defs {\n lvs_timeouts tcp 900 fin 120\n}\n",
            "unknown lvs_timeouts option 'fin': expected tcp, tcpfin, udp at k.conf:2",
        ),
        // Checks that keepalived would drop.
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   \
             connect_timeout 3\n  }\n }\n}\n",
            "HTTP_GET needs at least one url { path ... } (keepalived would drop the check) at \
             k.conf:3",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url \
             {\n    status_code 200\n   }\n  }\n }\n}\n",
            "url needs a path (keepalived would drop it) at k.conf:4",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 {\n  TCP_CHECK {\n  }\n \
             }\n}\n",
            "TCP_CHECK has no port to connect to: real_server 10.0.0.2 has none; give the \
             real_server a port or the check a connect_port at k.conf:3",
        ),
        // Duplicates.
        (
            "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n\
             virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.3 80 {\n }\n}\n",
            "virtual_server TCP 10.0.0.1:80 is defined twice (first at k.conf:1) at k.conf:6",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_kind DR\n real_server 10.0.0.2 80 {\n }\n \
             real_server 10.0.0.2 8080 {\n }\n}\n",
            "real_server 10.0.0.2:80 is defined twice in virtual_server 10.0.0.1 80 (first at \
             k.conf:3) at k.conf:5",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  notify_up /bin/a\n  \
             notify_up /bin/b\n }\n}\n",
            "'notify_up' is given twice at k.conf:4",
        ),
        // Shape.
        (
            "virtual_server 10.0.0.1 80 {\n delay_loop 6 lb_algo rr\n}\n",
            "'delay_loop' takes one value, not 3: 6 lb_algo rr at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_algo\n}\n",
            "'lb_algo' needs one value at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n alpha on\n}\n",
            "'alpha' takes no value, not 1: on at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_kind\n}\n",
            "'lb_kind' needs a value at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  alpha yes no\n }\n}\n",
            "'alpha' takes at most one value, not 2: yes no at k.conf:3",
        ),
        (
            "virtual_server 10.0.0.1 80 443 {\n}\n",
            "'virtual_server' takes an address and a port, not 3: 10.0.0.1 80 443 at k.conf:1",
        ),
        (
            "virtual_server {\n}\n",
            "'virtual_server' needs an address and a port at k.conf:1",
        ),
        (
            "virtual_server 10.0.0.1 80\n",
            "'virtual_server' needs a { } block at k.conf:1",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n weight 2 {\n }\n}\n",
            "'weight' does not take a { } block at k.conf:2",
        ),
        (
            "virtual_server 10.0.0.1 {\n",
            "'{' is never closed: a '}' is missing at k.conf:1",
        ),
        ("}\n", "'}' without a matching '{' at k.conf:1"),
        (
            "virtual_server 10.0.0.1 80 {\n virtualhost \"www\n}\n",
            "missing closing \" (quotes do not span lines) at k.conf:2",
        ),
        ("include\n", "include needs a file name at k.conf:1"),
    ];
    for (text, expected) in cases {
        let got = errors(text);
        assert!(
            got == [*expected],
            "for\n{text}\nexpected\n  {expected}\ngot\n  {}",
            got.join("\n  ")
        );
    }
}

#[test]
fn every_error_is_reported_and_no_configuration() {
    let text = "virtual_server 10.0.0.1 80 {\n\
                \x20   protocol TCP\n\
                \x20   lb_algo fastest\n\
                \x20   lb_kind DR\n\
                \x20   real_server 10.0.0.11 80 {\n\
                \x20       weight -1\n\
                \x20       TCP_CHECK {\n\
                \x20           connect_port 0\n\
                \x20       }\n\
                \x20   }\n\
                \x20   real_server 10.0.0.12 80 {\n\
                \x20       MISC_CHECK {\n\
                \x20       }\n\
                \x20   }\n\
                }\n\
                vrrp_instance VI_1 {\n\
                }\n\
                bogus\n";
    assert_eq!(
        errors(text),
        [
            "unknown scheduler 'fastest': expected rr|wrr|lc|wlc|sed|nq|sh|dh|lblc|lblcr|fo|ovf|mh \
             at k.conf:3",
            "invalid weight '-1': not a whole number at k.conf:6",
            "invalid connect_port '0': must be 1-65535 at k.conf:8",
            "MISC_CHECK needs a misc_path (keepalived would drop the check) at k.conf:12",
            "unknown keyword 'bogus' at k.conf:18",
        ]
    );
}

// ---- include ---------------------------------------------------------------------------------

#[test]
fn includes_are_relative_to_the_including_file() {
    let files = MemFiles::default()
        .with(
            "/etc/keepalived/conf.d/web.conf",
            "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lb_algo rr\n    lb_kind DR\n    \
             include reals/*.conf\n}\n",
        )
        .with(
            "/etc/keepalived/conf.d/reals/b.conf",
            "real_server 10.0.0.12 80 {\n}\n",
        )
        .with(
            "/etc/keepalived/conf.d/reals/a.conf",
            "real_server 10.0.0.11 80 {\n    weight 2\n}\n",
        )
        .with("/etc/keepalived/vrrp.conf", "vrrp_instance VI_1 {\n}\n");
    let main = "include vrrp.conf\ninclude conf.d/*.conf # services\nincluder none/*.conf\n";
    let config = parse_files(&files, main, ETC);
    assert_eq!(
        notes(&config),
        [
            "/etc/keepalived/vrrp.conf:1: vrrp_instance VI_1 ignored: keepalived itself runs VRRP",
            "/etc/keepalived/keepalived.conf:3: include none/*.conf: no file matches \
             /etc/keepalived/none/*.conf",
        ]
    );
    assert_eq!(
        commands(&config),
        [
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 10.0.0.11:80 -g -w 2",
            "-a -t 10.0.0.1:80 -r 10.0.0.12:80 -g -w 1",
        ]
    );
    assert_eq!(
        config.services[0].reals[1].location.to_string(),
        "/etc/keepalived/conf.d/reals/b.conf:1"
    );

    // Errors name the included file and its line.
    let files = files.with(
        "/etc/keepalived/conf.d/reals/c.conf",
        "real_server 10.0.0.13 80 {\n    weight heavy\n}\n",
    );
    assert_eq!(
        errors_in(&files, main, ETC),
        ["invalid weight 'heavy': not a whole number at /etc/keepalived/conf.d/reals/c.conf:2"]
    );
    // A strict include wants a match.
    assert_eq!(
        errors_in(&files, "includea missing.conf\n", ETC),
        [
            "include missing.conf: no file matches /etc/keepalived/missing.conf at \
             /etc/keepalived/keepalived.conf:1"
        ]
    );
    // A file that includes itself, and two that include each other: the loop is named.
    let files = MemFiles::default().with("/etc/keepalived/loop.conf", "include loop.conf\n");
    let errors = errors_in(&files, "include loop.conf\n", ETC);
    assert_eq!(
        errors,
        [
            "include loop.conf: an include loop: /etc/keepalived/loop.conf -> \
             /etc/keepalived/loop.conf at /etc/keepalived/loop.conf:1"
        ]
    );
    let files = MemFiles::default()
        .with("/etc/keepalived/a.conf", "include b.conf\n")
        .with("/etc/keepalived/b.conf", "include a.conf\n");
    assert_eq!(
        errors_in(&files, "include a.conf\n", ETC),
        [
            "include a.conf: an include loop: /etc/keepalived/a.conf -> /etc/keepalived/b.conf \
             -> /etc/keepalived/a.conf at /etc/keepalived/b.conf:1"
        ]
    );
    // Files that include their own directory: each loop refused, and the reading bounded
    // (without a bound, 12 such files would be read 12! times).
    let mut files = MemFiles::default();
    for i in 0..12 {
        files = files.with(
            &format!("/etc/keepalived/d/{i:02}.conf"),
            "include *.conf\n",
        );
    }
    let errors = errors_in(&files, "include d/*.conf\n", ETC);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("more than 1000 files read through includes")),
        "{errors:?}"
    );
    // parse_file reads through the same path.
    let files = MemFiles::default()
        .with(ETC, "include conf.d/*.conf\n")
        .with(
            "/etc/keepalived/conf.d/x.conf",
            "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_kind DR\n lb_algo rr\n \
             real_server 10.0.0.2 80 {\n }\n}\n",
        );
    let config = read_file(&files, std::path::Path::new(ETC), "lb1").unwrap();
    assert_eq!(config.services.len(), 1);
}

#[test]
fn virtual_server_groups_expand_to_one_service_per_address() {
    let text = "virtual_server group web {\n\
                \x20   protocol TCP\n\
                \x20   lb_algo rr\n\
                \x20   lb_kind DR\n\
                \x20   real_server 10.0.1.1 80 {\n\
                \x20       TCP_CHECK {\n\
                \x20       }\n\
                \x20   }\n\
                }\n\
                virtual_server_group web {\n\
                \x20   10.0.0.1 80\n\
                \x20   10.0.0.5-6 80\n\
                \x20   10.0.0.8/31 443\n\
                }\n";
    let config = parse(text);
    let services: Vec<(String, u16, u16)> = config
        .services
        .iter()
        .map(|vs| {
            assert_eq!(vs.group.as_deref(), Some("web"));
            (
                vs.spec.addr.addr.to_string(),
                vs.spec.addr.port,
                vs.reals[0].spec.port,
            )
        })
        .collect();
    assert_eq!(
        services,
        [
            ("10.0.0.1".to_owned(), 80, 80),
            ("10.0.0.5".to_owned(), 80, 80),
            ("10.0.0.6".to_owned(), 80, 80),
            ("10.0.0.8".to_owned(), 443, 443),
            ("10.0.0.9".to_owned(), 443, 443),
        ]
    );
    // The DR port note comes once, for the first address it applies to.
    let port_notes = notes(&config)
        .iter()
        .filter(|n| n.contains("differs from the virtual server's"))
        .count();
    assert_eq!(port_notes, 1, "{:?}", notes(&config));

    assert_eq!(
        errors("virtual_server group nope {\n protocol TCP\n real_server 10.0.1.1 80 {\n }\n}\n"),
        [
            "virtual_server group nope: no virtual_server_group nope is defined (or it has errors) \
          at k.conf:1"
        ]
    );
    assert_eq!(
        errors("virtual_server_group g {\n fwmark 1\n 10.0.0.9-3 80\n 10.0.0.1/24 80\n}\n"),
        [
            "firewall-mark entries of a virtual_server_group are not supported by lb at k.conf:2",
            "'10.0.0.9-3': the range ends before it starts at k.conf:3",
            "'10.0.0.1/24': the address has bits set past the netmask at k.conf:4",
        ]
    );
}

// ---- IPv6 -----------------------------------------------------------------------------------

/// IPv6 entries of a virtual_server_group: an address, a range of the last 16 bits with a
/// hexadecimal end (keepalived's `inet_stor`), and a network; refused: a bad range end, a
/// range that ends before it starts, bits past the netmask, both families in one group.
#[test]
fn virtual_server_groups_take_ipv6_entries() {
    let text = "virtual_server group web6 {\n\
                \x20   protocol TCP\n\
                \x20   lb_algo rr\n\
                \x20   lb_kind DR\n\
                \x20   real_server 2001:db8:1::11 80 {\n\
                \x20       TCP_CHECK {\n\
                \x20       }\n\
                \x20   }\n\
                }\n\
                virtual_server_group web6 {\n\
                \x20   2001:db8::1 80\n\
                \x20   2001:db8::9-b 80\n\
                \x20   2001:db8::1:0/127 443\n\
                }\n";
    let config = parse(text);
    let services: Vec<(String, u16)> = config
        .services
        .iter()
        .map(|vs| {
            assert_eq!(vs.group.as_deref(), Some("web6"));
            (vs.spec.addr.addr.to_string(), vs.spec.addr.port)
        })
        .collect();
    assert_eq!(
        services,
        [
            ("2001:db8::1".to_owned(), 80),
            ("2001:db8::9".to_owned(), 80),
            ("2001:db8::a".to_owned(), 80),
            ("2001:db8::b".to_owned(), 80),
            ("2001:db8::1:0".to_owned(), 443),
            ("2001:db8::1:1".to_owned(), 443),
        ]
    );
    assert_eq!(
        errors(
            "virtual_server_group g {\n 2001:db8::1-1g 80\n 2001:db8::9-3 80\n \
             2001:db8::1/64 80\n 2001:db8::5 80\n 10.0.0.1 80\n}\n"
        ),
        [
            "invalid range end in '2001:db8::1-1g': the last 16 bits' end, in hexadecimal \
             (0-ffff) at k.conf:2",
            "'2001:db8::9-3': the range ends before it starts at k.conf:3",
            "'2001:db8::1/64': the address has bits set past the netmask at k.conf:4",
            "virtual_server_group g mixes IPv4 and IPv6 addresses: lb takes one family per \
             group at k.conf:6",
        ]
    );
}

#[test]
fn ipv6_virtual_and_real_servers_with_checks() {
    let config = parse(
        "virtual_server 2001:db8::1 80 {\n\
         \x20   protocol TCP\n\
         \x20   lb_algo rr\n\
         \x20   lb_kind DR\n\
         \x20   ip_family inet6\n\
         \x20   persistence_timeout 600\n\
         \x20   persistence_granularity 64\n\
         \x20   real_server 2001:db8::11 80 {\n\
         \x20       TCP_CHECK {\n\
         \x20           connect_ip 2001:db8::111\n\
         \x20           bindto 2001:db8::2\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.12 80 {\n\
         \x20       lvs_method TUN\n\
         \x20       HTTP_GET {\n\
         \x20           url {\n\
         \x20               path /health\n\
         \x20           }\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    assert_eq!(
        commands(&config),
        [
            "-A -t [2001:db8::1]:80 -s rr -p 600 -M 64",
            "-a -t [2001:db8::1]:80 -r [2001:db8::11]:80 -g -w 1",
            "-a -t [2001:db8::1]:80 -r 10.0.0.12:80 -i -w 1",
        ]
    );
    let vs = &config.services[0];
    assert_eq!(
        vs.spec.persistence.unwrap().netmask,
        crate::model::Netmask::V6(64)
    );
    let tcp = &vs.reals[0].checks[0];
    assert_eq!(
        (tcp.addr, tcp.port, tcp.bindto),
        (ip("2001:db8::111"), 80, Some(ip("2001:db8::2")))
    );
    // A check of a real server of the other family goes to that server's address.
    assert_eq!(vs.reals[1].checks[0].addr, ip("10.0.0.12"));
}

#[test]
fn ipv6_services_default_to_a_128_bit_granularity() {
    let config = parse(
        "virtual_server 2001:db8::1 443 {\n\
         \x20   protocol TCP\n\
         \x20   lb_algo wlc\n\
         \x20   lb_kind NAT\n\
         \x20   persistence_timeout 60\n\
         \x20   real_server 2001:db8::11 8443 {\n\
         \x20   }\n\
         }\n",
    );
    assert_eq!(
        commands(&config),
        [
            "-A -t [2001:db8::1]:443 -s wlc -p 60",
            "-a -t [2001:db8::1]:443 -r [2001:db8::11]:8443 -m -w 1",
        ]
    );
}

#[test]
fn ipv6_mistakes_are_refused() {
    let vs = |body: &str| {
        format!("virtual_server 2001:db8::1 80 {{\n    protocol TCP\n    lb_kind DR\n{body}\n}}\n")
    };
    assert_eq!(
        errors(&vs("    real_server 10.0.0.11 80 {\n    }")),
        [
            "real_server 10.0.0.11 is IPv4 but virtual_server 2001:db8::1 80 is IPv6: only lb_kind \
          TUN forwards to the other family (IPVS refuses it for DR and NAT) at k.conf:4"
        ]
    );
    assert_eq!(
        errors(&vs(
            "    persistence_granularity 255.255.255.0\n    real_server 2001:db8::11 80 {\n    }"
        )),
        [
            "persistence_granularity 255.255.255.0 does not fit virtual_server 2001:db8::1 80: a \
          netmask for IPv4, a prefix length (1-128) for IPv6 at k.conf:1"
        ]
    );
    assert_eq!(
        errors(&vs(
            "    persistence_granularity 129\n    real_server 2001:db8::11 80 {\n    }"
        )),
        ["persistence_granularity prefix length 129 is out of range: must be 1-128 at k.conf:4"]
    );
    assert_eq!(
        errors(&vs(
            "    ip_family inet\n    real_server 2001:db8::11 80 {\n    }"
        )),
        ["ip_family inet does not match virtual_server 2001:db8::1 80 at k.conf:4"]
    );
    assert_eq!(
        errors(&vs(
            "    real_server 2001:db8::11 80 {\n        TCP_CHECK {\n            bindto 10.0.0.2\n        }\n    }"
        )),
        [
            "bindto 10.0.0.2 is not of the family of the address checked (2001:db8::11): a check \
          connects from an address of its target's family at k.conf:5"
        ]
    );
    assert_eq!(
        errors(&vs("    real_server 2001:db8::zz 80 {\n    }")),
        ["invalid real_server address '2001:db8::zz': not an IPv4 or IPv6 address at k.conf:4"]
    );
}

#[test]
fn tun_methods_with_gue_and_gre() {
    let config = parse(
        "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lb_kind TUN type gue port 6080 csum\n    \
         real_server 10.0.0.11 80 {\n    }\n    real_server 10.0.0.12 80 {\n        \
         lvs_method TUN type gre csum\n    }\n    real_server 10.0.0.13 80 {\n        \
         lvs_method TUN type gue port 6079 remcsum\n    }\n    real_server 10.0.0.14 80 {\n        \
         lvs_method TUN type ipip nocsum\n    }\n}\n",
    );
    let commands = commands(&config);
    for expected in [
        "-a -t 10.0.0.1:80 -r 10.0.0.11:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
        "-a -t 10.0.0.1:80 -r 10.0.0.12:80 -i -w 1 --tun-type gre --tun-csum",
        "-a -t 10.0.0.1:80 -r 10.0.0.13:80 -i -w 1 --tun-type gue --tun-port 6079 --tun-remcsum",
        "-a -t 10.0.0.1:80 -r 10.0.0.14:80 -i -w 1",
    ] {
        assert!(
            commands.iter().any(|c| c == expected),
            "{expected} not in {commands:#?}"
        );
    }
}

#[test]
fn ssl_get_is_http_get_over_tls() {
    let config = parse(
        "virtual_server 10.0.0.1 443 {\n\
         \x20   real_server 10.0.0.11 443 {\n\
         \x20       SSL_GET {\n\
         \x20           url { path /health }\n\
         \x20           url {\n\
         \x20               path /ready\n\
         \x20               digest 9b3a0c85a887a256d6939da88aabd8cd\n\
         \x20           }\n\
         \x20           http_protocol 1.1\n\
         \x20           connect_timeout 2\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.12 80 { HTTP_GET { url { path / } } }\n\
         }",
    );
    let vs = &config.services[0];
    let CheckKind::Http(ssl) = &vs.reals[0].checks[0].kind else {
        panic!("{:?}", vs.reals[0].checks)
    };
    assert!(ssl.tls);
    assert_eq!(ssl.urls.len(), 2);
    assert_eq!(ssl.protocol, HttpVersion::V1_1);
    assert!(ssl.urls[1].digest.is_some());
    // keepalived's HTTP_GET and SSL_GET share their defaults (delay_before_retry 3 s).
    assert_eq!(
        vs.reals[0].checks[0].delay_before_retry,
        std::time::Duration::from_secs(3)
    );
    let CheckKind::Http(plain) = &vs.reals[1].checks[0].kind else {
        panic!()
    };
    assert!(!plain.tls);
    assert_eq!(
        errors(
            "virtual_server 10.0.0.1 443 {\n real_server 10.0.0.11 443 {\n  SSL_GET {\n  }\n \
                }\n}\n"
        ),
        [
            "SSL_GET needs at least one url { path ... } (keepalived would drop the check) at k.conf:3"
        ]
    );
}

#[test]
fn ping_check_has_the_common_options_but_ports() {
    let config = parse(
        "virtual_server 10.0.0.1 80 {\n\
         \x20   protocol TCP\n\
         \x20   lb_kind DR\n\
         \x20   delay_loop 3\n\
         \x20   real_server 10.0.0.11 80 {\n\
         \x20       PING_CHECK {\n\
         \x20           connect_port 81\n\
         \x20           connect_timeout 2\n\
         \x20           retry 4\n\
         \x20           delay_before_retry 1\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.12 {\n\
         \x20       PING_CHECK {\n\
         \x20           connect_ip 2001:db8::12\n\
         \x20           bindto 2001:db8::2\n\
         \x20           bind_port 4000\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let vs = &config.services[0];
    let first = &vs.reals[0].checks[0];
    assert_eq!(first.kind, CheckKind::Ping);
    assert_eq!((first.addr, first.port), (ip("10.0.0.11"), 0));
    assert_eq!(
        (first.connect_timeout, first.retry, first.delay_before_retry),
        (secs(2), 4, secs(1))
    );
    assert_eq!(first.delay_loop, secs(3));
    // A real server without a port: no port is needed; IPv6 through connect_ip.
    let second = &vs.reals[1].checks[0];
    assert_eq!(
        (second.addr, second.port, second.bindto, second.bind_port),
        (ip("2001:db8::12"), 0, Some(ip("2001:db8::2")), None)
    );
    // keepalived's defaults: retry 1, 1 s apart.
    assert_eq!((second.retry, second.delay_before_retry), (1, secs(1)));
    let notes = notes(&config);
    for (keyword, line) in [("connect_port", 7), ("bind_port", 17)] {
        let want = format!("{keyword} ignored in PING_CHECK");
        assert!(
            notes
                .iter()
                .any(|n| n.contains(&want) && n.contains(&format!("k.conf:{line}"))),
            "{notes:?}"
        );
    }
}

/// A service whose real server has an HTTP_GET with one url of `lines` (from line 6).
fn url_with(lines: &str) -> String {
    format!(
        "virtual_server 10.0.0.1 80 {{\nprotocol TCP\nreal_server 10.0.0.11 80 {{\nHTTP_GET {{\n\
         url {{\npath /\n{lines}\n}}\n}}\n}}\n}}\n"
    )
}

#[test]
fn url_regex_as_keepalived_reads_it() {
    let config = parse(&url_with(
        "regex \"^status: (ok|fine)$\"\nregex_options caseless multiline\nregex_no_match\n\
         regex_min_offset 4\nregex_max_offset 100\nregex_stack 32768 65536",
    ));
    let CheckKind::Http(http) = &config.services[0].reals[0].checks[0].kind else {
        panic!("{config:#?}");
    };
    let regex = http.urls[0].regex.as_ref().unwrap();
    assert_eq!(regex.pattern(), "^status: (ok|fine)$");
    assert_eq!(
        (regex.no_match, regex.min_offset, regex.max_offset),
        (true, 4, Some(100))
    );
    // caseless and multiline apply; regex_no_match inverts.
    assert!(!regex.passes(b"....\nStatus: OK\n"));
    assert!(regex.passes(b"....\nstatus: down\n"));
    assert!(
        notes(&config)
            .iter()
            .any(|n| n.contains("regex_stack ignored") && n.contains("k.conf:12")),
        "{:?}",
        notes(&config)
    );

    let cases: &[(&str, &str)] = &[
        ("regex \"(a)\\\\1\"", "k.conf:7"),
        ("regex a++", "k.conf:7"),
        ("regex ok\nregex_options alt_bsux", "k.conf:8"),
        ("regex ok\nregex_options casless", "k.conf:8"),
        ("regex_no_match", "k.conf:7"),
        (
            "regex_options caseless\nregex ok\nregex_min_offset 9\nregex_max_offset 3",
            "k.conf:8",
        ),
        ("regex ok\nregex_max_offset x", "k.conf:8"),
        ("regex ok\nregex_stack 9 3", "k.conf:8"),
    ];
    for (lines, at) in cases {
        let errors = errors(&url_with(lines));
        assert!(
            errors.iter().any(|e| e.contains(at)),
            "{lines}: expected an error at {at}: {errors:?}"
        );
    }
}

/// The PEM files of the `SSL` block tests: a client certificate and its key, the same key
/// encrypted (password `secret`), and a CA certificate (not the client's issuer).
fn ssl_files() -> MemFiles {
    MemFiles::default()
        .with("/k/client.pem", include_str!("testdata/client.pem"))
        .with("/k/client.key", include_str!("testdata/client.key"))
        .with("/k/encrypted.key", include_str!("testdata/encrypted.key"))
        .with("/k/ca.pem", include_str!("testdata/ca.pem"))
}

const SSL_SERVICES: &str = "virtual_server 10.0.0.1 443 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    real_server 10.0.0.11 443 { SSL_GET { url { path / } } }
    real_server 10.0.0.12 443 { HTTP_GET { url { path / } } }
}
";

#[test]
fn ssl_block_gives_ssl_get_its_client_certificate() {
    let text = format!(
        "SSL {{\n    ca /k/ca.pem\n    certificate /k/client.pem\n    key /k/client.key\n}}\n\
         {SSL_SERVICES}"
    );
    let config = parse_files(&ssl_files(), &text, "k.conf");
    let cert = config.client_cert.clone().expect("a client certificate");
    let vs = &config.services[0];
    let CheckKind::Http(ssl) = &vs.reals[0].checks[0].kind else {
        panic!()
    };
    assert_eq!(ssl.client_cert.as_ref(), Some(&cert));
    let CheckKind::Http(plain) = &vs.reals[1].checks[0].kind else {
        panic!()
    };
    assert_eq!(plain.client_cert, None, "HTTP_GET has no TLS");
    assert_eq!(
        notes(&config),
        [
            "k.conf:2: ca /k/ca.pem: read (1 certificates), but as in keepalived, which loads it \
          and never asks OpenSSL to verify, SSL_GET does not verify real servers' certificates"
        ]
    );
    // Without the block, none; an empty block says so.
    let none = parse_files(&ssl_files(), SSL_SERVICES, "k.conf");
    assert_eq!(none.client_cert, None);
    let empty = parse_files(
        &ssl_files(),
        &format!("SSL {{\n}}\n{SSL_SERVICES}"),
        "k.conf",
    );
    assert_eq!(empty.client_cert, None);
    assert!(notes(&empty)[0].starts_with("k.conf:1: SSL has no certificate and key"));
}

#[test]
fn ssl_block_refusals_name_their_line() {
    let refused = |block: &str| {
        errors_in(
            &ssl_files(),
            &format!("SSL {{\n{block}\n}}\n{SSL_SERVICES}"),
            "k.conf",
        )
    };
    let pair = "certificate /k/client.pem\nkey /k/client.key";
    let cases: &[(&str, &str)] = &[
        (
            &format!("password secret\n{pair}"),
            "SSL password: lb cannot decrypt an encrypted private key; decrypt it (`openssl \
             pkey -in KEY -out PLAIN.key`, readable by root only), name that file in key and \
             drop password at k.conf:2",
        ),
        (
            "certificate /k/client.pem\nkey /k/encrypted.key",
            "key /k/encrypted.key: the private key is encrypted, which lb cannot decrypt: \
             decrypt it (`openssl pkey -in KEY -out PLAIN.key`, readable by root only) and name \
             that file at k.conf:3",
        ),
        (
            "certificate /k/client.pem",
            "SSL certificate without key: name the certificate's private key with key at \
             k.conf:2",
        ),
        (
            "key /k/client.key",
            "SSL key without certificate: name its certificate with certificate at k.conf:2",
        ),
        (
            "certificate /k/client.key\nkey /k/client.key",
            "certificate /k/client.key: no PEM certificate in it at k.conf:2",
        ),
        (
            "certificate /k/client.pem\nkey /k/client.pem",
            "key /k/client.pem: no PEM private key in it (PKCS #8, PKCS #1 or SEC1) at k.conf:3",
        ),
        (
            "ca /k/client.key",
            "ca /k/client.key: no PEM certificate in it at k.conf:2",
        ),
        (
            "certificate /k/missing.pem\nkey /k/client.key",
            "certificate /k/missing.pem: cannot read it",
        ),
        ("cafile /k/ca.pem", "unknown keyword 'cafile' at k.conf:2"),
    ];
    for (block, want) in cases {
        let got = refused(block);
        match want.contains(" at k.conf:") {
            true => assert_eq!(got, [*want], "{block:?}"),
            false => assert!(
                got.len() == 1 && got[0].starts_with(want) && got[0].ends_with(" at k.conf:2"),
                "{block:?}: {got:?}"
            ),
        }
    }
    // The CA's certificate with the client's key: not its key.
    let got = refused("certificate /k/ca.pem\nkey /k/client.key");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "SSL certificate /k/ca.pem and key /k/client.key: the TLS library \
                            refuses them"
        ) && got[0].ends_with(" at k.conf:1"),
        "{got:?}"
    );
    let twice = errors_in(
        &ssl_files(),
        &format!("SSL {{\n}}\nSSL {{\n}}\n{SSL_SERVICES}"),
        "k.conf",
    );
    assert_eq!(
        twice,
        [
            "SSL is given twice (first at k.conf:1): keepalived replaces the first with a warning; \
          keep one at k.conf:3"
        ]
    );
}
