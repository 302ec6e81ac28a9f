//! Counting frames where the switch forwards them: named nftables counters in the bridge's
//! forward hook, matched by ingress/egress port and headers. The switch sees every frame
//! between hosts, before any host's XDP program or kernel, so a count of zero at a port is
//! proof that nothing matching reached that host (LVS-TUN: the real servers' replies never
//! pass the director). The counts are exact and need no capture to start up first.

use std::{
    fmt,
    sync::atomic::{AtomicU32, Ordering},
};

use crate::{cmd, netns::Netns};

static NEXT_TABLE: AtomicU32 = AtomicU32::new(0);

/// One counter: its name, and the nftables match that feeds it, e.g.
/// `oifname "director" ip saddr 10.0.0.99 tcp sport 80`.
#[derive(Clone, Debug)]
pub struct Counter {
    pub name: String,
    pub matches: String,
}

impl Counter {
    pub fn new(name: &str, matches: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            matches: matches.into(),
        }
    }
}

/// Counters installed in a switch namespace; removed on drop.
pub struct SwitchCounters {
    ns: String,
    table: String,
    counters: Vec<Counter>,
}

impl SwitchCounters {
    /// Installs `counters` in a table of their own in `switch` (a namespace holding bridges).
    /// Every forwarded frame passes every rule (`policy accept`, no verdicts).
    #[track_caller]
    pub fn install(switch: &Netns, counters: &[Counter]) -> Self {
        let table = format!("lbtap{}", NEXT_TABLE.fetch_add(1, Ordering::Relaxed));
        // nft wants each rule and each closing brace on its own line.
        let mut text = format!("table bridge {table} {{\n");
        for c in counters {
            text += &format!("  counter {} {{\n  }}\n", c.name);
        }
        text += "  chain forwarded {\n";
        text += "    type filter hook forward priority 0; policy accept;\n";
        for c in counters {
            text += &format!("    {} counter name \"{}\"\n", c.matches, c.name);
        }
        text += "  }\n}\n";
        let ran = switch.try_run(&["nft", "-f", "-"], Some(&text));
        assert!(
            ran.success(),
            "installing switch counters failed:\n{ran}\nruleset:\n{text}"
        );
        Self {
            ns: switch.name().to_owned(),
            table,
            counters: counters.to_vec(),
        }
    }

    /// Packets counted so far by counter `name`.
    #[track_caller]
    pub fn packets(&self, name: &str) -> u64 {
        assert!(
            self.counters.iter().any(|c| c.name == name),
            "no switch counter named {name:?}"
        );
        let argv = [
            "ip",
            "netns",
            "exec",
            &self.ns,
            "nft",
            "list",
            "counter",
            "bridge",
            &self.table,
            name,
        ];
        let out = cmd::run(&argv);
        parse_packets(&out)
            .unwrap_or_else(|| panic!("no `packets N` in `{}`:\n{out}", cmd::shell_words(&argv)))
    }

    /// Every counter's packets, in the order installed.
    pub fn all(&self) -> Vec<(String, u64)> {
        self.counters
            .iter()
            .map(|c| (c.name.clone(), self.packets(&c.name)))
            .collect()
    }
}

impl fmt::Display for SwitchCounters {
    /// One line per counter: `name: N packets  (match)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.counters {
            writeln!(
                f,
                "  {:<24} {:>8} packets  ({})",
                c.name,
                self.packets(&c.name),
                c.matches
            )?;
        }
        Ok(())
    }
}

impl Drop for SwitchCounters {
    fn drop(&mut self) {
        // The table also goes with the namespace; this is for counters dropped earlier.
        let _ = cmd::try_run(
            &[
                "ip",
                "netns",
                "exec",
                &self.ns,
                "nft",
                "delete",
                "table",
                "bridge",
                &self.table,
            ],
            None,
        );
    }
}

/// The number after `packets` in `nft list counter` output.
fn parse_packets(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "packets")?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_from_nft_listing() {
        let text =
            "table bridge lbtap0 {\n\tcounter replies {\n\t\tpackets 12 bytes 3456\n\t}\n}\n";
        assert_eq!(parse_packets(text), Some(12));
        assert_eq!(parse_packets("table bridge x {\n}\n"), None);
    }
}
