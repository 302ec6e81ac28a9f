//! Reading `lbadm -Ln --stats` (ipvsadm's `-l -n --stats` layout) back into numbers, and
//! `lbadm -L -n -c` (the connection table, [`parse_connections`]) into rows.
//!
//! ```text
//! IP Virtual Server version 1.2.1 (size=4096)
//! Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
//!   -> RemoteAddress:Port
//! TCP  192.168.10.100:80                8334   276749   276376 19924288 32466424
//!   -> 172.16.20.1:80                   2723   101478   101339  7305856 11905439
//! ```

use std::fmt;

/// One row's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// A service's row and its real servers' rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStats {
    /// `TCP`, `UDP`, `FWM`.
    pub proto: String,
    /// `addr:port` as listed.
    pub addr: String,
    pub totals: Counts,
    /// `(addr:port, counters)` in listed order.
    pub reals: Vec<(String, Counts)>,
}

impl ServiceStats {
    /// The row of real server `addr` (`addr:port`).
    pub fn real(&self, addr: &str) -> Option<Counts> {
        self.reals.iter().find(|(a, _)| a == addr).map(|(_, c)| *c)
    }

    /// The real servers' rows added up.
    pub fn reals_sum(&self) -> Counts {
        self.reals
            .iter()
            .fold(Counts::default(), |sum, (_, c)| Counts {
                conns: sum.conns + c.conns,
                in_pkts: sum.in_pkts + c.in_pkts,
                out_pkts: sum.out_pkts + c.out_pkts,
                in_bytes: sum.in_bytes + c.in_bytes,
                out_bytes: sum.out_bytes + c.out_bytes,
            })
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conns {} in {} pkts/{} B out {} pkts/{} B",
            self.conns, self.in_pkts, self.in_bytes, self.out_pkts, self.out_bytes
        )
    }
}

/// Parses the five counters ending a row; numbers abbreviated with K/M/G/T (as ipvsadm does
/// without `--exact` from 100,000,000 on) are refused rather than guessed.
fn counts(fields: &[&str], line: &str) -> Result<Counts, String> {
    let n: Vec<u64> = fields
        .iter()
        .map(|f| {
            f.parse::<u64>()
                .map_err(|_| format!("{f:?} is not an exact count in {line:?}"))
        })
        .collect::<Result<_, _>>()?;
    let [conns, in_pkts, out_pkts, in_bytes, out_bytes] = n[..] else {
        return Err(format!("expected five counters in {line:?}"));
    };
    Ok(Counts {
        conns,
        in_pkts,
        out_pkts,
        in_bytes,
        out_bytes,
    })
}

/// Parses `-Ln --stats` output.
pub fn parse_stats(text: &str) -> Result<Vec<ServiceStats>, String> {
    let mut lines = text.lines();
    let header = [
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    ];
    if !header[0].starts_with("IP Virtual Server version")
        || !header[1].starts_with("Prot LocalAddress:Port")
        || !header[1].contains("OutBytes")
        || header[2].trim() != "-> RemoteAddress:Port"
    {
        return Err(format!("not a `--stats` listing:\n{text}"));
    }
    let mut services: Vec<ServiceStats> = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("  -> ") {
            let service = services
                .last_mut()
                .ok_or_else(|| format!("real server row before any service: {line:?}"))?;
            if fields.len() != 7 {
                return Err(format!(
                    "real server row of {} fields: {line:?}",
                    fields.len()
                ));
            }
            service
                .reals
                .push((fields[1].to_owned(), counts(&fields[2..], line)?));
        } else if fields.len() == 7 {
            services.push(ServiceStats {
                proto: fields[0].to_owned(),
                addr: fields[1].to_owned(),
                totals: counts(&fields[2..], line)?,
                reals: Vec::new(),
            });
        } else {
            return Err(format!("unexpected row {line:?}"));
        }
    }
    Ok(services)
}

/// The service `proto addr` (`TCP`, `10.0.0.99:80`) in a parsed listing.
#[track_caller]
pub fn find<'a>(services: &'a [ServiceStats], proto: &str, addr: &str) -> &'a ServiceStats {
    services
        .iter()
        .find(|s| s.proto == proto && s.addr == addr)
        .unwrap_or_else(|| panic!("no {proto} {addr} in the listing: {services:#?}"))
}

/// One row of `-L -n -c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnRow {
    pub proto: String,
    /// `mm:ss` left.
    pub expire: String,
    /// `ESTABLISHED`, ...; `NONE` for a persistence template.
    pub state: String,
    pub source: String,
    pub virtual_addr: String,
    pub destination: String,
}

impl ConnRow {
    /// Seconds left before the entry expires (`expire` is `mm:ss`).
    pub fn expire_secs(&self) -> Option<u64> {
        let (m, s) = self.expire.split_once(':')?;
        Some(m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?)
    }
}

/// The rows of `-L -n -c` (persistence templates included), or what is wrong with the text.
pub fn parse_connections(text: &str) -> Result<Vec<ConnRow>, String> {
    let mut lines = text.lines();
    if lines.next() != Some("IPVS connection entries") {
        return Err(format!("not a -L -n -c listing:\n{text}"));
    }
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header != ["pro", "expire", "state", "source", "virtual", "destination"] {
        return Err(format!("-L -n -c header {header:?} in:\n{text}"));
    }
    lines
        .map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [proto, expire, state, source, virtual_addr, destination] => Ok(ConnRow {
                    proto: proto.to_owned(),
                    expire: expire.to_owned(),
                    state: state.to_owned(),
                    source: source.to_owned(),
                    virtual_addr: virtual_addr.to_owned(),
                    destination: destination.to_owned(),
                }),
                _ => Err(format!("-L -n -c row {line:?} in:\n{text}")),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_rows() {
        let text = "IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:58  ESTABLISHED 10.0.0.10:40000    10.0.0.99:80       10.0.0.12:80
TCP 01:00  NONE        10.0.0.10:0        10.0.0.99:80       10.0.0.12:80
";
        let rows = parse_connections(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].source, "10.0.0.10:40000");
        assert_eq!(rows[0].destination, "10.0.0.12:80");
        assert_eq!(rows[0].expire_secs(), Some(898));
        assert_eq!(rows[1].state, "NONE");
        assert!(parse_connections("IPVS connection entries\n").is_err());
        assert!(parse_connections(&text.replace(" 10.0.0.12:80\nTCP", "\nTCP")).is_err());
    }

    const SEED_001: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.168.10.100:80                8334   276749   276376 19924288 32466424
  -> 172.16.20.1:80                   2723   101478   101339  7305856 11905439
  -> 172.16.20.100:80                 5611   175271   175037 12618432 20560985
UDP  192.168.10.100:53                   0        0        0        0        0
";

    #[test]
    fn seed_001_listing() {
        let services = parse_stats(SEED_001).unwrap();
        assert_eq!(services.len(), 2);
        let web = find(&services, "TCP", "192.168.10.100:80");
        assert_eq!(web.totals.conns, 8334);
        assert_eq!(web.totals.out_bytes, 32466424);
        assert_eq!(web.real("172.16.20.1:80").unwrap().in_pkts, 101478);
        assert_eq!(web.reals_sum().conns, 8334);
        assert!(find(&services, "UDP", "192.168.10.100:53").reals.is_empty());
    }

    #[test]
    fn abbreviations_and_other_listings_are_refused() {
        let abbreviated = SEED_001.replace("32466424", "  100000K");
        assert!(parse_stats(&abbreviated).is_err());
        let plain = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
";
        assert!(parse_stats(plain).is_err());
    }
}
