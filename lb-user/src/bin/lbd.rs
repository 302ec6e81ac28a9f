//! `lbd`: loads lb's XDP program onto the director's interfaces, owns its maps, and serves
//! `lbadm` on a control socket. Configuration survives restarts through the state file.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Parser;
use lb_user::{
    bird::{Announcer, ServiceView},
    cli::lbd::{Args, Sub},
    control::{
        RequestBody, ResponseBody,
        server::{Access, AnnounceHook, ControlSocket, Hooks, ReloadHook, group_id},
    },
    dataplane::{AttachMode, Dataplane, Decap, OnExit},
    director::Director,
    logging,
    managed::Managed,
    metrics,
    model::{Command, ServiceAddr},
    netlink,
    pinning::PinDir,
    resolution::{RESOLUTION_WAIT, wait_for_resolution},
    service_manager,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

fn main() -> std::process::ExitCode {
    match lbd_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Logged once, with its causes; no backtrace for an operator's mistake.
            error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn lbd_main() -> anyhow::Result<()> {
    let args = Args::parse();
    logging::init(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.command {
        Some(Sub::Decap {
            ifaces,
            gue_ports,
            xdp_mode,
        }) => runtime.block_on(decap(ifaces, gue_ports, xdp_mode)),
        Some(Sub::Reload { socket }) => {
            match lb_user::control::client::request(&socket, RequestBody::Reload)? {
                ResponseBody::Done => {
                    info!("configuration reloaded");
                    Ok(())
                }
                ResponseBody::Error { message } => Err(anyhow::anyhow!("{message}")),
                other => Err(anyhow::anyhow!("unexpected answer from lbd: {other:?}")),
            }
        }
        Some(Sub::Drain { socket }) => announcements(&socket, RequestBody::Drain { drained: true }),
        Some(Sub::Undrain { socket }) => {
            announcements(&socket, RequestBody::Drain { drained: false })
        }
        Some(Sub::Status { socket }) => announcements(&socket, RequestBody::Announcements),
        None => runtime.block_on(run(args)),
    }
}

/// `lbd drain`, `undrain`, `status`: asks the running lbd and prints what it announces.
fn announcements(socket: &std::path::Path, body: RequestBody) -> anyhow::Result<()> {
    match lb_user::control::client::request(socket, body)? {
        ResponseBody::Announcements { status } => {
            print!("{status}");
            Ok(())
        }
        ResponseBody::Error { message } => Err(anyhow::anyhow!("{message}")),
        other => Err(anyhow::anyhow!("unexpected answer from lbd: {other:?}")),
    }
}

async fn decap(ifaces: Vec<String>, gue_ports: Vec<u16>, mode: AttachMode) -> anyhow::Result<()> {
    if gue_ports.len() > lb_common::DECAP_GUE_PORTS_MAX as usize {
        anyhow::bail!(
            "at most {} --gue-port options",
            lb_common::DECAP_GUE_PORTS_MAX
        );
    }
    let mut attached = Vec::new();
    for name in &ifaces {
        netlink::link_by_name(name)?;
        let (decap, mode) = Decap::attach(name, mode, &gue_ports)
            .with_context(|| format!("attaching the tunnel decapsulator to {name}"))?;
        info!(iface = %name, mode, ?gue_ports, "IPIP, GRE and GUE decapsulation attached");
        attached.push(decap);
    }
    service_manager::ready("tunnel decapsulation attached");
    wait_for_signal().await?;
    service_manager::stopping();
    drop(attached);
    info!("tunnel decapsulation detached");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = sigterm.recv() => info!("SIGTERM: shutting down"),
        _ = sigint.recv() => info!("SIGINT: shutting down"),
    }
    Ok(())
}

/// The signals lbd answers, taken before anything slow: a SIGHUP or SIGTERM during start-up
/// waits for lbd to be up instead of killing it with the default action.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let signals = Signals::install()?;
    raise_fd_limit();
    let pins = PinDir::new(&args.bpffs);
    if args.cleanup {
        // Not under a running lbd's feet. (The lock creates the directory if it was not
        // there: that alone is not something pinned.)
        let was_there = pins.base().exists();
        let _lock = pins.lock()?;
        if Dataplane::cleanup(&pins)? && was_there {
            info!(path = %args.bpffs.display(), "removed the pinned data path (programs detached, maps freed)");
        } else {
            info!(path = %args.bpffs.display(), "nothing pinned there");
        }
        return Ok(());
    }
    // Check everything the user gave us before touching the system: interfaces,
    // keepalived.conf, the state file, the metrics address, then the pin directory (taken for
    // this lbd alone) and the control socket. Nothing is loaded or attached before.
    if args.ifaces.is_empty() {
        bail!(
            "give at least one --iface to attach to (or `lbd decap --iface IF` on a real server)"
        );
    }
    let mut links = Vec::new();
    for name in &args.ifaces {
        let link = netlink::link_by_name(name)?;
        if link.mac == [0; 6] {
            bail!("{name} has no Ethernet address; lb forwards Ethernet frames");
        }
        if link.kind.as_deref() == Some("veth") && args.xdp_mode != AttachMode::Skb {
            warn!(
                iface = %name,
                "{name} is a veth: frames sent back with native XDP_TX are only delivered if \
                 its peer has an XDP program attached (any, even one that passes everything); \
                 otherwise use --xdp-mode skb"
            );
        }
        links.push(link);
    }
    if args.conn_table_size == 0 {
        bail!("--conn-table-size must be at least 1");
    }
    let managed = match &args.config {
        Some(path) => Some(Managed::load(path).map_err(|e| {
            anyhow::anyhow!(
                "{}: invalid configuration, nothing applied:\n{e}",
                path.display()
            )
        })?),
        None => None,
    };
    lb_user::state::load(&args.state).context("reading the state file")?;
    let announcer = match &args.bird_vips {
        Some(file) => {
            let drain_state = args
                .drain_state
                .clone()
                .unwrap_or_else(|| args.state.with_file_name("drain.json"));
            Some(
                Announcer::new(
                    file.clone(),
                    args.birdc.clone(),
                    args.birdc_socket.clone(),
                    drain_state,
                )
                .context("reading the drain state")?,
            )
        }
        None => None,
    };
    let metrics_listener = match args.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics endpoint {addr}"))?,
        ),
        None => None,
    };
    let _lock = pins.lock()?;
    let adopted = pins.check()?;
    let access = Access {
        group: args
            .socket_group
            .as_deref()
            .map(group_id)
            .transpose()
            .context("--socket-group")?,
    };
    let socket = ControlSocket::bind(&args.socket, access)
        .with_context(|| format!("control socket {}", args.socket.display()))?;

    let started = start(&args, pins.clone(), &links, managed);
    let (director, reload, stopping, quorum) = match started {
        Ok(started) => started,
        Err(e) => {
            // Undo: what this lbd pinned goes (its links with it, so nothing stays attached);
            // what a previous lbd left running (`--on-exit keep`) stays as it was.
            if adopted {
                warn!("start-up failed: the data path the previous lbd left keeps running");
            } else if let Err(undo) = Dataplane::cleanup(&pins) {
                warn!("start-up failed, and removing what it pinned failed too: {undo}");
            }
            return Err(e);
        }
    };
    info!(socket = %socket.path().display(), state = %args.state.display(), "lbd ready");
    service_manager::ready("serving");
    let announcer = announcer.map(|a| Arc::new(Mutex::new(a)));
    let hooks = Hooks {
        reload,
        announce: announcer
            .as_ref()
            .map(|a| announce_hook(Arc::clone(a), Arc::clone(&director), quorum.clone())),
    };
    serve(
        args,
        signals,
        socket,
        metrics_listener,
        director,
        hooks,
        Upkeep {
            stopping,
            announcing: announcer.map(|a| (a, quorum)),
        },
    )
    .await
}

/// What `serve` keeps up besides the sockets: keepalived's `omega` scripts for the way out,
/// and the VIPs announced through BIRD with the quorum states they depend on.
struct Upkeep {
    stopping: Option<StopHook>,
    announcing: Option<(Arc<Mutex<Announcer>>, Option<QuorumView>)>,
}

type Started = (
    Arc<Mutex<Director>>,
    Option<ReloadHook>,
    Option<StopHook>,
    Option<QuorumView>,
);

/// keepalived's quorum state of each virtual server of `--config`.
type QuorumView = Arc<dyn Fn() -> BTreeMap<ServiceAddr, bool> + Send + Sync>;

/// What the announcer decides from: the director's services, their live weights and quorums.
fn service_views(director: &Mutex<Director>, quorum: Option<&QuorumView>) -> Vec<ServiceView> {
    // The quorum first, then the director: never both locks at once.
    let quorum = quorum.map(|q| q()).unwrap_or_default();
    let d = director.lock().unwrap_or_else(|p| p.into_inner());
    ServiceView::from_config(d.config(), &quorum)
}

/// `lbd drain`, `undrain` and `status`.
fn announce_hook(
    announcer: Arc<Mutex<Announcer>>,
    director: Arc<Mutex<Director>>,
    quorum: Option<QuorumView>,
) -> AnnounceHook {
    Arc::new(move |drain| {
        let views = service_views(&director, quorum.as_ref());
        let mut a = announcer.lock().unwrap_or_else(|p| p.into_inner());
        match drain {
            Some(drained) => a
                .set_drained(drained, &views)
                .map_err(|e| format!("saving the drain state: {e}"))?,
            None => a.sync(&views),
        }
        Ok(a.status())
    })
}

/// Loads the data path, restores the configuration, puts keepalived.conf's services in place
/// and attaches: everything of a start-up that touches the system, in that order (the first
/// packets find their services).
fn start(
    args: &Args,
    pins: PinDir,
    links: &[netlink::Link],
    managed: Option<Managed>,
) -> anyhow::Result<Started> {
    let dataplane =
        Dataplane::load(args.conn_table_size, pins).context("loading the XDP program")?;
    let mut director = Director::new(dataplane, links, args.state.clone(), args.conn_table_size)
        .context("restoring the configuration")?;
    if let Some(budget) = args.sweep_budget {
        director.set_sweep_budget(budget);
    }
    let director = Arc::new(Mutex::new(director));
    if !args.sysctls.is_empty() {
        let commands: Vec<Command> = args
            .sysctls
            .iter()
            .map(|&(name, value)| Command::SetSysctl { name, value })
            .collect();
        let mut d = director.lock().unwrap_or_else(|p| p.into_inner());
        d.apply(&commands).context("setting --sysctl")?;
        info!(sysctls = ?d.sysctls(), "sysctls set from the command line");
    }
    let (reload, stopping, quorum) = match managed {
        Some(managed) => {
            let (reload, stopping, quorum) = supervise(managed, &director)?;
            (Some(told_to_systemd(reload)), Some(stopping), Some(quorum))
        }
        None => (None, None, None),
    };
    {
        let mut d = director.lock().unwrap_or_else(|p| p.into_inner());
        for name in &args.ifaces {
            let mode = d.attach(name, args.xdp_mode)?;
            info!(iface = %name, mode, "XDP program attached");
        }
        d.attached_everywhere()?;
    }
    Ok((director, reload, stopping, quorum))
}

/// Serves until SIGTERM or SIGINT, then stops as `--on-exit` says.
async fn serve(
    args: Args,
    mut signals: Signals,
    socket: ControlSocket,
    metrics_listener: Option<tokio::net::TcpListener>,
    director: Arc<Mutex<Director>>,
    hooks: Hooks,
    upkeep: Upkeep,
) -> anyhow::Result<()> {
    let Upkeep {
        stopping,
        announcing: announcer,
    } = upkeep;
    let reload = hooks.reload.clone();
    let ticker = {
        let director = Arc::clone(&director);
        async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            loop {
                interval.tick().await;
                let director = Arc::clone(&director);
                let result = tokio::task::spawn_blocking(move || {
                    director.lock().unwrap_or_else(|p| p.into_inner()).tick()
                })
                .await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!("periodic upkeep failed: {e}"),
                    Err(e) => warn!("periodic upkeep panicked: {e}"),
                }
            }
        }
    };

    // Every 200 ms: what a sync backup received goes into the connection table (the socket
    // is read by a thread of its own meanwhile).
    let syncing = {
        let director = Arc::clone(&director);
        async move {
            let mut interval = tokio::time::interval(Duration::from_millis(200));
            loop {
                interval.tick().await;
                let director = Arc::clone(&director);
                let result = tokio::task::spawn_blocking(move || {
                    director
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .sync_receive()
                })
                .await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!("applying synchronised connections failed: {e}"),
                    Err(e) => warn!("applying synchronised connections panicked: {e}"),
                }
            }
        }
    };

    // Every half second: the VIPs to announce follow health checks, quorums and lbadm's
    // changes (the announcer only writes and calls birdc when something changed).
    let announcing = {
        let announcer = announcer.clone();
        let director = Arc::clone(&director);
        async move {
            let Some((announcer, quorum)) = announcer else {
                return std::future::pending().await;
            };
            let mut interval = tokio::time::interval(Duration::from_millis(500));
            loop {
                interval.tick().await;
                let announcer = Arc::clone(&announcer);
                let director = Arc::clone(&director);
                let quorum = quorum.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let views = service_views(&director, quorum.as_ref());
                    announcer
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .sync(&views);
                })
                .await;
                if let Err(e) = result {
                    warn!("announcing VIPs panicked: {e}");
                }
            }
        }
    };

    let metrics = async {
        match metrics_listener {
            Some(listener) => {
                if let Ok(addr) = listener.local_addr() {
                    info!(%addr, "serving Prometheus metrics on /metrics");
                }
                let director = Arc::clone(&director);
                metrics::serve(listener, move || {
                    director
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .metrics_input()
                })
                .await;
                Ok::<(), anyhow::Error>(())
            }
            None => std::future::pending().await,
        }
    };

    let hup = {
        let reload = reload.clone();
        let sighup = &mut signals.hup;
        async move {
            loop {
                sighup.recv().await;
                info!("SIGHUP: reloading the configuration");
                match &reload {
                    Some(reload) => {
                        let reload = Arc::clone(reload);
                        // The hook logs why a reload was refused; the running configuration
                        // stays.
                        match tokio::task::spawn_blocking(move || reload()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => error!("SIGHUP: reload refused, nothing changed"),
                            Err(e) => error!("SIGHUP: reload panicked: {e}"),
                        }
                    }
                    None => warn!("started without --config: nothing to reload"),
                }
            }
            #[expect(unreachable_code, reason = "the loop only ends with the daemon")]
            Ok::<(), anyhow::Error>(())
        }
    };

    tokio::select! {
        r = metrics => r?,
        r = hup => r?,
        _ = socket.serve(Arc::clone(&director), hooks) => {}
        _ = ticker => {}
        _ = syncing => {}
        _ = announcing => {}
        _ = signals.term.recv() => info!("SIGTERM: shutting down"),
        _ = signals.int.recv() => info!("SIGINT: shutting down"),
    }
    service_manager::stopping();
    drop(socket);
    if let Some(stopping) = stopping {
        // omega: keepalived's down notifications on the way out, each given a second.
        let runs = stopping().into_iter().map(|n| async move {
            info!(script = %n.script.display(), "{}: {} (omega, lbd stopping)", n.subject, n.what);
            lb_user::health::script::run(&n.script, Duration::from_secs(1)).await
        });
        futures_join_all(runs).await;
    }
    if let Some((announcer, _)) = &announcer {
        let mut a = announcer.lock().unwrap_or_else(|p| p.into_inner());
        match args.on_exit {
            // Withdrawn before the data path goes, so that the router stops sending first.
            OnExit::Detach => a.withdraw_all("lbd is stopping and takes its data path down"),
            OnExit::Keep => info!(
                "VIPs stay announced as they are: the data path keeps running (--on-exit keep)"
            ),
        }
    }
    let mut d = director.lock().unwrap_or_else(|p| p.into_inner());
    d.shutdown(args.on_exit)?;
    match args.on_exit {
        OnExit::Detach => info!(
            "XDP program detached; configuration kept in {}",
            args.state.display()
        ),
        OnExit::Keep => info!(
            path = %args.bpffs.display(),
            "data path left running for the next lbd (`lbd --cleanup` removes it)"
        ),
    }
    Ok(())
}

/// `reload`, with systemd told about it (RELOADING=1, then READY=1 whether it worked or not:
/// a refused configuration leaves the running one in place), for SIGHUP and `lbd reload`
/// alike.
fn told_to_systemd(reload: ReloadHook) -> ReloadHook {
    Arc::new(move || {
        service_manager::reloading();
        let result = reload();
        service_manager::ready(match result {
            Ok(()) => "serving",
            Err(_) => "serving; the last reload was refused",
        });
        result
    })
}

/// Runs the futures concurrently to their ends.
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>)
where
    F::Output: Send,
{
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}

/// Runs the scripts keepalived would run for a change (`notify_*`, `quorum_*`).
fn run_notifications(notifications: Vec<lb_user::managed::Notification>) {
    for n in notifications {
        info!(script = %n.script.display(), "{}: {}", n.subject, n.what);
        lb_user::health::script::notify(&n.script, n.what);
    }
}

/// What to run when lbd stops: keepalived's `omega` notifications.
type StopHook = Box<dyn FnOnce() -> Vec<lb_user::managed::Notification> + Send>;

/// Puts the keepalived.conf's virtual servers in place, starts their health checks and keeps
/// the two in step; returns the reload hook (SIGHUP, `lbd reload`) and what to run on the way
/// out. The services the file owns are recorded in the state file with the configuration: one
/// removed from the file while lbd was down is removed now.
fn supervise(
    managed: Managed,
    director: &Arc<Mutex<Director>>,
) -> anyhow::Result<(ReloadHook, StopHook, QuorumView)> {
    let path = managed.path().to_owned();
    for note in &managed.config().notes {
        info!("{note}");
    }
    {
        let mut d = director.lock().unwrap_or_else(|p| p.into_inner());
        let commands = managed.commands(d.config());
        let resolution = d
            .apply_managed(&commands, managed.owned())
            .with_context(|| format!("applying {}", path.display()))?;
        for (key, up) in managed.verdicts() {
            d.set_health(key, up);
        }
        drop(d);
        info!(path = %path.display(), services = managed.config().services.len(), changes = commands.len(), "configuration applied");
        wait_for_resolution(director, resolution, RESOLUTION_WAIT);
        run_notifications(managed.startup_notifications());
    }
    let (checker, mut events) = lb_user::health::spawn(managed.targets())?;
    let managed = Arc::new(Mutex::new((managed, checker)));
    {
        let managed = Arc::clone(&managed);
        let director = Arc::clone(director);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let managed = Arc::clone(&managed);
                let director = Arc::clone(&director);
                let runtime = tokio::runtime::Handle::current();
                let _ = tokio::task::spawn_blocking(move || {
                    let mut guard = managed.lock().unwrap_or_else(|p| p.into_inner());
                    let (managed, _) = &mut *guard;
                    let (changed, notifications) =
                        managed.set_health(event.key, event.up, event.weight);
                    if !changed {
                        return;
                    }
                    let state = if event.up { "up" } else { "DOWN" };
                    info!(service = %event.key.service, real = %event.key.real, port = event.key.port, reason = %event.reason, "real server {state}");
                    let mut d = director.lock().unwrap_or_else(|p| p.into_inner());
                    d.set_health(event.key, event.up);
                    let commands = managed.commands(d.config());
                    // Health changes touch known real servers: nothing to wait for.
                    if let Err(e) = d.apply_managed(&commands, managed.owned()) {
                        warn!("applying a health change failed: {e}");
                    }
                    drop(d);
                    let _enter = runtime.enter();
                    run_notifications(notifications);
                })
                .await;
            }
        });
    }
    let director = Arc::clone(director);
    let runtime = tokio::runtime::Handle::current();
    let stopping = Arc::clone(&managed);
    let reload: ReloadHook = Arc::new(move || {
        let _enter = runtime.enter();
        let mut guard = managed.lock().unwrap_or_else(|p| p.into_inner());
        let (managed, checker) = &mut *guard;
        let result = reload_managed(managed, checker, &director);
        if let Err(message) = &result {
            warn!("{message}");
        }
        result
    });
    let quorum_of = Arc::clone(&stopping);
    let stop: StopHook = Box::new(move || {
        let guard = stopping.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.shutdown_notifications()
    });
    let quorum: QuorumView = Arc::new(move || {
        let guard = quorum_of.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.quorum_states()
    });
    Ok((reload, stop, quorum))
}

/// Re-reads keepalived.conf and applies it, all or nothing: a file that does not parse, health
/// checks that cannot start or a change the data path refuses leave the previous file's
/// services, their ownership and their health checks as they were, and say why.
fn reload_managed(
    managed: &mut Managed,
    checker: &mut lb_user::health::HealthChecker,
    director: &Arc<Mutex<Director>>,
) -> Result<(), String> {
    let path = managed.path().display().to_string();
    let refused = |what: String| format!("{path}: {what}; the running configuration is unchanged");
    let before = managed.clone();
    let notifications = managed
        .reload()
        .map_err(|e| refused(format!("invalid configuration:\n{e}")))?;
    let old_targets = before.targets();
    if let Err(e) = checker.replace(managed.targets()) {
        *managed = before;
        return Err(refused(format!("health checks refused: {e}")));
    }
    let mut d = director.lock().unwrap_or_else(|p| p.into_inner());
    let commands = managed.commands(d.config());
    let resolution = match d.apply_managed(&commands, managed.owned()) {
        Ok(resolution) => resolution,
        Err(e) => {
            drop(d);
            *managed = before;
            if let Err(e) = checker.replace(old_targets) {
                warn!("restoring the previous health checks failed: {e}");
            }
            return Err(refused(format!("applying it failed: {e}")));
        }
    };
    let verdicts = managed.verdicts();
    d.retain_health(|key| verdicts.iter().any(|(k, _)| k == key));
    for (key, up) in verdicts {
        d.set_health(key, up);
    }
    drop(d);
    for note in &managed.config().notes {
        info!("{note}");
    }
    info!(changes = commands.len(), "configuration reloaded");
    wait_for_resolution(director, resolution, RESOLUTION_WAIT);
    run_notifications(notifications);
    Ok(())
}

/// Raises the soft limit on open files to the hard one: a health check holds a socket (a
/// thousand real servers checked at once would hit the usual soft limit of 1,024 and be marked
/// down), and so do metrics scrapes and control sessions.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let from = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            tracing::debug!(from, to = limit.rlim_max, "open-file limit raised");
        } else {
            warn!(
                limit = from,
                "cannot raise the open-file limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
