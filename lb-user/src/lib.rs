//! lb's user space as a library: everything `lbd` and `lbadm` do, with the deciding logic
//! (configuration rules, schedulers, ipvsadm syntax and layouts) kept pure and unit-tested
//! apart from the parts that touch the kernel.

pub mod bird;
pub mod bpf_batch;
pub mod cli;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod director;
pub mod health;
pub mod ids;
pub mod interfaces;
pub mod ipvsadm;
pub mod keepalived;
pub mod live_counts;
pub mod locality;
pub mod logging;
pub mod managed;
pub mod metrics;
pub mod model;
pub mod netlink;
pub mod object;
pub mod pinning;
pub mod real_copies;
pub mod resolution;
pub mod sched;
pub mod service_manager;
pub mod slots;
pub mod state;
pub mod sweep;
pub mod sync;
pub mod sysctl;
pub mod xdp_holder;
