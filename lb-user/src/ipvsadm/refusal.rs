//! Which line of a `-R` input lbd refused. lbd applies a restore as one transaction and says
//! why it refused it (ipvsadm's message), not where; lbadm finds the first command that fails
//! against the configuration lbd lists, so the message can name the line as ipvsadm's own
//! parse errors do.

use crate::{
    config::{Config, RealEntry, ServiceEntry},
    model::{Command, Snapshot},
};

/// The configuration a snapshot shows (ids are made up: refusals do not depend on them).
fn config_of(snapshot: &Snapshot) -> Config {
    let mut next_real = 1;
    let services = snapshot
        .services
        .iter()
        .zip(1..)
        .map(|(s, id)| ServiceEntry {
            id,
            spec: s.spec.clone(),
            reals: s
                .reals
                .iter()
                .map(|r| {
                    next_real += 1;
                    RealEntry {
                        id: next_real - 1,
                        spec: r.spec.clone(),
                    }
                })
                .collect(),
        })
        .collect();
    Config {
        services,
        trash: Vec::new(),
        timeouts: snapshot.timeouts,
        sysctls: Default::default(),
        keepalived: Vec::new(),
        sync_daemons: Default::default(),
    }
}

/// The index of the first of `commands` that fails when applied in order to what `snapshot`
/// shows, if one does.
pub fn locate_refusal(snapshot: &Snapshot, commands: &[Command]) -> Option<usize> {
    let config = config_of(snapshot);
    // A prefix fails once it holds the failing command: search for the shortest.
    if config.apply_all(commands).is_ok() {
        return None;
    }
    let (mut ok, mut bad) = (0, commands.len());
    while bad - ok > 1 {
        let mid = ok + (bad - ok) / 2;
        if config.apply_all(&commands[..mid]).is_ok() {
            ok = mid;
        } else {
            bad = mid;
        }
    }
    Some(bad - 1)
}

#[cfg(test)]
mod tests {
    use super::{super::parse::parse_restore_located, *};
    use crate::ipvsadm::NoNames;

    #[test]
    fn finds_the_first_failing_line() {
        let input = "-A -t 10.0.0.1:80 -s rr\n\
                     # a comment\n\
                     -a -t 10.0.0.1:80 -r 10.0.0.11:80 -g\n\
                     -a -t 10.0.0.2:80 -r 10.0.0.11:80 -g\n\
                     -a -t 10.0.0.1:80 -r 10.0.0.12:80 -g\n";
        let (commands, lines) = parse_restore_located(input, &NoNames).unwrap();
        let empty = Snapshot {
            conn_table_size: 4096,
            services: Vec::new(),
            timeouts: Default::default(),
        };
        let at = locate_refusal(&empty, &commands).unwrap();
        assert_eq!(
            lines[at],
            (4, "-a -t 10.0.0.2:80 -r 10.0.0.11:80 -g".to_owned())
        );
        assert_eq!(locate_refusal(&empty, &commands[..2]), None);
        // Against a configuration that already has the first service, line 1 fails.
        let config = Config::default().apply_all(&commands[..1]).unwrap();
        let snapshot = Snapshot {
            services: config
                .services
                .iter()
                .map(|s| crate::model::ServiceStatus {
                    spec: s.spec.clone(),
                    stats: Default::default(),
                    rates: Default::default(),
                    reals: Vec::new(),
                })
                .collect(),
            ..empty
        };
        assert_eq!(locate_refusal(&snapshot, &commands), Some(0));
    }
}
