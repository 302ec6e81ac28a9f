//! IPVS's TCP connection states and transitions, shared by the data path (which applies them
//! per packet) and user space (which names them and picks timeouts).
//!
//! The numbering and the tables follow `net/netfilter/ipvs/ip_vs_proto_tcp.c`. For DR and TUN
//! the director sees only the client's half of the conversation, so IPVS uses its
//! "input-only" table there; NAT sees both halves and uses the input/output tables.

pub const NONE: u8 = 0;
pub const ESTABLISHED: u8 = 1;
pub const SYN_SENT: u8 = 2;
pub const SYN_RECV: u8 = 3;
pub const FIN_WAIT: u8 = 4;
pub const TIME_WAIT: u8 = 5;
pub const CLOSE: u8 = 6;
pub const CLOSE_WAIT: u8 = 7;
pub const LAST_ACK: u8 = 8;
pub const LISTEN: u8 = 9;
pub const SYNACK: u8 = 10;
/// Not a TCP state: the pseudo-state of UDP flows.
pub const UDP: u8 = 11;

const STATES: usize = 11;

/// Which half of the conversation a packet belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server, for a service whose replies we see (NAT).
    Input,
    /// Real server to client (NAT replies).
    Output,
    /// Client to real server when replies bypass the director (DR, TUN).
    InputOnly,
}

// Short names keep the tables readable, as in the kernel source.
#[expect(dead_code, reason = "kept so the table header names every column")]
const NO: u8 = NONE;
const ES: u8 = ESTABLISHED;
const SS: u8 = SYN_SENT;
const SR: u8 = SYN_RECV;
const FW: u8 = FIN_WAIT;
const TW: u8 = TIME_WAIT;
const CL: u8 = CLOSE;
const CW: u8 = CLOSE_WAIT;
const LA: u8 = LAST_ACK;
const LI: u8 = LISTEN;
#[expect(dead_code, reason = "kept so the table header names every column")]
const SA: u8 = SYNACK;

// Rows: events syn, fin, ack, rst. Columns: current state NO ES SS SR FW TW CL CW LA LI SA.
// As in current kernels, an ACK for an unknown connection starts it ESTABLISHED (this is what
// lets a flow continue on a backup director or after the table lost it).
const INPUT: [[u8; STATES]; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const OUTPUT: [[u8; STATES]; 4] = [
    [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const INPUT_ONLY: [[u8; STATES]; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// The state after a packet with TCP `flags` in `direction`, from `state`.
/// Packets that carry none of RST/SYN/FIN/ACK leave the state unchanged (as in IPVS).
#[inline(always)]
pub fn next(state: u8, flags: u8, direction: Direction) -> u8 {
    // IPVS checks RST first, then SYN, FIN, ACK.
    let event = if flags & TCP_RST != 0 {
        3
    } else if flags & TCP_SYN != 0 {
        0
    } else if flags & TCP_FIN != 0 {
        1
    } else if flags & TCP_ACK != 0 {
        2
    } else {
        return state;
    };
    let column = state as usize;
    if column >= STATES {
        return state;
    }
    let table = match direction {
        Direction::Input => &INPUT,
        Direction::Output => &OUTPUT,
        Direction::InputOnly => &INPUT_ONLY,
    };
    table[event][column]
}

/// Whether IPVS counts a connection in `state` as active (`tcp_state_active_table`): while
/// it is being set up or established; closing ones, and UDP flows, count as inactive.
#[inline(always)]
pub const fn is_active(state: u8) -> bool {
    matches!(state, ESTABLISHED | SYN_SENT | SYN_RECV | SYNACK)
}

/// IPVS's default timeouts (`ipvsadm --set`): established TCP, FIN_WAIT, UDP, in seconds.
pub const DEFAULT_TCP_TIMEOUT: u32 = 900;
pub const DEFAULT_TCP_FIN_TIMEOUT: u32 = 120;
pub const DEFAULT_UDP_TIMEOUT: u32 = 300;

/// Seconds of inactivity after which IPVS expires a connection in `state`
/// (`ip_vs_proto_tcp.c` `tcp_timeouts`), given the three that `--set` changes (0: the
/// default).
#[inline(always)]
pub const fn timeout_secs(state: u8, tcp: u32, tcp_fin: u32, udp: u32) -> u32 {
    const fn or(value: u32, default: u32) -> u32 {
        if value == 0 { default } else { value }
    }
    match state {
        ESTABLISHED => or(tcp, DEFAULT_TCP_TIMEOUT),
        FIN_WAIT => or(tcp_fin, DEFAULT_TCP_FIN_TIMEOUT),
        UDP => or(udp, DEFAULT_UDP_TIMEOUT),
        SYN_SENT | TIME_WAIT | LISTEN | SYNACK => 120,
        SYN_RECV | CLOSE_WAIT => 60,
        LAST_ACK => 30,
        CLOSE => 10,
        _ => 2,
    }
}

/// The name ipvsadm prints for a state (`-L -c`).
pub const fn name(state: u8) -> &'static str {
    match state {
        NONE => "NONE",
        ESTABLISHED => "ESTABLISHED",
        SYN_SENT => "SYN_SENT",
        SYN_RECV => "SYN_RECV",
        FIN_WAIT => "FIN_WAIT",
        TIME_WAIT => "TIME_WAIT",
        CLOSE => "CLOSE",
        CLOSE_WAIT => "CLOSE_WAIT",
        LAST_ACK => "LAST_ACK",
        LISTEN => "LISTEN",
        SYNACK => "SYNACK",
        UDP => "UDP",
        _ => "ERR!",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dr_handshake_data_and_close() {
        let d = Direction::InputOnly;
        let s = next(NONE, TCP_SYN, d);
        assert_eq!(s, SYN_RECV);
        let s = next(s, TCP_ACK, d);
        assert_eq!(s, ESTABLISHED);
        let s = next(s, TCP_ACK | 0x08, d);
        assert_eq!(s, ESTABLISHED);
        let s = next(s, TCP_FIN | TCP_ACK, d);
        assert_eq!(s, FIN_WAIT);
        let s = next(s, TCP_ACK, d);
        assert_eq!(s, FIN_WAIT);
        assert_eq!(next(s, TCP_RST, d), CLOSE);
        assert_eq!(next(NONE, TCP_ACK, d), ESTABLISHED);
    }

    #[test]
    fn nat_both_directions() {
        let s = next(NONE, TCP_SYN, Direction::Input);
        assert_eq!(s, SYN_RECV);
        let s = next(s, TCP_SYN | TCP_ACK, Direction::Output);
        assert_eq!(s, SYN_RECV);
        let s = next(s, TCP_ACK, Direction::Input);
        assert_eq!(s, ESTABLISHED);
        let s = next(s, TCP_FIN | TCP_ACK, Direction::Output);
        assert_eq!(s, FIN_WAIT);
        let s = next(s, TCP_FIN | TCP_ACK, Direction::Input);
        assert_eq!(s, TIME_WAIT);
    }

    #[test]
    fn flagless_packets_and_bad_states_do_not_move() {
        assert_eq!(next(ESTABLISHED, 0x08, Direction::InputOnly), ESTABLISHED);
        assert_eq!(next(UDP, TCP_SYN, Direction::InputOnly), UDP);
        assert_eq!(name(ESTABLISHED), "ESTABLISHED");
        assert!(is_active(ESTABLISHED) && is_active(SYN_RECV) && !is_active(FIN_WAIT));
        assert!(!is_active(UDP) && !is_active(TIME_WAIT));
    }
}
