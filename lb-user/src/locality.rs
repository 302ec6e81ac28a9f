//! lblc/lblcr locality tables, the user-space side: which entries of the data path's
//! `LOCALITY` map lbd deletes. The data path already ignores entries that are expired or name
//! a real server that is not an available one of the service; deleting them frees the space
//! and, for a deleted service or a changed scheduler, forgets what IPVS forgets when it frees
//! the service's table (its `done_service`).

use std::collections::HashSet;

use lb_common::{LOCALITY_EXPIRATION_NS, Locality, LocalityKey, elapsed_ns};

use crate::{config::Config, model::Scheduler};

/// Whether `scheduler` keeps a locality table.
pub fn has_locality(scheduler: Scheduler) -> bool {
    matches!(scheduler, Scheduler::Lblc | Scheduler::Lblcr)
}

/// Ids of the services whose locality entries must go when `previous` becomes `next`: a
/// service with a table (lblc, lblcr) that was deleted or whose scheduler changed (`-E -s`,
/// lblc to lblcr too).
pub fn services_to_flush(previous: &Config, next: &Config) -> HashSet<u32> {
    // By id: this runs on every change, and a scan of `next` per service was quadratic.
    let next_by_id: std::collections::HashMap<u32, _> = next
        .services
        .iter()
        .map(|new| (new.id, (new.spec.addr, new.spec.scheduler)))
        .collect();
    previous
        .services
        .iter()
        .filter(|old| has_locality(old.spec.scheduler))
        .filter(|old| next_by_id.get(&old.id) != Some(&(old.spec.addr, old.spec.scheduler)))
        .map(|old| old.id)
        .collect()
}

/// Ids of the services of `config` that keep a locality table.
pub fn services_with_locality(config: &Config) -> HashSet<u32> {
    config
        .services
        .iter()
        .filter(|s| has_locality(s.spec.scheduler))
        .map(|s| s.id)
        .collect()
}

/// Whether the periodic sweep deletes an entry at `now_ns` (the data path's clock): its
/// service is gone or no longer scheduled by lblc/lblcr (`live` holds those that are), or it
/// has not been used for the expiration time (IPVS's `lblc_expiration`/`lblcr_expiration`).
pub fn is_stale(key: &LocalityKey, entry: &Locality, now_ns: u64, live: &HashSet<u32>) -> bool {
    !live.contains(&key.service) || elapsed_ns(now_ns, entry.last_use_ns) >= LOCALITY_EXPIRATION_NS
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{Command, Protocol, ServiceAddr, ServiceSpec};

    fn addr(port: u16) -> ServiceAddr {
        ServiceAddr {
            protocol: Protocol::Tcp,
            addr: Ipv4Addr::new(192, 168, 1, 99).into(),
            port,
        }
    }

    fn spec(port: u16, scheduler: Scheduler) -> ServiceSpec {
        ServiceSpec {
            addr: addr(port),
            scheduler,
            persistence: None,
            sched_flags: Default::default(),
        }
    }

    fn add(port: u16, scheduler: Scheduler) -> Command {
        Command::AddService {
            service: spec(port, scheduler),
        }
    }

    fn edit(port: u16, scheduler: Scheduler) -> Command {
        Command::EditService {
            service: spec(port, scheduler),
        }
    }

    fn config(commands: &[Command]) -> Config {
        Config::default().apply_all(commands).unwrap()
    }

    fn id(config: &Config, port: u16) -> u32 {
        config.service(&addr(port)).unwrap().id
    }

    #[test]
    fn only_lblc_and_lblcr_keep_tables() {
        let with: Vec<Scheduler> = Scheduler::ALL
            .into_iter()
            .filter(|&s| has_locality(s))
            .collect();
        assert_eq!(with, [Scheduler::Lblc, Scheduler::Lblcr]);
    }

    #[test]
    fn a_deleted_service_or_a_changed_scheduler_flushes_its_table() {
        let before = config(&[
            add(80, Scheduler::Lblc),
            add(81, Scheduler::Lblcr),
            add(82, Scheduler::Lblc),
            add(83, Scheduler::Wlc),
        ]);
        let (s80, s81, s82) = (id(&before, 80), id(&before, 81), id(&before, 82));
        // Unchanged: nothing to flush (weights and real servers do not matter).
        assert!(services_to_flush(&before, &before).is_empty());
        let after = before
            .apply_all(&[
                Command::DeleteService { service: addr(80) },
                edit(81, Scheduler::Lblc),
                edit(83, Scheduler::Lblc),
            ])
            .unwrap();
        assert_eq!(
            services_to_flush(&before, &after),
            HashSet::from([s80, s81])
        );
        assert_eq!(
            services_with_locality(&after),
            HashSet::from([s81, s82, id(&after, 83)])
        );
        // Another service given the deleted one's id in the same batch: still flushed.
        let reused = before
            .apply_all(&[
                Command::DeleteService { service: addr(80) },
                add(90, Scheduler::Lblc),
            ])
            .unwrap();
        assert_eq!(id(&reused, 90), s80);
        assert_eq!(services_to_flush(&before, &reused), HashSet::from([s80]));
        // -C flushes every table.
        let cleared = before.apply_all(&[Command::Clear]).unwrap();
        assert_eq!(
            services_to_flush(&before, &cleared),
            HashSet::from([s80, s81, s82])
        );
    }

    #[test]
    fn the_sweep_deletes_entries_of_other_services_and_unused_ones() {
        let live = HashSet::from([1]);
        let now = 10 * LOCALITY_EXPIRATION_NS;
        let used = |ago: u64| Locality::single(5, now - ago);
        let key = |service| LocalityKey {
            service,
            daddr: lb_common::Addr::v4(7),
        };
        assert!(!is_stale(&key(1), &used(0), now, &live));
        assert!(!is_stale(
            &key(1),
            &used(LOCALITY_EXPIRATION_NS - 1),
            now,
            &live
        ));
        assert!(is_stale(&key(1), &used(LOCALITY_EXPIRATION_NS), now, &live));
        assert!(is_stale(&key(2), &used(0), now, &live));
        // Stamped by the data path after `now` was read: in use.
        assert!(!is_stale(
            &key(1),
            &Locality::single(5, now + 1_000),
            now,
            &live
        ));
    }
}
