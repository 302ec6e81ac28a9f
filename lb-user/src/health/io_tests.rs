//! The checks against real listeners on 127.0.0.1. Durations are short, but no assertion
//! depends on timing: tests wait for events (or for the listener to have seen enough attempts)
//! with generous limits.

use std::{
    net::Ipv4Addr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::mpsc,
    task::JoinHandle,
};

use super::*;
use crate::model::{Protocol, ServiceAddr};

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// How long a test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);
const MS: Duration = Duration::from_millis(1);

fn key(n: u16) -> TargetKey {
    TargetKey {
        service: ServiceAddr {
            protocol: Protocol::Tcp,
            addr: Ipv4Addr::new(10, 0, 0, 1).into(),
            port: 80,
        },
        real: Ipv4Addr::new(10, 0, 0, 10).into(),
        port: n,
    }
}

fn tcp_check(port: u16, retry: u32) -> CheckSpec {
    CheckSpec {
        connect_timeout: Duration::from_secs(2),
        retry,
        delay_before_retry: 10 * MS,
        delay_loop: 20 * MS,
        ..CheckSpec::tcp(LOCALHOST, port)
    }
}

fn http_check(port: u16, status_code: Option<u16>, connect_timeout: Duration) -> CheckSpec {
    let mut check = CheckSpec {
        connect_timeout,
        retry: 1,
        delay_before_retry: 10 * MS,
        delay_loop: 20 * MS,
        ..CheckSpec::http(LOCALHOST, port, "/health")
    };
    if let (Probe::Http(http), Some(code)) = (&mut check.probe, status_code) {
        http.urls[0].status_codes = StatusCodes::new(vec![(code, code)]);
    }
    check
}

fn target(n: u16, checks: Vec<CheckSpec>) -> Target {
    Target {
        key: key(n),
        weight: 1,
        checks,
        suspend_unless_local: None,
    }
}

async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("no event in time")
        .expect("event channel closed")
}

/// The next event of the real server `n`, skipping others'.
async fn next_event_of(events: &mut mpsc::Receiver<Event>, n: u16) -> Event {
    loop {
        let event = next_event(events).await;
        if event.key == key(n) {
            return event;
        }
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(5 * MS).await;
    }
}

fn assert_no_event(events: &mut mpsc::Receiver<Event>) {
    if let Ok(event) = events.try_recv() {
        panic!("unexpected event {event:?}");
    }
}

/// A port nothing listens on (just released by the kernel).
async fn closed_port() -> u16 {
    TcpListener::bind((LOCALHOST, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Accepts and drops connections on `port` (0: any), counting them, until aborted.
struct TcpServer {
    port: u16,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TcpServer {
    async fn start(port: u16) -> Self {
        let listener = TcpListener::bind((LOCALHOST, port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            loop {
                let _ = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        TcpServer {
            port,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes the port: returns once the listener is gone.
    async fn close(self) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
    }
}

/// Answers every request with the current `status`, or never when it is 0, recording what
/// it was sent.
struct HttpServer {
    port: u16,
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<String>>>,
    _task: JoinHandle<()>,
}

impl HttpServer {
    async fn start(status: u16) -> Self {
        let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(status));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (answer, seen) = (Arc::clone(&status), Arc::clone(&requests));
        let task = tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (answer, seen) = (Arc::clone(&answer), Arc::clone(&seen));
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8(request).unwrap());
                    match answer.load(Ordering::SeqCst) {
                        0 => std::future::pending().await,
                        code => {
                            let response =
                                format!("HTTP/1.0 {code} Whatever\r\nContent-Length: 2\r\n\r\nok");
                            let _ = stream.write_all(response.as_bytes()).await;
                        }
                    }
                });
            }
        });
        HttpServer {
            port,
            status,
            requests,
            _task: task,
        }
    }

    fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

#[tokio::test]
async fn tcp_check_of_an_open_port_stays_up() {
    let server = TcpServer::start(0).await;
    let (_checker, mut events) = spawn(vec![target(1, vec![tcp_check(server.port, 1)])]).unwrap();
    // Attempt n+1 starts only once attempt n was fed back, events sent.
    wait_until("three attempts", || server.accepted() >= 3).await;
    assert_no_event(&mut events);
}

#[tokio::test]
async fn real_server_dead_at_start_goes_down_on_the_first_failure() {
    let port = closed_port().await;
    let check = CheckSpec {
        // Were it retried, the event would come too late.
        delay_before_retry: Duration::from_secs(3600),
        ..tcp_check(port, 3)
    };
    let (_checker, mut events) = spawn(vec![target(1, vec![check])]).unwrap();
    let event = next_event(&mut events).await;
    assert_eq!(
        event,
        Event {
            key: key(1),
            up: false,
            weight: 1,
            reason: format!("TCP_CHECK 127.0.0.1:{port}: connection refused"),
        }
    );
}

#[tokio::test]
async fn tcp_check_goes_down_after_retries_and_comes_back() {
    let server = TcpServer::start(0).await;
    let port = server.port;
    let (_checker, mut events) = spawn(vec![target(1, vec![tcp_check(port, 2)])]).unwrap();
    wait_until("a successful attempt", || server.accepted() >= 1).await;
    server.close().await;

    let down = next_event(&mut events).await;
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("TCP_CHECK 127.0.0.1:{port}: connection refused (after 2 retries)")
    );

    let _server = TcpServer::start(port).await;
    let up = next_event(&mut events).await;
    assert!(up.up);
    assert_eq!(up.reason, format!("TCP_CHECK 127.0.0.1:{port}: connected"));
}

#[tokio::test]
async fn http_check_sends_keepalived_s_request_and_stays_up_on_200() {
    let server = HttpServer::start(200).await;
    let check = http_check(server.port, None, Duration::from_secs(2));
    let (_checker, mut events) = spawn(vec![target(1, vec![check])]).unwrap();
    wait_until("three requests", || server.request_count() >= 3).await;
    assert_no_event(&mut events);
    assert_eq!(
        server.requests.lock().unwrap()[0],
        format!(
            "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:{}\r\n\r\n",
            server.port
        )
    );
}

#[tokio::test]
async fn http_check_goes_down_on_503_and_up_on_200() {
    let server = HttpServer::start(503).await;
    let port = server.port;
    let check = http_check(port, None, Duration::from_secs(2));
    let (_checker, mut events) = spawn(vec![target(1, vec![check])]).unwrap();
    let down = next_event(&mut events).await;
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("HTTP_GET http://127.0.0.1:{port}/health returned 503 (expected 200-299)")
    );

    server.set_status(204);
    let up = next_event(&mut events).await;
    assert!(up.up);
    assert_eq!(
        up.reason,
        format!("HTTP_GET http://127.0.0.1:{port}/health returned 204")
    );
}

#[tokio::test]
async fn http_check_wants_the_configured_status_code() {
    let server = HttpServer::start(200).await;
    let port = server.port;
    let check = http_check(port, Some(201), Duration::from_secs(2));
    let (_checker, mut events) = spawn(vec![target(1, vec![check])]).unwrap();
    let down = next_event(&mut events).await;
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("HTTP_GET http://127.0.0.1:{port}/health returned 200 (expected 201)")
    );

    server.set_status(201);
    assert!(next_event(&mut events).await.up);
}

#[tokio::test]
async fn http_server_that_never_answers_times_out() {
    let server = HttpServer::start(0).await;
    let port = server.port;
    let check = http_check(port, None, 100 * MS);
    let (_checker, mut events) = spawn(vec![target(1, vec![check])]).unwrap();
    let down = next_event(&mut events).await;
    assert!(!down.up);
    assert_eq!(
        down.reason,
        format!("HTTP_GET http://127.0.0.1:{port}/health: no response within 100ms")
    );
}

#[tokio::test]
async fn a_slow_real_server_does_not_hold_up_the_others() {
    let silent = HttpServer::start(0).await;
    let slow = http_check(silent.port, None, Duration::from_secs(60));
    let dead = closed_port().await;
    let targets = vec![target(1, vec![slow]), target(2, vec![tcp_check(dead, 0)])];
    let (_checker, mut events) = spawn(targets).unwrap();
    let event = next_event(&mut events).await;
    assert_eq!((event.key, event.up), (key(2), false));
}

#[tokio::test]
async fn a_real_server_is_up_only_when_all_its_checks_pass() {
    let http = HttpServer::start(503).await;
    let tcp_port = closed_port().await;
    let checks = vec![
        tcp_check(tcp_port, 0),
        http_check(http.port, None, Duration::from_secs(2)),
    ];
    let (_checker, mut events) = spawn(vec![target(1, checks)]).unwrap();
    assert!(!next_event(&mut events).await.up);

    // The HTTP check recovers, the TCP one does not: still down, and nothing to report.
    http.set_status(200);
    let seen = http.request_count();
    wait_until("two more requests", || http.request_count() >= seen + 2).await;
    assert_no_event(&mut events);

    let _tcp = TcpServer::start(tcp_port).await;
    let up = next_event(&mut events).await;
    assert!(up.up);
    assert_eq!(
        up.reason,
        format!("TCP_CHECK 127.0.0.1:{tcp_port}: connected")
    );
}

#[tokio::test]
async fn replacing_targets_keeps_unchanged_ones_running() {
    let port_a = closed_port().await;
    let port_b = closed_port().await;
    let (mut checker, mut events) = spawn(vec![
        target(1, vec![tcp_check(port_a, 0)]),
        target(2, vec![tcp_check(port_b, 0)]),
    ])
    .unwrap();
    assert!(!next_event_of(&mut events, 1).await.up);

    // Server 1 unchanged, 2 gone, 3 new (starts up, then found down).
    let port_c = closed_port().await;
    checker
        .replace(vec![
            target(1, vec![tcp_check(port_a, 0)]),
            target(3, vec![tcp_check(port_c, 0)]),
        ])
        .unwrap();
    let mut keys: Vec<_> = checker.targets().map(|t| t.key).collect();
    keys.sort();
    assert_eq!(keys, [key(1), key(3)]);
    assert!(!next_event_of(&mut events, 3).await.up);

    // Server 1 kept its task and its down state: restarted, it would have started up and
    // reported down again (or nothing at all) instead of this.
    let _a = TcpServer::start(port_a).await;
    assert!(next_event_of(&mut events, 1).await.up);
}

#[tokio::test]
async fn reconfigured_checks_keep_their_state() {
    let open = TcpServer::start(0).await;
    let dead = closed_port().await;
    let (mut checker, mut events) = spawn(vec![target(
        1,
        vec![tcp_check(open.port, 0), tcp_check(dead, 0)],
    )])
    .unwrap();
    assert!(!next_event(&mut events).await.up);

    // Dropping the failing check leaves the real server with nothing failing.
    checker
        .replace(vec![target(1, vec![tcp_check(open.port, 0)])])
        .unwrap();
    let up = next_event(&mut events).await;
    assert_eq!(
        (up.up, up.reason.as_str()),
        (true, "reconfigured: no failing check left")
    );

    // Adding it back starts it afresh: up, then down on its first failure.
    checker
        .replace(vec![target(
            1,
            vec![tcp_check(open.port, 0), tcp_check(dead, 0)],
        )])
        .unwrap();
    let down = next_event(&mut events).await;
    assert_eq!(
        (down.up, down.reason),
        (
            false,
            format!("TCP_CHECK 127.0.0.1:{dead}: connection refused")
        )
    );
}

#[tokio::test]
async fn invalid_target_sets_change_nothing() {
    let server = TcpServer::start(0).await;
    let (mut checker, _events) = spawn(vec![target(1, vec![tcp_check(server.port, 0)])]).unwrap();
    let before: Vec<Target> = checker.targets().cloned().collect();

    let twice = vec![target(2, vec![]), target(2, vec![])];
    assert_eq!(
        checker.replace(twice),
        Err(TargetError::DuplicateKey(key(2)))
    );
    let bad = vec![target(3, vec![CheckSpec::http(LOCALHOST, 80, "health")])];
    assert_eq!(
        checker.replace(bad),
        Err(TargetError::Check {
            key: key(3),
            error: SpecError::BadPath("health".into()),
        })
    );
    assert_eq!(checker.targets().cloned().collect::<Vec<_>>(), before);
    assert!(spawn(vec![target(4, vec![CheckSpec::tcp(LOCALHOST, 0)])]).is_err());
}

#[tokio::test]
async fn stopping_ends_the_event_stream() {
    let server = TcpServer::start(0).await;
    let (checker, mut events) = spawn(vec![target(1, vec![tcp_check(server.port, 0)])]).unwrap();
    wait_until("an attempt", || server.accepted() >= 1).await;
    checker.stop();
    let end = tokio::time::timeout(PATIENCE, events.recv()).await.unwrap();
    assert_eq!(end, None);
}

#[tokio::test]
async fn http_urls_are_checked_in_turn_with_their_host_and_codes() {
    let server = HttpServer::start(302).await;
    let mut check = http_check(server.port, None, Duration::from_secs(2));
    if let Probe::Http(http) = &mut check.probe {
        http.protocol = HttpVersion::V1_1;
        http.urls = vec![
            UrlProbe {
                path: "/a".into(),
                status_codes: StatusCodes::new(vec![(200, 200), (301, 302)]),
                host: Some("www.example.com".into()),
                digest: None,
                regex: None,
            },
            UrlProbe {
                path: "/b".into(),
                status_codes: StatusCodes::new(vec![(300, 399)]),
                host: None,
                digest: None,
                regex: None,
            },
        ];
    }
    let (_checker, mut events) = spawn(vec![target(1, vec![check])]).unwrap();
    wait_until("four requests", || server.request_count() >= 4).await;
    assert_no_event(&mut events);
    let requests = server.requests.lock().unwrap().clone();
    let port = server.port;
    assert_eq!(
        requests[..4],
        [
            "GET /a HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: \
             www.example.com\r\n\r\n"
                .to_owned(),
            format!(
                "GET /b HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: \
                 127.0.0.1:{port}\r\n\r\n"
            ),
            "GET /a HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: \
             www.example.com\r\n\r\n"
                .to_owned(),
            format!(
                "GET /b HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: \
                 127.0.0.1:{port}\r\n\r\n"
            ),
        ]
    );
    // 303 is in /b's range but not /a's: down once /a sees it.
    server.set_status(303);
    let down = next_event(&mut events).await;
    assert!(!down.up);
    assert!(
        down.reason
            .contains("/a returned 303 (expected 200 301-302)"),
        "{down:?}"
    );
}

#[tokio::test]
async fn bindto_sets_the_source_of_the_check() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let source = Ipv4Addr::new(127, 0, 0, 2);
    let check = CheckSpec {
        bindto: Some(source.into()),
        ..tcp_check(port, 0)
    };
    let (_checker, _events) = spawn(vec![target(1, vec![check])]).unwrap();
    let (_, peer) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer.ip(), std::net::IpAddr::V4(source));
}

fn misc_check(code: &str, dynamic: bool) -> CheckSpec {
    CheckSpec {
        probe: Probe::Misc(MiscProbe {
            script: ScriptSpec {
                argv: vec!["/bin/sh".into(), "-c".into(), code.into()],
                uid: None,
                gid: None,
            },
            timeout: Duration::from_secs(5),
            dynamic,
        }),
        retry: 0,
        ..tcp_check(0, 0)
    }
}

#[tokio::test]
async fn misc_dynamic_exit_codes_set_the_weight() {
    let dir = std::env::temp_dir().join(format!("lb-misc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("code");
    std::fs::write(&file, "12").unwrap();
    let code = format!("exit $(cat {})", file.display());
    let (_checker, mut events) = spawn(vec![Target {
        weight: 3,
        ..target(1, vec![misc_check(&code, true)])
    }])
    .unwrap();
    // Exit 12: up, weight 10.
    let e = next_event(&mut events).await;
    assert_eq!((e.up, e.weight), (true, 10), "{e:?}");
    // Exit 0: weight back to the configured 3.
    std::fs::write(&file, "0").unwrap();
    let e = next_event(&mut events).await;
    assert_eq!((e.up, e.weight), (true, 3), "{e:?}");
    // Exit 1: down.
    std::fs::write(&file, "1").unwrap();
    let e = next_event(&mut events).await;
    assert_eq!((e.up, e.weight), (false, 3), "{e:?}");
    assert!(e.reason.ends_with("exited with status 1"), "{e:?}");
    // Exit 2: up with weight 0.
    std::fs::write(&file, "2").unwrap();
    let e = next_event(&mut events).await;
    assert_eq!((e.up, e.weight), (true, 0), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn misc_without_dynamic_fails_on_any_other_status_and_on_timeouts() {
    let (_checker, mut events) = spawn(vec![target(1, vec![misc_check("exit 7", false)])]).unwrap();
    let e = next_event(&mut events).await;
    assert!(!e.up && e.reason.ends_with("exited with status 7"), "{e:?}");
    let mut slow = misc_check("sleep 30", false);
    if let Probe::Misc(m) = &mut slow.probe {
        m.timeout = 100 * MS;
    }
    let (_checker, mut events) = spawn(vec![target(2, vec![slow])]).unwrap();
    let e = next_event(&mut events).await;
    assert!(!e.up && e.reason.contains("timed out"), "{e:?}");
}

#[tokio::test]
async fn ha_suspend_skips_checks_while_the_address_is_not_local() {
    let server = TcpServer::start(0).await;
    let not_here = Target {
        suspend_unless_local: Some(Ipv4Addr::new(192, 0, 2, 1).into()),
        ..target(1, vec![tcp_check(server.port, 0)])
    };
    let here = Target {
        suspend_unless_local: Some(LOCALHOST.into()),
        ..target(2, vec![tcp_check(server.port, 0)])
    };
    let (_checker, _events) = spawn(vec![not_here]).unwrap();
    tokio::time::sleep(200 * MS).await;
    assert_eq!(server.accepted(), 0, "a suspended check connected");
    let (_checker, _events) = spawn(vec![here]).unwrap();
    wait_until("a check of a local VIP", || server.accepted() >= 1).await;
}

#[tokio::test]
async fn a_failed_real_server_with_a_new_check_is_back_once_it_passes() {
    let dead = closed_port().await;
    let (mut checker, mut events) = spawn(vec![target(1, vec![tcp_check(dead, 0)])]).unwrap();
    assert!(!next_event(&mut events).await.up);
    // The reload replaces the failing check with one that passes: back after it ran.
    let server = TcpServer::start(0).await;
    checker
        .replace(vec![target(1, vec![tcp_check(server.port, 0)])])
        .unwrap();
    let up = next_event(&mut events).await;
    assert!(up.up, "{up:?}");
    assert!(
        server.accepted() >= 1,
        "up before the new check ran: {up:?}"
    );
}

/// A fake SMTP server on 127.0.0.1 answering with `banner` and `helo`, recording the lines it
/// was sent.
async fn smtp_server(banner: &'static str, helo: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lines = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let lines = Arc::clone(&lines);
            tokio::spawn(async move {
                let _ = stream.write_all(banner.as_bytes()).await;
                let mut buf = [0u8; 512];
                for answer in [helo, "221 bye\r\n"] {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    lines
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    (port, seen)
}

fn check_of(probe: Probe, port: u16) -> CheckSpec {
    CheckSpec {
        probe,
        retry: 0,
        delay_before_retry: 10 * MS,
        delay_loop: 20 * MS,
        connect_timeout: Duration::from_millis(500),
        ..CheckSpec::tcp(LOCALHOST, port)
    }
}

#[tokio::test]
async fn smtp_check_talks_as_keepalived() {
    let (good, seen) = smtp_server("220 mx ESMTP\r\n", "250 hello\r\n").await;
    let smtp = Probe::Smtp {
        helo_name: "lb.example.com".into(),
    };
    let (_checker, mut events) =
        spawn(vec![target(1, vec![check_of(smtp.clone(), good)])]).unwrap();
    wait_until("a whole conversation", || seen.lock().unwrap().len() >= 2).await;
    assert_no_event(&mut events);
    let lines = seen.lock().unwrap().clone();
    assert_eq!(lines[..2], ["HELO lb.example.com\r\n", "QUIT\r\n"]);

    // A multi-line banner's first line is no greeting for keepalived.
    let (bad, _) = smtp_server("220-mx ESMTP\r\n220 more\r\n", "250 hello\r\n").await;
    let (_checker, mut events) = spawn(vec![target(2, vec![check_of(smtp.clone(), bad)])]).unwrap();
    let e = next_event(&mut events).await;
    assert!(!e.up && e.reason.contains("bad greeting banner"), "{e:?}");
    let (refusing, _) = smtp_server("220 mx\r\n", "550 go away\r\n").await;
    let (_checker, mut events) = spawn(vec![target(3, vec![check_of(smtp, refusing)])]).unwrap();
    let e = next_event(&mut events).await;
    assert!(!e.up && e.reason.contains("bad HELO response"), "{e:?}");
}

#[tokio::test]
async fn udp_check_fails_on_port_unreachable_and_on_a_wrong_reply() {
    // Nothing listens: the ICMP port unreachable fails the check.
    let closed = {
        let s = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
        s.local_addr().unwrap().port()
    };
    let udp = UdpProbe {
        max_reply_length: 255,
        ..UdpProbe::default()
    };
    let (_checker, mut events) = spawn(vec![target(
        1,
        vec![check_of(Probe::Udp(udp.clone()), closed)],
    )])
    .unwrap();
    let e = next_event(&mut events).await;
    assert!(!e.up && e.reason.contains("connection refused"), "{e:?}");

    // An echo: the payload comes back; it must start with 0a XX.
    let echo = tokio::net::UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let port = echo.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let got = Arc::clone(&received);
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let (n, peer) = echo.recv_from(&mut buf).await.unwrap();
            got.lock().unwrap().push(buf[..n].to_vec());
            let _ = echo.send_to(&buf[..n], peer).await;
        }
    });
    let matching = UdpProbe {
        payload: Some(vec![0x0a, 0x42]),
        require_reply: true,
        reply: Some((vec![0x0a, 0x00], vec![0x00, 0xff])),
        ..udp.clone()
    };
    let (_checker, mut events) =
        spawn(vec![target(2, vec![check_of(Probe::Udp(matching), port)])]).unwrap();
    wait_until("two datagrams", || received.lock().unwrap().len() >= 2).await;
    assert_no_event(&mut events);
    let wrong = UdpProbe {
        payload: None,
        require_reply: true,
        reply: Some((vec![0x0a], vec![0x00])),
        ..udp
    };
    let (_checker, mut events) =
        spawn(vec![target(3, vec![check_of(Probe::Udp(wrong), port)])]).unwrap();
    let e = next_event(&mut events).await;
    assert!(!e.up && e.reason.contains("does not match"), "{e:?}");
    // keepalived's default payload.
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .any(|d| d == b"keepalived check - keepalived ch")
    );
}

#[tokio::test]
async fn dns_check_wants_an_answer_without_error() {
    // A resolver that answers NOERROR for A queries and REFUSED for anything else, after a
    // stray datagram with another id.
    let server = tokio::net::UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let (n, peer) = server.recv_from(&mut buf).await.unwrap();
            let query = &buf[..n];
            let qtype = u16::from_be_bytes([query[n - 4], query[n - 3]]);
            let mut stray = query.to_vec();
            stray[0] ^= 0xff;
            stray[2] |= 0x80;
            let _ = server.send_to(&stray, peer).await;
            let mut answer = query.to_vec();
            answer[2] |= 0x80;
            answer[3] = if qtype == 1 { 0x80 } else { 0x85 };
            let _ = server.send_to(&answer, peer).await;
        }
    });
    let a = DnsProbe {
        qtype: 1,
        name: "example.com".into(),
    };
    let (_checker, mut events) =
        spawn(vec![target(1, vec![check_of(Probe::Dns(a.clone()), port)])]).unwrap();
    tokio::time::sleep(200 * MS).await;
    assert_no_event(&mut events);
    let soa = DnsProbe { qtype: 6, ..a };
    let (_checker, mut events) =
        spawn(vec![target(2, vec![check_of(Probe::Dns(soa), port)])]).unwrap();
    let e = next_event(&mut events).await;
    assert!(!e.up && e.reason.contains("rcode 5"), "{e:?}");
}

#[tokio::test]
async fn http_digest_is_the_md5_of_the_body() {
    let server = HttpServer::start(200).await;
    let with_digest = |digest: [u8; 16]| {
        let mut check = http_check(server.port, None, Duration::from_secs(2));
        if let Probe::Http(http) = &mut check.probe {
            http.urls[0].digest = Some(digest);
        }
        check
    };
    // md5("ok"), the test server's body.
    let ok = [
        0x44, 0x4b, 0xcb, 0x3a, 0x3f, 0xcf, 0x83, 0x89, 0x29, 0x6c, 0x49, 0x46, 0x7f, 0x27, 0xe1,
        0xd6,
    ];
    let (_checker, mut events) = spawn(vec![target(1, vec![with_digest(ok)])]).unwrap();
    wait_until("three requests", || server.request_count() >= 3).await;
    assert_no_event(&mut events);
    let (_checker, mut events) = spawn(vec![target(2, vec![with_digest([0; 16])])]).unwrap();
    let e = next_event_of(&mut events, 2).await;
    assert!(!e.up && e.reason.contains("MD5 digest 444bcb3a"), "{e:?}");
}

/// SSL_GET against `openssl s_server -WWW`, whose certificate is self-signed: as keepalived,
/// the check does not verify it. A page's status and digest pass, another digest does not,
/// and HTTP_GET on the TLS port gets no answer it can read.
#[tokio::test]
async fn ssl_get_talks_tls_and_takes_any_certificate() {
    use md5::{Digest as _, Md5};
    let dir = std::env::temp_dir().join(format!("lb-ssl-get-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = b"hello over TLS\n";
    std::fs::write(dir.join("page.html"), page).unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2",
        ])
        .args(["-subj", "/CN=rs.example", "-batch"])
        .current_dir(&dir)
        .output()
        .expect("openssl (cargo xtask setup installs it)");
    assert!(made.status.success(), "{made:?}");
    let port = std::net::TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = tokio::process::Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", "cert.pem", "-key", "key.pem", "-WWW", "-quiet"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut check = http_check(port, None, Duration::from_secs(2));
    let Probe::Http(http) = &mut check.probe else {
        unreachable!()
    };
    http.tls = true;
    http.urls[0].path = "/page.html".to_owned();
    http.urls[0].digest = Some(Md5::digest(page).into());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let outcome = loop {
        let outcome = probe::attempt(&check, 0).await;
        if outcome.success || tokio::time::Instant::now() > deadline {
            break outcome;
        }
        tokio::time::sleep(100 * MS).await;
    };
    assert_eq!(
        outcome.reason,
        format!(
            "SSL_GET https://127.0.0.1:{port}/page.html returned 200 with the digest configured"
        )
    );
    assert!(outcome.success);

    // Without the digest: the status line only.
    let Probe::Http(http) = &mut check.probe else {
        unreachable!()
    };
    http.urls[0].digest = None;
    let outcome = probe::attempt(&check, 0).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(
        outcome.reason,
        format!("SSL_GET https://127.0.0.1:{port}/page.html returned 200")
    );

    let Probe::Http(http) = &mut check.probe else {
        unreachable!()
    };
    // Another page's digest.
    http.urls[0].digest = Some(Md5::digest(b"another page\n").into());
    let outcome = probe::attempt(&check, 0).await;
    assert!(!outcome.success, "{outcome:?}");
    assert!(
        outcome.reason.ends_with("is not the one configured"),
        "{outcome:?}"
    );

    let Probe::Http(http) = &mut check.probe else {
        unreachable!()
    };
    http.urls[0].digest = None;
    http.tls = false;
    let outcome = probe::attempt(&check, 0).await;
    assert!(!outcome.success, "{outcome:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ping_check_wants_its_own_echo_reply() {
    let ping = |addr: std::net::IpAddr, limit: Duration| CheckSpec {
        probe: Probe::Ping,
        connect_timeout: limit,
        ..CheckSpec::tcp(addr, 0)
    };
    // The loopback answers, in both families; attempts at the same time each get theirs.
    for addr in [
        std::net::IpAddr::from(LOCALHOST),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ] {
        let check = ping(addr, PATIENCE);
        assert_eq!(check.validate(), Ok(()), "a PING_CHECK needs no port");
        let (a, b) = tokio::join!(probe::attempt(&check, 0), probe::attempt(&check, 0));
        assert!(a.success && b.success, "{a:?} {b:?}");
        assert!(a.reason.contains("echo reply"), "{a:?}");
    }
    // Nothing answers for TEST-NET-2 (unreachable, or silence until the timeout). (The
    // e2e test has a real server that drops echo requests.)
    let o = probe::attempt(&ping(Ipv4Addr::new(198, 51, 100, 7).into(), 300 * MS), 0).await;
    assert!(!o.success, "{o:?}");
}
