//! lb's test support: a network-namespace testbed for end-to-end tests of `lbd` and `lbadm`
//! (see [`testbed`]), and the helpers it is built from.
//!
//! ```no_run
//! use lb_tests::Testbed;
//!
//! let mut tb = Testbed::builder().real_servers(2).build();
//! tb.start_lbd();
//! let vip = tb.vip_port(80);
//! tb.lbadm(&["-A", "-t", &vip, "-s", "rr"]);
//! tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(1), "-g"]);
//! tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(2), "-g"]);
//! let tally = tb.curl_vip(80, 10);
//! tally.assert_all_ok();
//! assert_eq!(tally.count("rs1"), 5);
//! // Dropping `tb` stops lbd and deletes the namespaces, also when the test panics.
//! ```
//!
//! Everything here panics on failure with the command that failed and what it printed:
//! tests want the backtrace and the context, not a `Result`.

pub mod bench;
pub mod bound;
pub mod cmd;
pub mod echo;
pub mod ecmp;
pub mod http;
pub mod lbd;
pub mod listing;
pub mod netns;
pub mod tap;
pub mod testbed;
pub mod tools;
pub mod wait;
pub mod xdp_pass;

pub use echo::{ECHO_PORT, UDP_ECHO_PORT};
pub use http::{LoadGen, LoadReport, Tally};
pub use lbd::XdpMode;
pub use tap::Counter;
pub use testbed::{SERVICE_PORT, Testbed, TestbedBuilder, Topology, UNSERVED_PORT};
