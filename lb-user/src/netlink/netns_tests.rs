//! The module against the real kernel, as root, in network namespaces the tests make for
//! themselves: a "director" namespace holding `veth0` (10.0.0.1/24) and a "real server"
//! namespace holding its peer `veth1` (10.0.0.2/24 and 10.0.0.3/24), and for IPv6 the same with
//! 2001:db8::1/64 and 2001:db8::2/64, 2001:db8::3/64 (`nodad`). Each namespace belongs to
//! a thread of its own and disappears with it, veth pair included; the host's interfaces are
//! never touched.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    panic::{AssertUnwindSafe, catch_unwind, resume_unwind},
    process::Command,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use super::*;

/// A thread living in a new network namespace, running closures there.
struct Netns {
    jobs: Option<mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    /// The thread's id, which `ip link set ... netns` accepts as a "pid".
    tid: libc::pid_t,
    thread: Option<thread::JoinHandle<()>>,
}

impl Netns {
    fn new() -> Self {
        let (jobs, queue) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let (tid_tx, tid_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            // SAFETY: unshare only changes this thread's namespaces; CLONE_NEWNET is allowed
            // in a multi-threaded process.
            assert_eq!(
                unsafe { libc::unshare(libc::CLONE_NEWNET) },
                0,
                "unshare(CLONE_NEWNET) needs root"
            );
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            for job in queue {
                job();
            }
        });
        let tid = tid_rx.recv().expect("the namespace thread failed to start");
        Netns {
            jobs: Some(jobs),
            tid,
            thread: Some(thread),
        }
    }

    /// Runs `f` in the namespace; a panic there (a failed assertion) goes on here.
    fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        let job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        self.jobs.as_ref().unwrap().send(job).unwrap();
        match rx.recv().unwrap() {
            Ok(result) => result,
            Err(panic) => resume_unwind(panic),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Closing the queue ends the thread, and with it the namespace and its interfaces.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `ip ARGS` in the calling thread's namespace.
fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("running ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const DIRECTOR4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DIRECTOR: IpAddr = IpAddr::V4(DIRECTOR4);
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const SERVER_2: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
const DIRECTOR6_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const DIRECTOR6: IpAddr = IpAddr::V6(DIRECTOR6_ADDR);
const SERVER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
const SERVER6_2: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3));

/// The director and real-server namespaces joined by a veth pair, both ends up.
fn director_and_server() -> (Netns, Netns) {
    let director = Netns::new();
    let server = Netns::new();
    let server_tid = server.tid;
    director.run(move || {
        no_dad();
        ip("link set lo up");
        ip("link add veth0 address 02:00:00:00:00:01 type veth peer name veth1 address 02:00:00:00:00:02");
        ip(&format!("link set veth1 netns {server_tid}"));
        ip("addr add 10.0.0.1/24 dev veth0");
        ip("-6 addr add 2001:db8::1/64 dev veth0 nodad");
        ip("link set veth0 up");
    });
    server.run(|| {
        no_dad();
        ip("link set lo up");
        ip("addr add 10.0.0.2/24 dev veth1");
        ip("addr add 10.0.0.3/24 dev veth1");
        ip("-6 addr add 2001:db8::2/64 dev veth1 nodad");
        ip("-6 addr add 2001:db8::3/64 dev veth1 nodad");
        ip("link set veth1 up");
    });
    director.run(|| wait_until_up("veth0"));
    server.run(|| wait_until_up("veth1"));
    (director, server)
}

/// Interfaces made from here on in the calling thread's namespace skip duplicate address
/// detection, link-local addresses included: a solicitation sent while the link-local address
/// is still tentative goes out from `::` and reads as another node's detection probe.
fn no_dad() {
    // /proc/sys/net is the namespace of the thread that opens it.
    std::fs::write("/proc/sys/net/ipv6/conf/default/accept_dad", "0").unwrap();
}

/// Waits until `name` carries traffic: a veth end sends nothing until the kernel has seen the
/// carrier of both ends (the link watcher may take up to a second on a busy machine), and until
/// then frames are dropped, solicitations included.
fn wait_until_up(name: &'static str) {
    eventually(&format!("{name} to be up"), || {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "dev", name])
            .output()
            .expect("running ip");
        String::from_utf8_lossy(&out.stdout)
            .contains("state UP")
            .then_some(())
    });
}

/// Polls `f` until it gives a value, for up to 10 s (a timeout for a busy machine, not a measure).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn veth0_index() -> u32 {
    link_by_name("veth0").unwrap().index
}

#[test]
fn links_are_found_by_name_and_index() {
    let (director, _server) = director_and_server();
    director.run(|| {
        let veth0 = link_by_name("veth0").unwrap();
        assert_eq!(veth0.name, "veth0");
        assert_eq!(veth0.mac, DIRECTOR_MAC);
        assert_eq!(veth0.mtu, 1500);
        assert_eq!(veth0.ipv4, [(DIRECTOR4, 24)]);
        // Global IPv6 addresses only: not the link-local one the kernel added.
        assert_eq!(veth0.ipv6, [(DIRECTOR6_ADDR, 64)]);
        assert_eq!(veth0.kind.as_deref(), Some("veth"));
        // The peer is in the server's namespace, so IFLA_LINK comes with a namespace id.
        assert!(veth0.peer_netnsid.is_some(), "{veth0:?}");
        assert!(veth0.up, "{veth0:?}");
        assert_eq!(link_by_index(veth0.index).unwrap(), veth0);

        let lo = link_by_name("lo").unwrap();
        assert_eq!((lo.index, lo.kind, lo.mac), (1, None, [0; 6]));
        assert_eq!(lo.ipv4, [(Ipv4Addr::LOCALHOST, 8)]);
        // ::1 is of host scope.
        assert_eq!(lo.ipv6, []);
    });
}

#[test]
fn a_peer_in_the_same_namespace_is_reported_by_index() {
    let ns = Netns::new();
    ns.run(|| {
        ip("link add va type veth peer name vb");
        let (va, vb) = (link_by_name("va").unwrap(), link_by_name("vb").unwrap());
        assert_eq!((va.peer_index, va.peer_netnsid), (Some(vb.index), None));
        assert_eq!(vb.peer_index, Some(va.index));
        // Both ends down: not up.
        assert!(!va.up);
    });
}

#[test]
fn unknown_links_say_which() {
    let ns = Netns::new();
    ns.run(|| {
        let err = link_by_name("enp0s3").unwrap_err();
        assert!(matches!(err, Error::LinkNotFound(_)), "{err:?}");
        assert_eq!(err.to_string(), "interface enp0s3 not found");
        assert_eq!(
            link_by_name("a-name-longer-than-ifnamsiz")
                .unwrap_err()
                .to_string(),
            "interface a-name-longer-than-ifnamsiz not found"
        );
        assert_eq!(
            link_by_index(4242).unwrap_err().to_string(),
            "interface with index 4242 not found"
        );
        assert_eq!(
            link_by_index(0).unwrap_err().to_string(),
            "interface with index 0 not found"
        );
        assert_eq!(
            neighbour(4242, SERVER).unwrap_err().to_string(),
            "interface with index 4242 not found"
        );
        assert_eq!(
            request_resolution(4242, SERVER).unwrap_err().to_string(),
            "interface with index 4242 not found"
        );
    });
}

#[test]
fn route_to_gives_the_kernels_answer() {
    let (director, _server) = director_and_server();
    director.run(|| {
        let veth0 = veth0_index();
        assert_eq!(
            route_to(SERVER).unwrap(),
            Route {
                ifindex: veth0,
                gateway: None,
                prefsrc: Some(DIRECTOR),
                local: false
            }
        );

        ip("route add 192.0.2.0/24 via 10.0.0.2");
        assert_eq!(
            route_to(Ipv4Addr::new(192, 0, 2, 7).into()).unwrap(),
            Route {
                ifindex: veth0,
                gateway: Some(SERVER),
                prefsrc: Some(DIRECTOR),
                local: false
            }
        );

        let own = route_to(DIRECTOR).unwrap();
        assert!(own.local, "{own:?}");
        assert_eq!(own.ifindex, 1, "local routes leave through lo");

        // No default route in a fresh namespace.
        let err = route_to(Ipv4Addr::new(198, 51, 100, 1).into()).unwrap_err();
        assert!(matches!(err, Error::NoRoute { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("no route to 198.51.100.1: "),
            "{err}"
        );
    });
}

#[test]
fn request_resolution_sends_arp_and_the_answer_becomes_a_neighbour() {
    let (director, server) = director_and_server();
    let veth0 = director.run(|| {
        let veth0 = veth0_index();
        assert_eq!(neighbour(veth0, SERVER).unwrap(), None);
        assert!(neighbours(None).unwrap().is_empty());
        request_resolution(veth0, SERVER).unwrap();
        let found = eventually("the ARP reply", || neighbour(veth0, SERVER).unwrap());
        assert_eq!(
            found,
            Neighbour {
                mac: SERVER_MAC,
                state: NeighState::Reachable
            }
        );
        assert_eq!(neighbours(Some(veth0)).unwrap(), [(veth0, SERVER, found)]);
        assert_eq!(neighbours(None).unwrap(), [(veth0, SERVER, found)]);
        assert!(neighbours(Some(1)).unwrap().is_empty());
        // Asking again for a known neighbour is harmless.
        request_resolution(veth0, SERVER).unwrap();
        assert_eq!(neighbour(veth0, SERVER).unwrap(), Some(found));
        veth0
    });
    // The server learned the director from its ARP request: the request did go out on the wire.
    server.run(|| {
        let veth1 = link_by_name("veth1").unwrap().index;
        let learned = neighbour(veth1, DIRECTOR)
            .unwrap()
            .expect("the server saw no ARP request");
        assert_eq!(learned.mac, DIRECTOR_MAC);
    });
    assert_ne!(veth0, 0);
}

#[test]
fn an_unanswered_resolution_stays_unknown() {
    let (director, _server) = director_and_server();
    director.run(|| {
        let veth0 = veth0_index();
        let nobody = Ipv4Addr::new(10, 0, 0, 99).into();
        request_resolution(veth0, nobody).unwrap();
        // INCOMPLETE while the kernel asks, FAILED after: never usable.
        thread::sleep(Duration::from_millis(100));
        assert_eq!(neighbour(veth0, nobody).unwrap(), None);
        assert!(neighbours(Some(veth0)).unwrap().is_empty());
    });
}

#[test]
fn request_resolution_leaves_static_entries_alone() {
    let (director, _server) = director_and_server();
    director.run(|| {
        let veth0 = veth0_index();
        let fixed = Ipv4Addr::new(10, 0, 0, 50).into();
        ip("neigh add 10.0.0.50 lladdr 02:00:00:00:00:50 dev veth0 nud permanent");
        let permanent = Neighbour {
            mac: [2, 0, 0, 0, 0, 0x50],
            state: NeighState::Permanent,
        };
        assert_eq!(neighbour(veth0, fixed).unwrap(), Some(permanent));
        // Sent as is, NTF_USE would turn this entry INCOMPLETE and lose the MAC.
        request_resolution(veth0, fixed).unwrap();
        thread::sleep(Duration::from_millis(50));
        assert_eq!(neighbour(veth0, fixed).unwrap(), Some(permanent));
    });
}

#[test]
fn the_monitor_reports_resolution_and_deletion() {
    let (director, _server) = director_and_server();
    director.run(|| {
        let veth0 = veth0_index();
        let mut monitor = NeighbourMonitor::new().unwrap();
        assert_eq!(monitor.wait(Some(Duration::from_millis(20))).unwrap(), []);

        request_resolution(veth0, SERVER_2).unwrap();
        let resolved = Some(Neighbour {
            mac: SERVER_MAC,
            state: NeighState::Reachable,
        });
        eventually("the resolved neighbour's announcement", || {
            let events = monitor.wait(Some(Duration::from_millis(100))).unwrap();
            events
                .contains(&NeighbourEvent::Changed {
                    ifindex: veth0,
                    addr: SERVER_2,
                    neighbour: resolved,
                })
                .then_some(())
        });

        ip("neigh del 10.0.0.3 dev veth0");
        eventually("the deletion's announcement", || {
            let events = monitor.wait(Some(Duration::from_millis(100))).unwrap();
            events
                .contains(&NeighbourEvent::Changed {
                    ifindex: veth0,
                    addr: SERVER_2,
                    neighbour: None,
                })
                .then_some(())
        });
    });
}

// ---- IPv6: routes, NDP, addresses -----------------------------------------------------------

#[test]
fn tentative_ipv6_addresses_are_not_listed() {
    let (director, _server) = director_and_server();
    director.run(|| {
        // Without nodad, and with detection on for this interface again, the address waits for
        // duplicate address detection (a second or so).
        std::fs::write("/proc/sys/net/ipv6/conf/veth0/accept_dad", "1").unwrap();
        ip("-6 addr add 2001:db8::9/64 dev veth0");
        assert_eq!(link_by_name("veth0").unwrap().ipv6, [(DIRECTOR6_ADDR, 64)]);
    });
}

#[test]
fn route_to_an_ipv6_address() {
    let (director, _server) = director_and_server();
    director.run(|| {
        let veth0 = veth0_index();
        assert_eq!(
            route_to(SERVER6).unwrap(),
            Route {
                ifindex: veth0,
                gateway: None,
                prefsrc: Some(DIRECTOR6),
                local: false
            }
        );

        ip("-6 route add 2001:db8:2::/64 via 2001:db8::2");
        let routed = route_to("2001:db8:2::7".parse().unwrap()).unwrap();
        assert_eq!((routed.ifindex, routed.gateway), (veth0, Some(SERVER6)));

        let own = route_to(DIRECTOR6).unwrap();
        assert!(own.local, "{own:?}");
        assert_eq!(own.ifindex, 1, "local routes leave through lo");

        let err = route_to("2001:db8:99::1".parse().unwrap()).unwrap_err();
        assert!(matches!(err, Error::NoRoute { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("no route to 2001:db8:99::1: "),
            "{err}"
        );
    });
}

#[test]
fn request_resolution_solicits_an_ipv6_neighbour() {
    let (director, server) = director_and_server();
    director.run(|| {
        let veth0 = veth0_index();
        assert_eq!(neighbour(veth0, SERVER6).unwrap(), None);
        request_resolution(veth0, SERVER6).unwrap();
        let found = eventually("the neighbour advertisement", || {
            neighbour(veth0, SERVER6).unwrap()
        });
        assert_eq!(
            found,
            Neighbour {
                mac: SERVER_MAC,
                state: NeighState::Reachable
            }
        );
        // Both tables in one list; no multicast (NOARP) entries in it.
        let all = neighbours(Some(veth0)).unwrap();
        assert!(all.contains(&(veth0, SERVER6, found)), "{all:?}");
        assert!(all.iter().all(|(_, a, _)| !a.is_multicast()), "{all:?}");
        request_resolution(veth0, SERVER6).unwrap();
        assert_eq!(neighbour(veth0, SERVER6).unwrap(), Some(found));

        // Unanswered: never usable.
        let nobody: IpAddr = "2001:db8::99".parse().unwrap();
        request_resolution(veth0, nobody).unwrap();
        thread::sleep(Duration::from_millis(100));
        assert_eq!(neighbour(veth0, nobody).unwrap(), None);
    });
    // The solicitation went out on the wire: the server learned the director's MAC from it
    // (under the solicitation's source, the director's link-local address).
    server.run(|| {
        let veth1 = link_by_name("veth1").unwrap().index;
        eventually("the solicitation at the server", || {
            neighbours(Some(veth1))
                .unwrap()
                .into_iter()
                .find(|(_, addr, n)| addr.is_ipv6() && n.mac == DIRECTOR_MAC)
        });
    });
}

#[test]
fn the_monitor_reports_ipv6_neighbours() {
    let (director, _server) = director_and_server();
    director.run(|| {
        let veth0 = veth0_index();
        let mut monitor = NeighbourMonitor::new().unwrap();
        request_resolution(veth0, SERVER6_2).unwrap();
        let resolved = Some(Neighbour {
            mac: SERVER_MAC,
            state: NeighState::Reachable,
        });
        eventually("the resolved IPv6 neighbour's announcement", || {
            let events = monitor.wait(Some(Duration::from_millis(100))).unwrap();
            events
                .contains(&NeighbourEvent::Changed {
                    ifindex: veth0,
                    addr: SERVER6_2,
                    neighbour: resolved,
                })
                .then_some(())
        });
    });
}
