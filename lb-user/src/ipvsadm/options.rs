//! ipvsadm's vocabulary: every option it knows (long name, short letter, argument), its
//! commands, and its table of which options each command requires, allows or refuses.
//!
//! The table and the option names in it are what ipvsadm's messages quote ("You need to
//! supply the 'real-server' option for the 'add-server' command"), so they are kept in
//! ipvsadm's order and spelling even for options lb does not implement: a command line is
//! judged exactly as ipvsadm would judge it before lb says what it cannot do.

use super::error::CliError;

/// Whether an option takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArgKind {
    None,
    Required,
    /// Taken only when the next argument does not start with `-` (popt's optional argument).
    Optional,
}

/// Every option ipvsadm's command line knows, commands included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opt {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    TcpService,
    UdpService,
    SctpService,
    FwmarkService,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

/// How an option is written and whether it takes an argument.
pub(crate) struct Spec {
    pub long: &'static str,
    pub short: Option<char>,
    pub arg: ArgKind,
    pub opt: Opt,
}

const fn spec(long: &'static str, short: Option<char>, arg: ArgKind, opt: Opt) -> Spec {
    Spec {
        long,
        short,
        arg,
        opt,
    }
}

/// ipvsadm's option table (popt), in its order: the first match wins, which only matters for
/// `--list` (both `-L` and `-l` are the same command).
pub(crate) const SPECS: &[Spec] = {
    use ArgKind::{None as N, Optional as O, Required as R};
    &[
        spec("add-service", Some('A'), N, Opt::AddService),
        spec("edit-service", Some('E'), N, Opt::EditService),
        spec("delete-service", Some('D'), N, Opt::DeleteService),
        spec("clear", Some('C'), N, Opt::Clear),
        spec("list", Some('L'), N, Opt::List),
        spec("list", Some('l'), N, Opt::List),
        spec("zero", Some('Z'), N, Opt::Zero),
        spec("add-server", Some('a'), N, Opt::AddServer),
        spec("edit-server", Some('e'), N, Opt::EditServer),
        spec("delete-server", Some('d'), N, Opt::DeleteServer),
        spec("set", None, N, Opt::Set),
        spec("help", Some('h'), N, Opt::Help),
        spec("version", Some('v'), N, Opt::Version),
        spec("restore", Some('R'), N, Opt::Restore),
        spec("save", Some('S'), N, Opt::Save),
        spec("start-daemon", None, R, Opt::StartDaemon),
        spec("stop-daemon", None, R, Opt::StopDaemon),
        spec("tcp-service", Some('t'), R, Opt::TcpService),
        spec("udp-service", Some('u'), R, Opt::UdpService),
        spec("sctp-service", None, R, Opt::SctpService),
        spec("fwmark-service", Some('f'), R, Opt::FwmarkService),
        spec("scheduler", Some('s'), R, Opt::Scheduler),
        spec("persistent", Some('p'), O, Opt::Persistent),
        spec("netmask", Some('M'), R, Opt::Netmask),
        spec("real-server", Some('r'), R, Opt::RealServer),
        spec("masquerading", Some('m'), N, Opt::Masquerading),
        spec("ipip", Some('i'), N, Opt::Ipip),
        spec("gatewaying", Some('g'), N, Opt::Gatewaying),
        spec("weight", Some('w'), R, Opt::Weight),
        spec("u-threshold", Some('x'), R, Opt::UThreshold),
        spec("l-threshold", Some('y'), R, Opt::LThreshold),
        spec("numeric", Some('n'), N, Opt::Numeric),
        spec("connection", Some('c'), N, Opt::Connection),
        spec("mcast-interface", None, R, Opt::McastInterface),
        spec("syncid", None, R, Opt::SyncId),
        spec("timeout", None, N, Opt::Timeout),
        spec("daemon", None, N, Opt::Daemon),
        spec("stats", None, N, Opt::Stats),
        spec("rate", None, N, Opt::Rate),
        spec("thresholds", None, N, Opt::Thresholds),
        spec("persistent-conn", None, N, Opt::PersistentConn),
        spec("nosort", None, N, Opt::NoSort),
        spec("sort", None, N, Opt::Sort),
        spec("exact", Some('X'), N, Opt::Exact),
        spec("ipv6", Some('6'), N, Opt::Ipv6),
        spec("ops", Some('o'), N, Opt::Ops),
        spec("pe", None, R, Opt::Pe),
        spec("sched-flags", Some('b'), R, Opt::SchedFlags),
        spec("mcast-group", None, R, Opt::McastGroup),
        spec("mcast-port", None, R, Opt::McastPort),
        spec("mcast-ttl", None, R, Opt::McastTtl),
        spec("sync-maxlen", None, R, Opt::SyncMaxlen),
        spec("tun-info", None, N, Opt::TunInfo),
        spec("tun-type", None, R, Opt::TunType),
        spec("tun-port", None, R, Opt::TunPort),
        spec("tun-nocsum", None, N, Opt::TunNocsum),
        spec("tun-csum", None, N, Opt::TunCsum),
        spec("tun-remcsum", None, N, Opt::TunRemcsum),
    ]
};

pub(crate) fn find_long(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.long == name)
}

pub(crate) fn find_short(c: char) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.short == Some(c))
}

/// ipvsadm's commands, in the order of its compatibility table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// The name ipvsadm's messages use for the command.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }

    /// Which options the command requires (`+`), refuses (`x`), allows only one of (`1`) or
    /// merely allows (`.`): one column per [`Bit`], in [`Bit`] order (ipvsadm's table).
    fn row(self) -> &'static [u8; Bit::COUNT] {
        match self {
            Cmd::Add | Cmd::Edit => b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx",
            Cmd::Del => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::List => b".11xxxxxxxxx11.......xxxxxxx.xxxxx",
            Cmd::AddDest | Cmd::EditDest => b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....",
            Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::StartDaemon => b"xxxxxxxxxxx.xxxxxxx.xxxx....xxxxxx",
            Cmd::StopDaemon => b"xxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxx",
            Cmd::Save => b".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Zero => b"xx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        }
    }
}

/// The options ipvsadm tracks for its checks (its `OPTC_*`), in table order. An option given
/// twice is refused ("multiple ... options specified"); `-t`, `-u`, `-f` and `--sctp-service`
/// share one bit, as do `-g`, `-i` and `-m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bit {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    OnePacket,
    PersistenceEngine,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

impl Bit {
    pub const COUNT: usize = 34;

    /// The name ipvsadm's messages use for the option.
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    fn mask(self) -> u64 {
        1 << self as u32
    }
}

const NAMES: [&str; Bit::COUNT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// All bits in table order, to walk the table.
const ALL_BITS: [Bit; Bit::COUNT] = [
    Bit::Numeric,
    Bit::Connection,
    Bit::Service,
    Bit::Scheduler,
    Bit::Persistent,
    Bit::Netmask,
    Bit::Server,
    Bit::Forward,
    Bit::Weight,
    Bit::UThreshold,
    Bit::LThreshold,
    Bit::Mcast,
    Bit::Timeout,
    Bit::Daemon,
    Bit::Stats,
    Bit::Rate,
    Bit::Thresholds,
    Bit::PersistentConn,
    Bit::NoSort,
    Bit::SyncId,
    Bit::Exact,
    Bit::OnePacket,
    Bit::PersistenceEngine,
    Bit::SchedFlags,
    Bit::McastGroup,
    Bit::McastPort,
    Bit::McastTtl,
    Bit::SyncMaxlen,
    Bit::TunInfo,
    Bit::TunType,
    Bit::TunPort,
    Bit::TunNocsum,
    Bit::TunCsum,
    Bit::TunRemcsum,
];

/// The set of options seen so far on one command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OptionSet(u64);

impl OptionSet {
    /// Records an option; a second occurrence is refused as ipvsadm refuses it.
    pub fn set(&mut self, bit: Bit) -> Result<(), CliError> {
        if self.has(bit) {
            return Err(CliError::usage(format!(
                "multiple '{}' options specified",
                bit.name()
            )));
        }
        self.0 |= bit.mask();
        Ok(())
    }

    pub fn has(self, bit: Bit) -> bool {
        self.0 & bit.mask() != 0
    }

    /// ipvsadm's `generic_opt_check`: required options present, refused ones absent, at most
    /// one of the exclusive ones; the first offending column (in table order) is reported.
    pub fn check(self, cmd: Cmd) -> Result<(), CliError> {
        let row = cmd.row();
        let mut exclusive: Option<Bit> = None;
        for (bit, &rule) in ALL_BITS.iter().zip(row) {
            let given = self.has(*bit);
            match (rule, given) {
                (b'+', false) => {
                    return Err(CliError::usage(format!(
                        "You need to supply the '{}' option for the '{}' command",
                        bit.name(),
                        cmd.name()
                    )));
                }
                (b'x', true) => {
                    return Err(CliError::usage(format!(
                        "Illegal '{}' option with the '{}' command",
                        bit.name(),
                        cmd.name()
                    )));
                }
                (b'1', true) => match exclusive {
                    None => exclusive = Some(*bit),
                    Some(first) => {
                        return Err(CliError::usage(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            bit.name(),
                            first.name(),
                            cmd.name()
                        )));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_in_table_order() {
        for (i, bit) in ALL_BITS.iter().enumerate() {
            assert_eq!(*bit as usize, i);
        }
    }

    #[test]
    fn short_and_long_names_are_unique() {
        for (i, a) in SPECS.iter().enumerate() {
            for b in &SPECS[i + 1..] {
                if a.short.is_some() {
                    assert_ne!(a.short, b.short, "{}", a.long);
                }
                // `list` is the one long name listed twice, for -L and -l.
                if a.long != "list" {
                    assert_ne!(a.long, b.long);
                }
            }
        }
        assert_eq!(find_long("list").map(|s| s.short), Some(Some('L')));
        assert_eq!(find_short('l').map(|s| s.opt), Some(Opt::List));
        assert!(find_short('q').is_none());
    }

    #[test]
    fn required_option_missing() {
        let mut set = OptionSet::default();
        set.set(Bit::Service).unwrap();
        assert_eq!(
            set.check(Cmd::AddDest).unwrap_err().to_string(),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert_eq!(
            OptionSet::default()
                .check(Cmd::Add)
                .unwrap_err()
                .to_string(),
            "You need to supply the 'service-address' option for the 'add-service' command"
        );
    }

    #[test]
    fn illegal_option() {
        let mut set = OptionSet::default();
        set.set(Bit::Service).unwrap();
        set.set(Bit::Scheduler).unwrap();
        assert_eq!(
            set.check(Cmd::Del).unwrap_err().to_string(),
            "Illegal 'scheduler' option with the 'delete-service' command"
        );
    }

    #[test]
    fn exclusive_options() {
        let mut set = OptionSet::default();
        set.set(Bit::Connection).unwrap();
        set.set(Bit::Timeout).unwrap();
        assert_eq!(
            set.check(Cmd::List).unwrap_err().to_string(),
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
        );
    }

    #[test]
    fn repeated_option() {
        let mut set = OptionSet::default();
        set.set(Bit::Forward).unwrap();
        assert_eq!(
            set.set(Bit::Forward).unwrap_err().to_string(),
            "multiple 'forwarding-method' options specified"
        );
    }

    #[test]
    fn allowed_combinations_pass() {
        let mut set = OptionSet::default();
        for bit in [
            Bit::Service,
            Bit::Server,
            Bit::Forward,
            Bit::Weight,
            Bit::UThreshold,
        ] {
            set.set(bit).unwrap();
        }
        set.check(Cmd::AddDest).unwrap();
        set.check(Cmd::EditDest).unwrap();
        let mut list = OptionSet::default();
        for bit in [
            Bit::Numeric,
            Bit::Stats,
            Bit::Exact,
            Bit::NoSort,
            Bit::TunInfo,
        ] {
            list.set(bit).unwrap();
        }
        list.check(Cmd::List).unwrap();
        OptionSet::default().check(Cmd::Flush).unwrap();
        OptionSet::default().check(Cmd::Zero).unwrap();
    }
}
