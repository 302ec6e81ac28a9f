//! Hand-assembled XDP programs: the baselines lb is measured against, and a wrapper that puts
//! a packet back as it was before tail-calling the program under test.
//!
//! Why the wrapper: BPF_PROG_TEST_RUN with `repeat` runs the program again and again on the
//! same buffer, so a program that changes the packet sees its own output next time. A MAC
//! rewrite (DR) is the same every time, but IP-in-IP encapsulation, NAT and decapsulation are
//! not: from the second run on they would measure some other path. The wrapper restores the
//! original length and bytes, then tail-calls the program; it costs the same in front of the
//! floor program, so such paths are compared with "wrapper + floor". For new connections the
//! wrapper also writes a counter into the source address, so that every run is a new flow.
//!
//! Encoding (`struct bpf_insn`, little-endian): opcode, dst and src registers in one byte,
//! a 16-bit offset and a 32-bit immediate.

/// One instruction.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | (u64::from(dst & 0xf) << 8)
        | (u64::from(src & 0xf) << 12)
        | (u64::from(off as u16) << 16)
        | (u64::from(imm as u32) << 32)
}

// Opcodes (class | size/op | mode/source).
const LDX_W: u8 = 0x61;
const LDX_H: u8 = 0x69;
const STX_W: u8 = 0x63;
const STX_H: u8 = 0x6b;
const ST_W: u8 = 0x62;
const ST_H: u8 = 0x6a;
const ST_B: u8 = 0x72;
const MOV_K: u8 = 0xb7;
const MOV_X: u8 = 0xbf;
const ADD_K: u8 = 0x07;
const SUB_K: u8 = 0x17;
const JEQ_K: u8 = 0x15;
const JGT_X: u8 = 0x2d;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const LD_IMM64: u8 = 0x18;
/// `src` of LD_IMM64 when the immediate is a map's file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_TAIL_CALL: i32 = 12;
const HELPER_XDP_ADJUST_HEAD: i32 = 44;
const HELPER_XDP_GET_BUFF_LEN: i32 = 188;

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// `r0 = action; exit`: the cheapest possible program.
pub fn verdict_only(action: u32) -> Vec<u64> {
    vec![insn(MOV_K, 0, 0, 0, action as i32), insn(EXIT, 0, 0, 0, 0)]
}

/// The floor of a load balancer: check that an Ethernet header is there, swap the two MAC
/// addresses and send the frame back out (XDP_TX); too short a frame is passed.
pub fn mac_swap_tx() -> Vec<u64> {
    vec![
        insn(LDX_W, 2, 1, 0, 0), // r2 = ctx->data
        insn(LDX_W, 3, 1, 4, 0), // r3 = ctx->data_end
        insn(MOV_X, 4, 2, 0, 0), // r4 = r2
        insn(ADD_K, 4, 0, 0, 14),
        insn(JGT_X, 4, 3, 10, 0), // if r4 > r3 goto pass
        insn(LDX_W, 5, 2, 0, 0),  // destination MAC
        insn(LDX_H, 6, 2, 4, 0),
        insn(LDX_W, 7, 2, 6, 0), // source MAC
        insn(LDX_H, 8, 2, 10, 0),
        insn(STX_W, 2, 7, 0, 0),
        insn(STX_H, 2, 8, 4, 0),
        insn(STX_W, 2, 5, 6, 0),
        insn(STX_H, 2, 6, 10, 0),
        insn(MOV_K, 0, 0, 0, XDP_TX as i32),
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV_K, 0, 0, 0, XDP_PASS as i32), // pass:
        insn(EXIT, 0, 0, 0, 0),
    ]
}

/// A new flow every run: the wrapper writes a counter it keeps (in a one-`u32` array map) into
/// the frame at `offset` after restoring it, so that each run carries another source address.
#[derive(Clone, Copy)]
pub struct Vary {
    pub counter_map_fd: i32,
    pub offset: i16,
}

/// Restores the frame to `original` (its length with `bpf_xdp_adjust_head`, then every byte),
/// then tail-calls slot 0 of the program array `prog_array_fd`. Aborts if either fails.
pub fn restore_then_tail_call(original: &[u8], prog_array_fd: i32) -> Vec<u64> {
    restore_vary_then_tail_call(original, prog_array_fd, None)
}

/// [`restore_then_tail_call`], and with `vary` a new flow each run (see [`Vary`]).
pub fn restore_vary_then_tail_call(
    original: &[u8],
    prog_array_fd: i32,
    vary: Option<Vary>,
) -> Vec<u64> {
    let len = original.len() as i32;
    let mut p = vec![
        insn(MOV_X, 6, 1, 0, 0), // r6 = ctx
        insn(CALL, 0, 0, 0, HELPER_XDP_GET_BUFF_LEN),
        insn(MOV_X, 2, 0, 0, 0), // r2 = len - original len: what to take off the front
        insn(SUB_K, 2, 0, 0, len),
        insn(JEQ_K, 2, 0, 2, 0), // same length: skip the adjustment
        insn(MOV_X, 1, 6, 0, 0),
        insn(CALL, 0, 0, 0, HELPER_XDP_ADJUST_HEAD),
        insn(LDX_W, 7, 6, 0, 0), // r7 = ctx->data (packet pointers are new after the helper)
        insn(LDX_W, 8, 6, 4, 0), // r8 = ctx->data_end
        insn(MOV_X, 9, 7, 0, 0),
        insn(ADD_K, 9, 0, 0, len),
    ];
    let stores: Vec<u64> = {
        let mut v = Vec::new();
        let mut at = 0usize;
        while at < original.len() {
            let rest = original.len() - at;
            let (code, width) = if rest >= 4 {
                (ST_W, 4)
            } else if rest >= 2 {
                (ST_H, 2)
            } else {
                (ST_B, 1)
            };
            let mut bytes = [0u8; 4];
            bytes[..width].copy_from_slice(&original[at..at + width]);
            let imm = u32::from_le_bytes(bytes) as i32;
            v.push(insn(code, 7, 0, at as i16, imm));
            at += width;
        }
        v
    };
    // The counter: r1 = ++counter, written into the frame (r7 and its checked range survive
    // the map lookup, which does not change the packet).
    let bump: Vec<u64> = match vary {
        None => Vec::new(),
        Some(Vary {
            counter_map_fd,
            offset,
        }) => vec![
            insn(ST_W, 10, 0, -4, 0), // key 0 on the stack
            insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, counter_map_fd),
            insn(0, 0, 0, 0, 0),
            insn(MOV_X, 2, 10, 0, 0),
            insn(ADD_K, 2, 0, 0, -4),
            insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM),
            insn(JEQ_K, 0, 0, 9, 0), // no value: abort (skipping 4 + the 5-insn tail call)
            insn(LDX_W, 1, 0, 0, 0),
            insn(ADD_K, 1, 0, 0, 1),
            insn(STX_W, 0, 1, 0, 0),
            insn(STX_W, 7, 1, offset, 0),
        ],
    };
    // if r9 > r8 goto abort (skipping the stores, the bump and the 5-instruction tail call).
    p.push(insn(JGT_X, 9, 8, (stores.len() + bump.len() + 5) as i16, 0));
    p.extend(stores);
    p.extend(bump);
    p.extend([
        insn(MOV_X, 1, 6, 0, 0),
        insn(LD_IMM64, 2, PSEUDO_MAP_FD, 0, prog_array_fd),
        insn(0, 0, 0, 0, 0),
        insn(MOV_K, 3, 0, 0, 0),
        insn(CALL, 0, 0, 0, HELPER_TAIL_CALL),
        // abort: (also reached when the tail call finds no program)
        insn(MOV_K, 0, 0, 0, XDP_ABORTED as i32),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_expects() {
        // `r0 = 2` (BPF_ALU64 | BPF_MOV | BPF_K), as in xdp_pass.rs.
        assert_eq!(verdict_only(XDP_PASS)[0], 0xb7 | (2u64 << 32));
        // `r2 = *(u32 *)(r1 + 4)`: dst in the low nibble, src in the high one.
        assert_eq!(insn(LDX_W, 2, 1, 4, 0), 0x61 | (0x12 << 8) | (4 << 16));
        // Negative offsets keep 16 bits.
        assert_eq!(insn(0x05, 0, 0, -1, 0) >> 16 & 0xffff, 0xffff);
    }

    #[test]
    fn the_restore_wrapper_writes_every_byte_once() {
        let original: Vec<u8> = (1..=7).collect();
        let p = restore_then_tail_call(&original, 5);
        let stores: Vec<(u8, i16)> = p
            .iter()
            .map(|&i| ((i & 0xff) as u8, (i >> 16) as u16 as i16))
            .filter(|(code, _)| [ST_W, ST_H, ST_B].contains(code))
            .collect();
        assert_eq!(stores, [(ST_W, 0), (ST_H, 4), (ST_B, 6)]);
        // The bounds check jumps exactly past the stores and the tail call, to the abort.
        let check = p
            .iter()
            .position(|&i| i & 0xff == u64::from(JGT_X))
            .unwrap();
        let off = (p[check] >> 16) as u16 as usize;
        assert_eq!(p[check + 1 + off] & 0xff, u64::from(MOV_K));
        assert_eq!(p[check + 1 + off] >> 32, u64::from(XDP_ABORTED));
    }
}
