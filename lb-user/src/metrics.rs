//! A Prometheus endpoint: `GET /metrics` answered in the text exposition format (version 0.0.4).
//!
//! Two halves, kept apart so the first can be tested exactly:
//! - [`render`] turns a [`MetricsInput`] (the running configuration with its live figures, the
//!   data-path event counters, health-check verdicts, build) into the exposition text, written
//!   by `prometheus-client` (its Prometheus text encoder, from a collector that holds one
//!   scrape's figures: every series is read from lbd's tables at scrape time, so there are no
//!   long-lived counters to keep in step). Pure.
//! - [`serve`] is an HTTP/1.1 server on hyper: one request per connection, closed after the
//!   reply, with a deadline for the request head (hyper closes the connection when it passes),
//!   a size limit on it (431), a deadline for the whole exchange and a cap on concurrent
//!   connections, so slow or hostile clients cost a bounded amount.
//!
//! lbd serves it only when asked (`--metrics ADDR`). The endpoint has no authentication and no
//! TLS; binding anything other than a loopback address is the operator's choice, to make with a
//! firewall in mind.
//!
//! Label values follow the model's own spelling: `protocol="tcp"|"udp"`,
//! `forward="route"|"tunnel"|"masq"`, addresses dotted-quad or IPv6 text (`2001:db8::1`, no
//! brackets: ports have labels of their own), ports decimal. Rates (ipvsadm `--rate`) are not
//! exported: Prometheus derives them from the counters with `rate()`.
//!
//! After lb's own families come node_exporter's IPVS collector's (`node_ipvs_*`), with its
//! names, help texts and labels, for dashboards written for IPVS directors.

use std::{
    borrow::Cow, collections::HashMap, convert::Infallible, fmt, io, net::IpAddr, sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use lb_common::Stat;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, prometheus_text},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge, info::Info},
    registry::Registry,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinSet,
    time::timeout,
};
use tracing::{debug, warn};

use crate::model::{Forward, Protocol, RealSpec, RealStatus, ServiceAddr, Snapshot};

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

/// Everything one scrape shows, gathered by lbd at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsInput {
    /// Services and real servers with their counters (what `lbadm -L --stats` shows).
    pub snapshot: Snapshot,
    /// Data-path event counters by reason ([`crate::director::Director::events`]).
    pub events: Vec<(Stat, u64)>,
    /// Health-check verdicts; only health-checked real servers appear here.
    pub health: Vec<HealthState>,
    pub build: BuildInfo,
}

/// The health-check verdict on one real server of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    pub service: ServiceAddr,
    /// The real server's address and port (the fields of `health::TargetKey`).
    pub real: IpAddr,
    pub port: u16,
    pub up: bool,
}

/// What `lb_build_info` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    /// Commit the binary was built from, when the build knew it.
    pub git: Option<String>,
}

impl BuildInfo {
    /// This build: the crate version, and the commit if `LB_GIT_COMMIT` was set at build time.
    pub fn current() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            git: option_env!("LB_GIT_COMMIT").map(str::to_owned),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// A metric family: the name its samples carry and what HELP/TYPE say about it.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const BUILD_INFO: Family = Family {
    name: "lb_build_info",
    kind: Kind::Gauge,
    help: "Build of the running lbd: always 1, described by its labels.",
};
const DATAPATH_EVENTS: Family = Family {
    name: "lb_datapath_events_total",
    kind: Kind::Counter,
    help: "Data-path events by reason (packets seen, passed to the kernel, forwarded, dropped), \
           summed over CPUs.",
};
const SERVICE_CONNECTIONS: Family = Family {
    name: "lb_service_connections_total",
    kind: Kind::Counter,
    help: "Connections scheduled for the virtual service.",
};
const SERVICE_PACKETS: Family = Family {
    name: "lb_service_packets_total",
    kind: Kind::Counter,
    help: "Packets of the virtual service: in from clients, out from real servers (seen only \
           when replies pass through the director, as with NAT).",
};
const SERVICE_BYTES: Family = Family {
    name: "lb_service_bytes_total",
    kind: Kind::Counter,
    help: "Bytes of the virtual service: in from clients, out from real servers (seen only \
           when replies pass through the director, as with NAT).",
};
const REAL_CONNECTIONS: Family = Family {
    name: "lb_real_connections_total",
    kind: Kind::Counter,
    help: "Connections scheduled to the real server.",
};
const REAL_PACKETS: Family = Family {
    name: "lb_real_packets_total",
    kind: Kind::Counter,
    help: "Packets of the real server's connections, by direction (as for the service).",
};
const REAL_BYTES: Family = Family {
    name: "lb_real_bytes_total",
    kind: Kind::Counter,
    help: "Bytes of the real server's connections, by direction (as for the service).",
};
const REAL_ACTIVE: Family = Family {
    name: "lb_real_active_connections",
    kind: Kind::Gauge,
    help: "Active connections to the real server (ipvsadm ActiveConn).",
};
const REAL_INACTIVE: Family = Family {
    name: "lb_real_inactive_connections",
    kind: Kind::Gauge,
    help: "Inactive connections to the real server (ipvsadm InActConn).",
};
const REAL_PERSISTENT: Family = Family {
    name: "lb_real_persistent_connections",
    kind: Kind::Gauge,
    help: "Persistence templates pointing at the real server (ipvsadm PersistConn).",
};
const REAL_WEIGHT: Family = Family {
    name: "lb_real_weight",
    kind: Kind::Gauge,
    help: "Configured weight of the real server (0: quiescent, no new connections).",
};
const REAL_UP: Family = Family {
    name: "lb_real_up",
    kind: Kind::Gauge,
    help: "Health-check verdict on the real server: 1 up, 0 down (health-checked real servers \
           only).",
};

// node_exporter's IPVS collector (`collector/ipvs_linux.go`): the same names, types, help
// texts and labels, so that dashboards and alerts written for IPVS directors read lb unchanged.
// node_exporter takes the totals from `/proc/net/ip_vs_stats` (the kernel's sum over every
// service) and the per-real-server gauges from `/proc/net/ip_vs`; lb's figures are the ones
// `lbadm -Ln --stats` and `lbadm -Ln` print.
const NODE_IPVS_CONNECTIONS: Family = Family {
    name: "node_ipvs_connections_total",
    kind: Kind::Counter,
    help: "The total number of connections made.",
};
const NODE_IPVS_INCOMING_PACKETS: Family = Family {
    name: "node_ipvs_incoming_packets_total",
    kind: Kind::Counter,
    help: "The total number of incoming packets.",
};
const NODE_IPVS_OUTGOING_PACKETS: Family = Family {
    name: "node_ipvs_outgoing_packets_total",
    kind: Kind::Counter,
    help: "The total number of outgoing packets.",
};
const NODE_IPVS_INCOMING_BYTES: Family = Family {
    name: "node_ipvs_incoming_bytes_total",
    kind: Kind::Counter,
    help: "The total amount of incoming data.",
};
const NODE_IPVS_OUTGOING_BYTES: Family = Family {
    name: "node_ipvs_outgoing_bytes_total",
    kind: Kind::Counter,
    help: "The total amount of outgoing data.",
};
const NODE_IPVS_BACKEND_ACTIVE: Family = Family {
    name: "node_ipvs_backend_connections_active",
    kind: Kind::Gauge,
    help: "The current active connections by local and remote address.",
};
const NODE_IPVS_BACKEND_INACTIVE: Family = Family {
    name: "node_ipvs_backend_connections_inactive",
    kind: Kind::Gauge,
    help: "The current inactive connections by local and remote address.",
};
const NODE_IPVS_BACKEND_WEIGHT: Family = Family {
    name: "node_ipvs_backend_weight",
    kind: Kind::Gauge,
    help: "The current backend weight by local and remote address.",
};

/// The label value of a protocol (the model's serde spelling).
const fn protocol_label(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// The label value of a forwarding method (the model's serde spelling).
const fn forward_label(forward: Forward) -> &'static str {
    match forward {
        Forward::Route => "route",
        Forward::Tunnel => "tunnel",
        Forward::Masq => "masq",
    }
}

/// A label set, in the order its labels are written.
#[derive(Clone, Debug, Default)]
struct Labels(Vec<(&'static str, String)>);

impl Labels {
    fn new(pairs: &[(&'static str, &str)]) -> Self {
        Labels(pairs.iter().map(|&(k, v)| (k, v.to_owned())).collect())
    }

    fn push(&mut self, name: &'static str, value: &str) {
        self.0.push((name, value.to_owned()));
    }

    fn with(&self, name: &'static str, value: &str) -> Self {
        let mut labels = self.clone();
        labels.push(name, value);
        labels
    }
}

/// Writes one family: HELP and TYPE, then its samples, all together as the format requires.
/// A family without samples is left out entirely. prometheus-client writes a counter's
/// `_total` itself, so it is given the name without it; the help text is written as given.
fn write_family<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    family: &Family,
    samples: impl IntoIterator<Item = (Cow<'a, Labels>, u64)>,
) -> fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let (name, metric_type) = match family.kind {
        Kind::Counter => (
            family
                .name
                .strip_suffix("_total")
                .expect("counter names end in _total"),
            MetricType::Counter,
        ),
        Kind::Gauge => (family.name, MetricType::Gauge),
    };
    let mut metric = encoder.encode_descriptor(name, family.help, None, metric_type)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels.0)?;
        match family.kind {
            Kind::Counter => ConstCounter::new(value).encode(sample)?,
            Kind::Gauge => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

/// The two samples of a per-direction counter.
fn directions<'a>(labels: &Labels, in_: u64, out: u64) -> [(Cow<'a, Labels>, u64); 2] {
    [
        (Cow::Owned(labels.with("direction", "in")), in_),
        (Cow::Owned(labels.with("direction", "out")), out),
    ]
}

/// Renders one scrape in the Prometheus text exposition format 0.0.4.
///
/// Series come in the snapshot's order. Health verdicts are matched to the snapshot's real
/// servers (so `lb_real_up` carries the same labels as the other `lb_real_*` series); a verdict
/// about a real server not in the table (its failed check took it out, as keepalived does) is
/// shown without the `forward` label, and of two verdicts about the same one the last wins.
pub fn render(input: &MetricsInput) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(input.clone())));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// One scrape's figures as a prometheus-client collector: the registry of a scrape holds only
/// this, since every series comes from the snapshot taken for it.
#[derive(Debug)]
struct Scrape(MetricsInput);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        encode_scrape(&self.0, &mut encoder)
    }
}

fn encode_scrape(input: &MetricsInput, out: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let services: Vec<_> = input
        .snapshot
        .services
        .iter()
        .map(|service| (service_labels(&service.spec.addr), service))
        .collect();
    let reals: Vec<_> = input
        .snapshot
        .services
        .iter()
        .flat_map(|service| {
            service.reals.iter().map(move |real| {
                let key = (service.spec.addr, real.spec.addr, real.spec.port);
                (real_labels(&service.spec.addr, &real.spec), key, real)
            })
        })
        .collect();
    let health: HashMap<_, _> = input
        .health
        .iter()
        .map(|h| ((h.service, h.real, h.port), h.up))
        .collect();

    let mut build = Labels::new(&[("version", &input.build.version)]);
    if let Some(git) = &input.build.git {
        build.push("git", git);
    }
    let info = Info::new(build.0);
    info.encode(out.encode_descriptor(
        BUILD_INFO.name.strip_suffix("_info").expect("an info name"),
        BUILD_INFO.help,
        None,
        info.metric_type(),
    )?)?;

    write_family(
        out,
        &DATAPATH_EVENTS,
        input
            .events
            .iter()
            .map(|&(stat, n)| (Cow::Owned(Labels::new(&[("event", stat.name())])), n)),
    )?;

    write_family(
        out,
        &SERVICE_CONNECTIONS,
        services
            .iter()
            .map(|(labels, s)| (Cow::Borrowed(labels), s.stats.conns)),
    )?;
    write_family(
        out,
        &SERVICE_PACKETS,
        services
            .iter()
            .flat_map(|(labels, s)| directions(labels, s.stats.in_pkts, s.stats.out_pkts)),
    )?;
    write_family(
        out,
        &SERVICE_BYTES,
        services
            .iter()
            .flat_map(|(labels, s)| directions(labels, s.stats.in_bytes, s.stats.out_bytes)),
    )?;

    write_family(
        out,
        &REAL_CONNECTIONS,
        reals
            .iter()
            .map(|(labels, _, r)| (Cow::Borrowed(labels), r.stats.conns)),
    )?;
    write_family(
        out,
        &REAL_PACKETS,
        reals
            .iter()
            .flat_map(|(labels, _, r)| directions(labels, r.stats.in_pkts, r.stats.out_pkts)),
    )?;
    write_family(
        out,
        &REAL_BYTES,
        reals
            .iter()
            .flat_map(|(labels, _, r)| directions(labels, r.stats.in_bytes, r.stats.out_bytes)),
    )?;
    let real_gauge =
        |out: &mut DescriptorEncoder<'_>, family: &Family, value: fn(&RealStatus) -> u64| {
            write_family(
                out,
                family,
                reals
                    .iter()
                    .map(|(labels, _, r)| (Cow::Borrowed(labels), value(r))),
            )
        };
    real_gauge(out, &REAL_ACTIVE, |r| r.active_conns.into())?;
    real_gauge(out, &REAL_INACTIVE, |r| r.inactive_conns.into())?;
    real_gauge(out, &REAL_PERSISTENT, |r| r.persistent_conns.into())?;
    real_gauge(out, &REAL_WEIGHT, |r| r.spec.weight.into())?;
    let listed: std::collections::HashSet<_> = reals.iter().map(|(_, key, _)| *key).collect();
    let mut out_of_table: Vec<_> = health
        .iter()
        .filter(|(key, _)| !listed.contains(*key))
        .map(|(&(service, real, port), &up)| {
            let mut labels = service_labels(&service);
            labels.push("real", &real.to_string());
            labels.push("real_port", &port.to_string());
            (labels, u64::from(up))
        })
        .collect();
    out_of_table.sort_by(|a, b| a.0.0.cmp(&b.0.0));
    write_family(
        out,
        &REAL_UP,
        reals
            .iter()
            .filter_map(|(labels, key, _)| {
                health
                    .get(key)
                    .map(|&up| (Cow::Borrowed(labels), u64::from(up)))
            })
            .chain(out_of_table.into_iter().map(|(l, up)| (Cow::Owned(l), up))),
    )?;

    write_node_ipvs(out, &input.snapshot)
}

/// An address as Go's `net.IP.String` writes it, which is how node_exporter labels them:
/// dotted quad for IPv4, RFC 5952 text for IPv6 (as Rust's), except that an IPv4-mapped IPv6
/// address is written as the IPv4 address it maps.
fn go_ip_string(addr: IpAddr) -> String {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// node_exporter's IPVS families: the five totals (no labels), then one series per real server
/// of each backend gauge, labelled `local_address`, `local_port`, `remote_address`,
/// `remote_port`, `proto` (`TCP`, `UDP`) and `local_mark` (the firewall mark of an FWM
/// service in `/proc/net/ip_vs`'s hex, empty otherwise: lb has no fwmark services, so it is
/// always empty, as node_exporter writes it for TCP and UDP services).
fn write_node_ipvs(out: &mut DescriptorEncoder<'_>, snapshot: &Snapshot) -> fmt::Result {
    let total = snapshot
        .services
        .iter()
        .fold(crate::model::Stats::default(), |mut sum, s| {
            sum.conns = sum.conns.wrapping_add(s.stats.conns);
            sum.in_pkts = sum.in_pkts.wrapping_add(s.stats.in_pkts);
            sum.out_pkts = sum.out_pkts.wrapping_add(s.stats.out_pkts);
            sum.in_bytes = sum.in_bytes.wrapping_add(s.stats.in_bytes);
            sum.out_bytes = sum.out_bytes.wrapping_add(s.stats.out_bytes);
            sum
        });
    let none = || Cow::Owned(Labels::default());
    write_family(out, &NODE_IPVS_CONNECTIONS, [(none(), total.conns)])?;
    write_family(out, &NODE_IPVS_INCOMING_PACKETS, [(none(), total.in_pkts)])?;
    write_family(out, &NODE_IPVS_OUTGOING_PACKETS, [(none(), total.out_pkts)])?;
    write_family(out, &NODE_IPVS_INCOMING_BYTES, [(none(), total.in_bytes)])?;
    write_family(out, &NODE_IPVS_OUTGOING_BYTES, [(none(), total.out_bytes)])?;

    let backends: Vec<_> = snapshot
        .services
        .iter()
        .flat_map(|service| {
            let addr = &service.spec.addr;
            service.reals.iter().map(move |real| {
                let labels = Labels::new(&[
                    ("local_address", &go_ip_string(addr.addr)),
                    ("local_port", &addr.port.to_string()),
                    ("remote_address", &go_ip_string(real.spec.addr)),
                    ("remote_port", &real.spec.port.to_string()),
                    ("proto", addr.protocol.label()),
                    ("local_mark", ""),
                ]);
                (labels, real)
            })
        })
        .collect();
    let backend_gauge =
        |out: &mut DescriptorEncoder<'_>, family: &Family, value: fn(&RealStatus) -> u64| {
            write_family(
                out,
                family,
                backends
                    .iter()
                    .map(|(labels, r)| (Cow::Borrowed(labels), value(r))),
            )
        };
    backend_gauge(out, &NODE_IPVS_BACKEND_ACTIVE, |r| r.active_conns.into())?;
    backend_gauge(out, &NODE_IPVS_BACKEND_INACTIVE, |r| {
        r.inactive_conns.into()
    })?;
    backend_gauge(out, &NODE_IPVS_BACKEND_WEIGHT, |r| r.spec.weight.into())
}

fn service_labels(addr: &ServiceAddr) -> Labels {
    Labels::new(&[
        ("protocol", protocol_label(addr.protocol)),
        ("vip", &addr.addr.to_string()),
        ("port", &addr.port.to_string()),
    ])
}

fn real_labels(service: &ServiceAddr, real: &RealSpec) -> Labels {
    let mut labels = service_labels(service);
    labels.push("real", &real.addr.to_string());
    labels.push("real_port", &real.port.to_string());
    labels.push("forward", forward_label(real.forward));
    labels
}

// ---------------------------------------------------------------------------------------------
// HTTP: hyper
// ---------------------------------------------------------------------------------------------

/// Where a scrape's figures come from. Called on a blocking thread, once per `GET /metrics`.
pub type Source = dyn Fn() -> MetricsInput + Send + Sync;

/// Bounds on what one client may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time for the whole request head to arrive (a client trickling bytes gets no longer);
    /// then hyper closes the connection.
    pub request_timeout: Duration,
    /// Time for the client to take the whole reply.
    pub write_timeout: Duration,
    /// Largest request head (request line and headers): hyper's read buffer, which it does not
    /// let below 8 KiB. A larger head is answered 431.
    pub max_head: usize,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            request_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_head: 8 * 1024,
            max_connections: 32,
        }
    }
}

/// Answers `GET /metrics` on `listener` with [`ServerLimits::default`]; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    source: impl Fn() -> MetricsInput + Send + Sync + 'static,
) {
    serve_with(listener, Arc::new(source), ServerLimits::default()).await
}

/// Answers `GET /metrics` (and `HEAD`) on `listener` with [`render`]`(source())`, 404 for any
/// other path, 405 for other methods, one request per connection (HTTP/1.x, hyper). Runs until
/// the future is dropped, which also ends the connections in progress.
pub async fn serve_with(listener: TcpListener, source: Arc<Source>, limits: ServerLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        while let Some(done) = connections.try_join_next() {
            reap(done);
        }
        // A slot is freed when its connection's task ends.
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        match listener.accept().await {
            Ok((stream, peer)) => {
                let source = Arc::clone(&source);
                connections.spawn(async move {
                    let _slot = slot;
                    if let Err(e) = connection(stream, source, limits).await {
                        debug!(%peer, "metrics connection: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of descriptors, typically: back off instead of spinning.
                warn!("metrics endpoint accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn reap(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        warn!("metrics connection task failed: {e}");
    }
}

/// One connection: hyper reads the head (within `request_timeout`, at most `max_head` bytes,
/// answering 400 or 431 itself when it cannot), [`answer`] replies, and the connection closes.
async fn connection(
    stream: TcpStream,
    source: Arc<Source>,
    limits: ServerLimits,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = service_fn(move |request| answer(request, Arc::clone(&source)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_buf_size(limits.max_head.max(8 * 1024))
        .keep_alive(false);
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    timeout(limits.request_timeout + limits.write_timeout, serving)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(())
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("a valid content type"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

fn error_reply(status: StatusCode) -> Response<Full<Bytes>> {
    let text = format!(
        "{} {}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    reply(status, "text/plain; charset=utf-8", text)
}

/// Routes one request. hyper leaves out the body of a reply to HEAD and keeps its length.
async fn answer(
    request: Request<Incoming>,
    source: Arc<Source>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/metrics" {
        return Ok(error_reply(StatusCode::NOT_FOUND));
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return Ok(error_reply(StatusCode::METHOD_NOT_ALLOWED));
    }
    Ok(
        match tokio::task::spawn_blocking(move || render(&source())).await {
            Ok(text) => reply(StatusCode::OK, CONTENT_TYPE, text),
            Err(e) => {
                warn!("metrics source failed: {e}");
                error_reply(StatusCode::INTERNAL_SERVER_ERROR)
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{HashMap, HashSet},
        net::SocketAddr,
        time::Instant,
    };

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::model::{
        Rates, RealStatus, SchedFlags, Scheduler, ServiceSpec, ServiceStatus, Stats,
    };
    use std::net::Ipv4Addr;

    const WEB: ServiceAddr = ServiceAddr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        port: 80,
    };
    const DNS: ServiceAddr = ServiceAddr {
        protocol: Protocol::Udp,
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        port: 53,
    };

    fn stats(conns: u64, in_pkts: u64, out_pkts: u64, in_bytes: u64, out_bytes: u64) -> Stats {
        Stats {
            conns,
            in_pkts,
            out_pkts,
            in_bytes,
            out_bytes,
        }
    }

    fn real(addr: [u8; 4], port: u16, forward: Forward, weight: u32) -> RealStatus {
        RealStatus {
            spec: RealSpec {
                addr: Ipv4Addr::from(addr).into(),
                port,
                forward,
                weight,
                upper_threshold: 0,
                lower_threshold: 0,
                tunnel: Default::default(),
            },
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        }
    }

    fn service(
        addr: ServiceAddr,
        scheduler: Scheduler,
        stats: Stats,
        reals: Vec<RealStatus>,
    ) -> ServiceStatus {
        ServiceStatus {
            spec: ServiceSpec {
                addr,
                scheduler,
                persistence: None,
                sched_flags: SchedFlags::default(),
            },
            stats,
            rates: Rates::default(),
            reals,
        }
    }

    fn sample() -> MetricsInput {
        let mut r1 = real([192, 168, 1, 2], 80, Forward::Route, 1);
        r1.active_conns = 3;
        r1.inactive_conns = 1;
        r1.stats = stats(6, 60, 0, 3600, 0);
        let mut r2 = real([192, 168, 1, 3], 8080, Forward::Masq, 2);
        r2.active_conns = 2;
        r2.persistent_conns = 4;
        r2.stats = stats(4, 40, 38, 2400, 91000);
        let r3 = real([192, 168, 1, 4], 53, Forward::Tunnel, 0);
        MetricsInput {
            snapshot: Snapshot {
                conn_table_size: 4096,
                services: vec![
                    service(
                        WEB,
                        Scheduler::Wlc,
                        stats(10, 100, 38, 6000, 91000),
                        vec![r1, r2],
                    ),
                    service(DNS, Scheduler::Rr, Stats::default(), vec![r3]),
                ],
                timeouts: Default::default(),
            },
            events: vec![
                (Stat::Rx, 1000),
                (Stat::TxRoute, 600),
                (Stat::DropNoReal, 2),
            ],
            health: vec![
                HealthState {
                    service: WEB,
                    real: Ipv4Addr::new(192, 168, 1, 3).into(),
                    port: 8080,
                    up: true,
                },
                HealthState {
                    service: WEB,
                    real: Ipv4Addr::new(192, 168, 1, 2).into(),
                    port: 80,
                    up: true,
                },
                // No longer configured: left out.
                HealthState {
                    service: WEB,
                    real: Ipv4Addr::new(192, 168, 1, 9).into(),
                    port: 80,
                    up: true,
                },
                // A later verdict on the same real server wins.
                HealthState {
                    service: WEB,
                    real: Ipv4Addr::new(192, 168, 1, 3).into(),
                    port: 8080,
                    up: false,
                },
            ],
            build: BuildInfo {
                version: "0.1.0".to_owned(),
                git: Some("0123abc".to_owned()),
            },
        }
    }

    const EXPECTED: &str = r#"# HELP lb_build_info Build of the running lbd: always 1, described by its labels.
# TYPE lb_build_info gauge
lb_build_info{version="0.1.0",git="0123abc"} 1
# HELP lb_datapath_events_total Data-path events by reason (packets seen, passed to the kernel, forwarded, dropped), summed over CPUs.
# TYPE lb_datapath_events_total counter
lb_datapath_events_total{event="rx"} 1000
lb_datapath_events_total{event="tx_route"} 600
lb_datapath_events_total{event="drop_no_real"} 2
# HELP lb_service_connections_total Connections scheduled for the virtual service.
# TYPE lb_service_connections_total counter
lb_service_connections_total{protocol="tcp",vip="10.0.0.1",port="80"} 10
lb_service_connections_total{protocol="udp",vip="10.0.0.1",port="53"} 0
# HELP lb_service_packets_total Packets of the virtual service: in from clients, out from real servers (seen only when replies pass through the director, as with NAT).
# TYPE lb_service_packets_total counter
lb_service_packets_total{protocol="tcp",vip="10.0.0.1",port="80",direction="in"} 100
lb_service_packets_total{protocol="tcp",vip="10.0.0.1",port="80",direction="out"} 38
lb_service_packets_total{protocol="udp",vip="10.0.0.1",port="53",direction="in"} 0
lb_service_packets_total{protocol="udp",vip="10.0.0.1",port="53",direction="out"} 0
# HELP lb_service_bytes_total Bytes of the virtual service: in from clients, out from real servers (seen only when replies pass through the director, as with NAT).
# TYPE lb_service_bytes_total counter
lb_service_bytes_total{protocol="tcp",vip="10.0.0.1",port="80",direction="in"} 6000
lb_service_bytes_total{protocol="tcp",vip="10.0.0.1",port="80",direction="out"} 91000
lb_service_bytes_total{protocol="udp",vip="10.0.0.1",port="53",direction="in"} 0
lb_service_bytes_total{protocol="udp",vip="10.0.0.1",port="53",direction="out"} 0
# HELP lb_real_connections_total Connections scheduled to the real server.
# TYPE lb_real_connections_total counter
lb_real_connections_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route"} 6
lb_real_connections_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq"} 4
lb_real_connections_total{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel"} 0
# HELP lb_real_packets_total Packets of the real server's connections, by direction (as for the service).
# TYPE lb_real_packets_total counter
lb_real_packets_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route",direction="in"} 60
lb_real_packets_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route",direction="out"} 0
lb_real_packets_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq",direction="in"} 40
lb_real_packets_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq",direction="out"} 38
lb_real_packets_total{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel",direction="in"} 0
lb_real_packets_total{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel",direction="out"} 0
# HELP lb_real_bytes_total Bytes of the real server's connections, by direction (as for the service).
# TYPE lb_real_bytes_total counter
lb_real_bytes_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route",direction="in"} 3600
lb_real_bytes_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route",direction="out"} 0
lb_real_bytes_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq",direction="in"} 2400
lb_real_bytes_total{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq",direction="out"} 91000
lb_real_bytes_total{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel",direction="in"} 0
lb_real_bytes_total{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel",direction="out"} 0
# HELP lb_real_active_connections Active connections to the real server (ipvsadm ActiveConn).
# TYPE lb_real_active_connections gauge
lb_real_active_connections{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route"} 3
lb_real_active_connections{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq"} 2
lb_real_active_connections{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel"} 0
# HELP lb_real_inactive_connections Inactive connections to the real server (ipvsadm InActConn).
# TYPE lb_real_inactive_connections gauge
lb_real_inactive_connections{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route"} 1
lb_real_inactive_connections{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq"} 0
lb_real_inactive_connections{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel"} 0
# HELP lb_real_persistent_connections Persistence templates pointing at the real server (ipvsadm PersistConn).
# TYPE lb_real_persistent_connections gauge
lb_real_persistent_connections{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route"} 0
lb_real_persistent_connections{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq"} 4
lb_real_persistent_connections{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel"} 0
# HELP lb_real_weight Configured weight of the real server (0: quiescent, no new connections).
# TYPE lb_real_weight gauge
lb_real_weight{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route"} 1
lb_real_weight{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq"} 2
lb_real_weight{protocol="udp",vip="10.0.0.1",port="53",real="192.168.1.4",real_port="53",forward="tunnel"} 0
# HELP lb_real_up Health-check verdict on the real server: 1 up, 0 down (health-checked real servers only).
# TYPE lb_real_up gauge
lb_real_up{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.2",real_port="80",forward="route"} 1
lb_real_up{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.3",real_port="8080",forward="masq"} 0
lb_real_up{protocol="tcp",vip="10.0.0.1",port="80",real="192.168.1.9",real_port="80"} 1
# HELP node_ipvs_connections_total The total number of connections made.
# TYPE node_ipvs_connections_total counter
node_ipvs_connections_total 10
# HELP node_ipvs_incoming_packets_total The total number of incoming packets.
# TYPE node_ipvs_incoming_packets_total counter
node_ipvs_incoming_packets_total 100
# HELP node_ipvs_outgoing_packets_total The total number of outgoing packets.
# TYPE node_ipvs_outgoing_packets_total counter
node_ipvs_outgoing_packets_total 38
# HELP node_ipvs_incoming_bytes_total The total amount of incoming data.
# TYPE node_ipvs_incoming_bytes_total counter
node_ipvs_incoming_bytes_total 6000
# HELP node_ipvs_outgoing_bytes_total The total amount of outgoing data.
# TYPE node_ipvs_outgoing_bytes_total counter
node_ipvs_outgoing_bytes_total 91000
# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.
# TYPE node_ipvs_backend_connections_active gauge
node_ipvs_backend_connections_active{local_address="10.0.0.1",local_port="80",remote_address="192.168.1.2",remote_port="80",proto="TCP",local_mark=""} 3
node_ipvs_backend_connections_active{local_address="10.0.0.1",local_port="80",remote_address="192.168.1.3",remote_port="8080",proto="TCP",local_mark=""} 2
node_ipvs_backend_connections_active{local_address="10.0.0.1",local_port="53",remote_address="192.168.1.4",remote_port="53",proto="UDP",local_mark=""} 0
# HELP node_ipvs_backend_connections_inactive The current inactive connections by local and remote address.
# TYPE node_ipvs_backend_connections_inactive gauge
node_ipvs_backend_connections_inactive{local_address="10.0.0.1",local_port="80",remote_address="192.168.1.2",remote_port="80",proto="TCP",local_mark=""} 1
node_ipvs_backend_connections_inactive{local_address="10.0.0.1",local_port="80",remote_address="192.168.1.3",remote_port="8080",proto="TCP",local_mark=""} 0
node_ipvs_backend_connections_inactive{local_address="10.0.0.1",local_port="53",remote_address="192.168.1.4",remote_port="53",proto="UDP",local_mark=""} 0
# HELP node_ipvs_backend_weight The current backend weight by local and remote address.
# TYPE node_ipvs_backend_weight gauge
node_ipvs_backend_weight{local_address="10.0.0.1",local_port="80",remote_address="192.168.1.2",remote_port="80",proto="TCP",local_mark=""} 1
node_ipvs_backend_weight{local_address="10.0.0.1",local_port="80",remote_address="192.168.1.3",remote_port="8080",proto="TCP",local_mark=""} 2
node_ipvs_backend_weight{local_address="10.0.0.1",local_port="53",remote_address="192.168.1.4",remote_port="53",proto="UDP",local_mark=""} 0
"#;

    #[test]
    fn renders_sample_exactly() {
        let text = render(&sample());
        if text != EXPECTED {
            for (i, (got, want)) in text.lines().zip(EXPECTED.lines()).enumerate() {
                assert_eq!(got, want, "line {}", i + 1);
            }
            assert_eq!(text, EXPECTED);
        }
    }

    #[test]
    fn ipv6_addresses_are_labels_without_brackets() {
        let vip: IpAddr = "2001:db8::1".parse().unwrap();
        let rs: IpAddr = "2001:db8::12".parse().unwrap();
        let web6 = ServiceAddr {
            protocol: Protocol::Tcp,
            addr: vip,
            port: 80,
        };
        let mut r = real([0; 4], 80, Forward::Route, 1);
        r.spec.addr = rs;
        r.stats = stats(1, 2, 0, 120, 0);
        let input = MetricsInput {
            snapshot: Snapshot {
                conn_table_size: 4096,
                services: vec![service(
                    web6,
                    Scheduler::Rr,
                    stats(1, 2, 0, 120, 0),
                    vec![r],
                )],
                timeouts: Default::default(),
            },
            health: vec![HealthState {
                service: web6,
                real: rs,
                port: 80,
                up: true,
            }],
            ..Default::default()
        };
        let text = render(&input);
        assert!(
            text.contains(
                "lb_service_connections_total{protocol=\"tcp\",vip=\"2001:db8::1\",port=\"80\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "lb_real_up{protocol=\"tcp\",vip=\"2001:db8::1\",port=\"80\",real=\"2001:db8::12\",\
                 real_port=\"80\",forward=\"route\"} 1\n"
            ),
            "{text}"
        );
        // node_exporter writes IPv6 addresses as Go's net.IP does: RFC 5952, no brackets.
        assert!(
            text.contains(
                "node_ipvs_backend_weight{local_address=\"2001:db8::1\",local_port=\"80\",\
                 remote_address=\"2001:db8::12\",remote_port=\"80\",proto=\"TCP\",\
                 local_mark=\"\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\nnode_ipvs_incoming_bytes_total 120\n"),
            "{text}"
        );
    }

    #[test]
    fn node_ipvs_addresses_are_written_as_go_writes_them() {
        let ip = |s: &str| go_ip_string(s.parse().unwrap());
        assert_eq!(ip("10.0.0.1"), "10.0.0.1");
        assert_eq!(ip("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(ip("2001:db8::"), "2001:db8::");
        assert_eq!(ip("::1"), "::1");
        // Go's To4() sees an IPv4-mapped address as the IPv4 address.
        assert_eq!(ip("::ffff:192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn empty_input_has_build_info_and_node_ipvs_totals() {
        let input = MetricsInput {
            build: BuildInfo {
                version: "1.2.3".to_owned(),
                git: None,
            },
            ..Default::default()
        };
        assert_eq!(
            render(&input),
            "# HELP lb_build_info Build of the running lbd: always 1, described by its labels.\n\
             # TYPE lb_build_info gauge\n\
             lb_build_info{version=\"1.2.3\"} 1\n\
             # HELP node_ipvs_connections_total The total number of connections made.\n\
             # TYPE node_ipvs_connections_total counter\n\
             node_ipvs_connections_total 0\n\
             # HELP node_ipvs_incoming_packets_total The total number of incoming packets.\n\
             # TYPE node_ipvs_incoming_packets_total counter\n\
             node_ipvs_incoming_packets_total 0\n\
             # HELP node_ipvs_outgoing_packets_total The total number of outgoing packets.\n\
             # TYPE node_ipvs_outgoing_packets_total counter\n\
             node_ipvs_outgoing_packets_total 0\n\
             # HELP node_ipvs_incoming_bytes_total The total amount of incoming data.\n\
             # TYPE node_ipvs_incoming_bytes_total counter\n\
             node_ipvs_incoming_bytes_total 0\n\
             # HELP node_ipvs_outgoing_bytes_total The total amount of outgoing data.\n\
             # TYPE node_ipvs_outgoing_bytes_total counter\n\
             node_ipvs_outgoing_bytes_total 0\n"
        );
    }

    #[test]
    fn escapes_label_values() {
        let input = MetricsInput {
            build: BuildInfo {
                version: "1.0 \"beta\"\n".to_owned(),
                git: Some(r"C:\tree".to_owned()),
            },
            ..Default::default()
        };
        let text = render(&input);
        assert!(
            text.contains(r#"lb_build_info{version="1.0 \"beta\"\n",git="C:\\tree"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn build_info_current_is_this_crate() {
        assert_eq!(BuildInfo::current().version, env!("CARGO_PKG_VERSION"));
    }

    // A minimal reader of the text format, strict where our output must be.

    type Series = (String, Vec<(String, String)>);

    fn is_metric_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(s: &str) -> bool {
        let mut chars = s.chars();
        !s.starts_with("__")
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// `name{a="x",b="y"} value` → (name, labels, value).
    fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
        let name_end = line.find(['{', ' ']).expect("name ends");
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad name in {line:?}");
        let mut labels = Vec::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            loop {
                let start = chars.peek().expect("label").0;
                let (eq, _) = chars.find(|&(_, c)| c == '=').expect("=");
                let label = &after[start..eq];
                assert!(is_label_name(label), "bad label name {label:?} in {line:?}");
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("closing quote").1 {
                        '"' => break,
                        '\\' => match chars.next().expect("escape").1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => panic!("bad escape \\{c} in {line:?}"),
                        },
                        '\n' => panic!("raw line feed in {line:?}"),
                        c => value.push(c),
                    }
                }
                labels.push((label.to_owned(), value));
                match chars.next().expect("after label").1 {
                    ',' => continue,
                    '}' => {
                        let end = chars.peek().map_or(after.len(), |&(i, _)| i);
                        rest = &after[end..];
                        break;
                    }
                    c => panic!("unexpected {c:?} in {line:?}"),
                }
            }
        }
        let value = rest.strip_prefix(' ').expect("space before value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        (name.to_owned(), labels, value)
    }

    /// Checks the whole exposition and returns its samples.
    fn parse_exposition(text: &str) -> Vec<(Series, f64)> {
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "last line must end"
        );
        let mut help = HashSet::new();
        let mut types = HashMap::new();
        let mut closed = HashSet::new();
        let mut current: Option<String> = None;
        let mut seen = HashSet::new();
        let mut samples = Vec::new();
        let mut enter = |name: &str, current: &mut Option<String>| {
            if current.as_deref() != Some(name) {
                if let Some(previous) = current.take() {
                    closed.insert(previous);
                }
                assert!(!closed.contains(name), "family {name} is split");
                *current = Some(name.to_owned());
            }
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, _) = rest.split_once(' ').expect("HELP text");
                assert!(is_metric_name(name));
                enter(name, &mut current);
                assert!(help.insert(name.to_owned()), "second HELP for {name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE kind");
                assert!(is_metric_name(name));
                assert!(matches!(kind, "counter" | "gauge"), "{kind}");
                enter(name, &mut current);
                assert!(
                    !seen.iter().any(|(n, _): &Series| n == name),
                    "TYPE after samples"
                );
                assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
            } else {
                assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
                let (name, labels, value) = parse_sample(line);
                enter(&name, &mut current);
                assert!(help.contains(&name), "{name} has no HELP");
                let kind = types
                    .get(&name)
                    .unwrap_or_else(|| panic!("{name} has no TYPE"));
                assert_eq!(
                    kind == "counter",
                    name.ends_with("_total"),
                    "{name} is a {kind}"
                );
                let mut names: Vec<_> = labels.iter().map(|(l, _)| l.clone()).collect();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), labels.len(), "repeated label in {line:?}");
                let mut key = labels.clone();
                key.sort();
                assert!(
                    seen.insert((name.clone(), key)),
                    "duplicate series {line:?}"
                );
                samples.push(((name, labels), value));
            }
        }
        samples
    }

    #[test]
    fn parses_back() {
        let mut input = sample();
        input.build.version = "weird \"version\" \\ with\nnewline".to_owned();
        input.events = Stat::ALL.iter().map(|&s| (s, s as u64 * 7)).collect();
        let samples = parse_exposition(&render(&input));

        let value = |name: &str, labels: &[(&str, &str)]| {
            let labels: Vec<_> = labels
                .iter()
                .map(|(l, v)| (l.to_string(), v.to_string()))
                .collect();
            samples
                .iter()
                .find(|((n, l), _)| n == name && *l == labels)
                .unwrap_or_else(|| panic!("no {name} {labels:?}"))
                .1
        };
        assert_eq!(
            value(
                "lb_build_info",
                &[
                    ("version", input.build.version.as_str()),
                    ("git", "0123abc")
                ]
            ),
            1.0
        );
        for stat in Stat::ALL {
            assert_eq!(
                value("lb_datapath_events_total", &[("event", stat.name())]),
                (stat as u64 * 7) as f64
            );
        }
        let masq = [
            ("protocol", "tcp"),
            ("vip", "10.0.0.1"),
            ("port", "80"),
            ("real", "192.168.1.3"),
            ("real_port", "8080"),
            ("forward", "masq"),
        ];
        assert_eq!(value("lb_real_persistent_connections", &masq), 4.0);
        assert_eq!(value("lb_real_up", &masq), 0.0);
        let mut out = masq.to_vec();
        out.push(("direction", "out"));
        assert_eq!(value("lb_real_bytes_total", &out), 91000.0);
        assert_eq!(
            value(
                "node_ipvs_backend_connections_active",
                &[
                    ("local_address", "10.0.0.1"),
                    ("local_port", "80"),
                    ("remote_address", "192.168.1.3"),
                    ("remote_port", "8080"),
                    ("proto", "TCP"),
                    ("local_mark", ""),
                ]
            ),
            2.0
        );
        assert_eq!(value("node_ipvs_outgoing_bytes_total", &[]), 91000.0);
        // One series per family and service/real, plus build, events and three health verdicts
        // (one for a real server out of the table), then node_exporter's five totals and three
        // gauges per real server.
        assert_eq!(
            samples.len(),
            1 + Stat::ALL.len() + 2 * 5 + 3 * 9 + 3 + 5 + 3 * 3
        );
    }

    #[test]
    fn parser_rejects_what_it_must() {
        let bad = [
            "lb_x_total 1\n", // no HELP/TYPE
            "# HELP lb_x_total x\n# TYPE lb_x_total counter\nlb_x_total{a=\"1\"} 1\nlb_x_total{a=\"1\"} 2\n",
            "# HELP lb_x x\n# TYPE lb_x counter\nlb_x 1\n", // counter without _total
            "# HELP lb_x x\n# TYPE lb_x gauge\nlb_x{a=\"\\t\"} 1\n", // bad escape
        ];
        for text in bad {
            assert!(
                std::panic::catch_unwind(|| parse_exposition(text)).is_err(),
                "accepted {text:?}"
            );
        }
    }

    // The server, over real TCP connections on 127.0.0.1.

    async fn start(limits: ServerLimits, source: Arc<Source>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_with(listener, source, limits));
        addr
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
            .await
            .expect("the server closes after its reply")
            .unwrap();
        String::from_utf8(reply).unwrap()
    }

    /// Splits a reply into status line, headers (lower-cased names) and body.
    fn split(reply: &str) -> (&str, HashMap<String, &str>, &str) {
        let (head, body) = reply.split_once("\r\n\r\n").expect("a head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap();
        let headers = lines
            .map(|l| {
                let (name, value) = l.split_once(": ").unwrap();
                (name.to_ascii_lowercase(), value)
            })
            .collect();
        (status, headers, body)
    }

    #[tokio::test]
    async fn serves_metrics() {
        let addr = start(ServerLimits::default(), Arc::new(sample)).await;
        let expected = render(&sample());

        let reply = exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: lb\r\nAccept: */*\r\n\r\n",
        )
        .await;
        let (status, headers, body) = split(&reply);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(
            headers["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(headers["content-length"], expected.len().to_string());
        assert_eq!(headers["connection"], "close");
        assert_eq!(body, expected);

        let reply = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert_eq!(split(&reply).2, expected);

        let reply = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        let (status, headers, body) = split(&reply);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(headers["content-length"], expected.len().to_string());
        assert_eq!(body, "");
    }

    #[tokio::test]
    async fn answers_errors() {
        let addr = start(ServerLimits::default(), Arc::new(sample)).await;
        let status = |reply: &str| reply.lines().next().unwrap().to_owned();

        for path in ["/", "/metric", "/metrics/x", "/favicon.ico"] {
            let request = format!("GET {path} HTTP/1.1\r\n\r\n");
            let reply = exchange(addr, request.as_bytes()).await;
            assert_eq!(status(&reply), "HTTP/1.1 404 Not Found", "{path}");
            assert_eq!(split(&reply).2, "404 Not Found\n");
        }
        let reply = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        )
        .await;
        assert_eq!(status(&reply), "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(split(&reply).1["allow"], "GET, HEAD");
        let reply = exchange(addr, b"hello\r\n\r\n").await;
        assert_eq!(status(&reply), "HTTP/1.1 400 Bad Request");
        // Closed mid-head.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        // hyper answers nothing to a head cut short, and closes.
        assert_eq!(reply, "");
        // Connected and gone without a word: nothing to answer, and the server carries on.
        drop(TcpStream::connect(addr).await.unwrap());
        let reply = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(status(&reply), "HTTP/1.1 200 OK");
    }

    #[tokio::test]
    async fn refuses_oversized_heads() {
        let addr = start(ServerLimits::default(), Arc::new(sample)).await;
        let mut request = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
        request.resize(20_000, b'a');
        let reply = exchange(addr, &request).await;
        assert_eq!(
            reply.lines().next(),
            Some("HTTP/1.1 431 Request Header Fields Too Large")
        );
        // Right at the limit is still fine.
        let mut request = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
        request.resize(ServerLimits::default().max_head - 4, b'a');
        request.extend_from_slice(b"\r\n\r\n");
        let reply = exchange(addr, &request).await;
        assert_eq!(reply.lines().next(), Some("HTTP/1.1 200 OK"));
    }

    #[tokio::test]
    async fn reads_a_head_in_pieces() {
        let addr = start(ServerLimits::default(), Arc::new(sample)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        for &byte in b"GET /metrics HTTP/1.1\r\nHost: lb\r\n\r\n" {
            stream.write_all(&[byte]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert_eq!(split(&reply).2, render(&sample()));
    }

    #[tokio::test]
    async fn times_out_slow_clients_and_caps_connections() {
        let limits = ServerLimits {
            request_timeout: Duration::from_millis(300),
            max_connections: 1,
            ..ServerLimits::default()
        };
        let addr = start(limits, Arc::new(sample)).await;
        let begin = Instant::now();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        // Let the server pick the slow one first.
        tokio::time::sleep(Duration::from_millis(50)).await;

        // The only slot is taken: this one waits until the slow client has timed out.
        let reply = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(reply.lines().next(), Some("HTTP/1.1 200 OK"));
        assert!(
            begin.elapsed() >= Duration::from_millis(300),
            "{:?}",
            begin.elapsed()
        );

        // hyper closes a connection whose head did not come in time, without a reply.
        let mut reply = String::new();
        slow.read_to_string(&mut reply).await.unwrap();
        assert_eq!(reply, "");
    }

    #[tokio::test]
    async fn a_failing_source_is_a_500() {
        let addr = start(
            ServerLimits::default(),
            Arc::new(|| -> MetricsInput { panic!("source failed (expected by this test)") }),
        )
        .await;
        let reply = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(
            reply.lines().next(),
            Some("HTTP/1.1 500 Internal Server Error")
        );
    }

    #[tokio::test]
    async fn serve_takes_a_closure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, MetricsInput::default));
        let reply = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            reply.contains("\nlb_build_info{version=\"\"} 1\n")
                && reply.ends_with("\nnode_ipvs_outgoing_bytes_total 0\n"),
            "{reply}"
        );
        server.abort();
    }

    /// `docs/grafana-lb.json` queries only what lbd exports: every metric name in its PromQL
    /// (panels and template variables) is a family [`render`] writes, and every label it
    /// groups or matches by is one of those families' labels.
    mod dashboard {
        use std::collections::{BTreeMap, BTreeSet};

        use super::*;

        const DASHBOARD: &str = include_str!("../../docs/grafana-lb.json");

        /// What one PromQL expression names: metric names and label names.
        #[derive(Debug, Default, PartialEq, Eq)]
        struct Names {
            metrics: BTreeSet<String>,
            labels: BTreeSet<String>,
        }

        /// A small PromQL scanner, enough for the dashboard's expressions (a full PromQL parser
        /// crate would be a dependency for one test): string literals and range selectors (`[5m]`, `[$__rate_interval]`) are skipped; inside `{...}` the
        /// identifiers are label names; after `by`/`without`/`on`/`ignoring`/`group_left`/
        /// `group_right` the parenthesised identifiers are label names; an identifier followed
        /// by `(` is a function; keywords and numbers are skipped; every other identifier is a
        /// metric name.
        fn scan(expr: &str) -> Names {
            // Binary operators, modifiers, and aggregation operators (which may take their
            // `by (...)` before the parenthesis).
            const KEYWORDS: [&str; 18] = [
                "and",
                "or",
                "unless",
                "bool",
                "offset",
                "sum",
                "min",
                "max",
                "avg",
                "group",
                "stddev",
                "stdvar",
                "count",
                "count_values",
                "bottomk",
                "topk",
                "quantile",
                "limitk",
            ];
            const GROUPING: [&str; 6] = [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ];
            let chars: Vec<char> = expr.chars().collect();
            let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
            let mut names = Names::default();
            let (mut i, mut in_braces, mut label_list) = (0, false, false);
            while i < chars.len() {
                let c = chars[i];
                match c {
                    '"' | '\'' | '`' => {
                        i += 1;
                        while i < chars.len() && chars[i] != c {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                        i += 1;
                    }
                    '[' => {
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        i += 1;
                    }
                    '{' => (in_braces, i) = (true, i + 1),
                    '}' => (in_braces, i) = (false, i + 1),
                    ')' => (label_list, i) = (false, i + 1),
                    c if c.is_ascii_digit() || c == '.' => {
                        while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                            i += 1;
                        }
                    }
                    c if ident(c) => {
                        let start = i;
                        while i < chars.len() && ident(chars[i]) {
                            i += 1;
                        }
                        let word: String = chars[start..i].iter().collect();
                        let next = chars[i..].iter().find(|c| !c.is_whitespace());
                        if in_braces || label_list {
                            names.labels.insert(word);
                        } else if GROUPING.contains(&word.as_str()) {
                            label_list = next == Some(&'(');
                        } else if next == Some(&'(') || KEYWORDS.contains(&word.as_str()) {
                            // A function or a keyword.
                        } else {
                            names.metrics.insert(word);
                        }
                    }
                    _ => i += 1,
                }
            }
            names
        }

        #[test]
        fn scanner_tells_metrics_from_labels_and_functions() {
            let names = scan(
                r#"8 * sum by (vip, direction) (rate(lb_a_total{vip=~"$vip", x!="a b"}[$__rate_interval])) or vector(0) / on (port) group_left lb_b"#,
            );
            assert_eq!(
                names.metrics,
                BTreeSet::from(["lb_a_total".to_owned(), "lb_b".to_owned()])
            );
            assert_eq!(
                names.labels,
                ["vip", "direction", "x", "port"]
                    .map(str::to_owned)
                    .into_iter()
                    .collect()
            );
        }

        /// Every expression of the dashboard: panel targets, then template-variable queries
        /// (`label_values(METRIC, LABEL)` becomes `METRIC{LABEL=""}` for the scanner).
        fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
            fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
                match value {
                    serde_json::Value::Object(map) => {
                        for (key, v) in map {
                            match (key.as_str(), v) {
                                ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                                _ => walk(v, out),
                            }
                        }
                    }
                    serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
                    _ => {}
                }
            }
            let mut out = Vec::new();
            walk(&dashboard["panels"], &mut out);
            for variable in dashboard["templating"]["list"].as_array().unwrap() {
                if variable["type"] != "query" {
                    continue;
                }
                let query = variable["query"]["query"].as_str().unwrap();
                let args = query
                    .strip_prefix("label_values(")
                    .and_then(|q| q.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("unexpected variable query {query}"));
                let (metric, label) = args.split_once(',').unwrap();
                out.push(format!("{}{{{}=\"\"}}", metric.trim(), label.trim()));
            }
            out
        }

        #[test]
        fn dashboard_queries_only_exported_metrics() {
            let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
            let mut input = sample();
            input.events = Stat::ALL.iter().map(|&s| (s, 1)).collect();
            let mut exported: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for ((name, labels), _) in parse_exposition(&render(&input)) {
                exported
                    .entry(name)
                    .or_default()
                    .extend(labels.into_iter().map(|(l, _)| l));
            }
            let expressions = expressions(&dashboard);
            assert!(expressions.len() >= 10, "{expressions:?}");
            let mut used = BTreeSet::new();
            for expr in &expressions {
                let names = scan(expr);
                assert!(!names.metrics.is_empty(), "no metric in {expr}");
                let mut labels = BTreeSet::new();
                for metric in &names.metrics {
                    let family = exported
                        .get(metric)
                        .unwrap_or_else(|| panic!("{metric} (in {expr}) is not exported"));
                    labels.extend(family.iter().cloned());
                    used.insert(metric.clone());
                }
                for label in &names.labels {
                    assert!(
                        labels.contains(label),
                        "label {label} (in {expr}) is not on {:?}",
                        names.metrics
                    );
                }
            }
            // The dashboard covers lb's own families (node_exporter's have dashboards of
            // their own).
            for family in exported.keys().filter(|n| n.starts_with("lb_")) {
                assert!(used.contains(family), "{family} is on no panel");
            }
        }
    }
}
