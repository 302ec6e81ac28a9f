//! Waiting for the kernel to resolve real servers' MACs without holding the director.
//!
//! Applying a change never waits for ARP: the director would be held all that time, and a
//! restore of thousands of real servers nobody answers for would hold it longest. The apply
//! asks the kernel to resolve what it does not know and returns a [`Resolution`], subscribed
//! to neighbour announcements before anything was read (so no answer is missed). `lbd` answers
//! `lbadm` once those real servers are resolved or [`RESOLUTION_WAIT`] has passed, taking the
//! director only to publish each answer: a real server added with `-a` takes connections when
//! lbadm returns, as with IPVS, while other requests and the periodic upkeep go on.

use std::{
    collections::HashSet,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use tracing::{info, warn};

use crate::{
    director::{Director, DirectorError},
    netlink::{NeighbourEvent, NeighbourMonitor},
};

/// How long a change waits for the real servers it added to be resolved.
pub const RESOLUTION_WAIT: Duration = Duration::from_millis(500);

/// Next hops (interface, address) the kernel was asked to resolve, and a subscription to its
/// answers.
#[derive(Default)]
pub struct Resolution {
    monitor: Option<NeighbourMonitor>,
    waiting: HashSet<(u32, IpAddr)>,
}

impl Resolution {
    /// A resolution that hears the kernel's answers when `follow`, else one that never waits.
    pub(crate) fn follow(follow: bool) -> Self {
        let monitor = if follow {
            NeighbourMonitor::new()
                .map_err(|e| warn!("cannot follow neighbour announcements: {e}"))
                .ok()
        } else {
            None
        };
        Resolution {
            monitor,
            waiting: HashSet::new(),
        }
    }

    /// Awaits the answer for `via` on `ifindex`.
    pub(crate) fn awaits(&mut self, ifindex: u32, via: IpAddr) {
        self.waiting.insert((ifindex, via));
    }

    /// Keeps awaiting only the next hops for which `keep` holds.
    pub(crate) fn retain(&mut self, keep: impl Fn(u32, IpAddr) -> bool) {
        self.waiting.retain(|&(ifindex, via)| keep(ifindex, via));
    }

    /// Next hops still awaited.
    pub fn pending(&self) -> usize {
        self.waiting.len()
    }

    /// Nothing left to wait for (or no way to hear about it).
    pub fn is_done(&self) -> bool {
        self.waiting.is_empty() || self.monitor.is_none()
    }

    /// The announcements heard within `timeout` that matter: resolutions of awaited next
    /// hops (no longer awaited from now on), and lost announcements.
    pub fn wait(&mut self, timeout: Duration) -> Vec<NeighbourEvent> {
        let Some(monitor) = &mut self.monitor else {
            return Vec::new();
        };
        let events = match monitor.wait(Some(timeout)) {
            Ok(events) => events,
            Err(e) => {
                warn!("reading neighbour announcements: {e}");
                self.monitor = None;
                return Vec::new();
            }
        };
        events
            .into_iter()
            .filter(|event| match *event {
                NeighbourEvent::Changed {
                    ifindex,
                    addr,
                    neighbour: Some(_),
                } => self.waiting.remove(&(ifindex, addr)),
                NeighbourEvent::Changed {
                    neighbour: None, ..
                } => false,
                NeighbourEvent::Lost => true,
            })
            .collect()
    }
}

/// Waits until `resolution` is done or `limit` has passed, handing what it hears to `learn`.
pub fn wait_with(
    mut resolution: Resolution,
    limit: Duration,
    mut learn: impl FnMut(&[NeighbourEvent], &mut Resolution) -> Result<(), DirectorError>,
) {
    let deadline = Instant::now() + limit;
    while !resolution.is_done() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let events = resolution.wait(left);
        if !events.is_empty()
            && let Err(e) = learn(&events, &mut resolution)
        {
            warn!("publishing resolved real servers: {e}");
            return;
        }
    }
    if resolution.pending() > 0 {
        info!(
            next_hops = resolution.pending(),
            "not resolved yet; their real servers take connections once resolved"
        );
    }
}

/// [`wait_with`] for a shared director, taken only to publish what was heard.
pub fn wait_for_resolution(director: &Mutex<Director>, resolution: Resolution, limit: Duration) {
    wait_with(resolution, limit, |events, resolution| {
        director
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .learn(events, resolution)
    });
}
