//! A two-instruction XDP program that passes every frame, attached to a veth so that frames
//! its peer sends back with native `XDP_TX` are delivered (PLATFORM.md: native XDP_TX on a veth
//! is delivered only if the peer has a native XDP program).
//!
//! It is loaded with the `bpf(2)` system call directly and attached through a BPF link, so no
//! object file, bpffs mount or loader library is needed; closing the returned descriptor
//! detaches it (so does deleting the interface).

use std::{
    ffi::CString,
    fs::File,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_PASS: i32 = 2;

/// `r0 = XDP_PASS; exit`.
fn pass_program() -> [u64; 2] {
    // BPF_ALU64 | BPF_MOV | BPF_K (0xb7), dst r0, imm in the upper 32 bits.
    let mov_r0 = 0xb7u64 | (u64::from(XDP_PASS as u32) << 32);
    // BPF_JMP | BPF_EXIT.
    let exit = 0x95u64;
    [mov_r0, exit]
}

/// The union `bpf_attr`, large enough for the commands used here; unused bytes must be zero.
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

impl BpfAttr {
    fn new() -> Self {
        Self([0; 128])
    }

    fn put_u32(&mut self, offset: usize, value: u32) {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
    }

    fn put_u64(&mut self, offset: usize, value: u64) {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
    }
}

fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-filled, 8-aligned buffer of the size we pass, holding a valid
    // bpf_attr for `cmd`; pointers inside it outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<BpfAttr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success these commands return a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

fn load_pass_program() -> io::Result<OwnedFd> {
    let insns = pass_program();
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut attr = BpfAttr::new();
    attr.put_u32(0, BPF_PROG_TYPE_XDP); // prog_type
    attr.put_u32(4, insns.len() as u32); // insn_cnt
    attr.put_u64(8, insns.as_ptr() as u64); // insns
    attr.put_u64(16, license.as_ptr() as u64); // license
    attr.put_u32(24, 1); // log_level
    attr.put_u32(28, log.len() as u32); // log_size
    attr.put_u64(32, log.as_mut_ptr() as u64); // log_buf
    attr.0[48..48 + 7].copy_from_slice(b"lb_pass"); // prog_name
    attr.put_u32(68, BPF_XDP); // expected_attach_type
    bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        io::Error::new(
            e.kind(),
            format!(
                "loading XDP_PASS program: {e}: {}",
                String::from_utf8_lossy(&log[..end])
            ),
        )
    })
}

fn link_create(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = BpfAttr::new();
    attr.put_u32(0, prog.as_raw_fd() as u32); // link_create.prog_fd
    attr.put_u32(4, ifindex); // link_create.target_ifindex
    attr.put_u32(8, BPF_XDP); // link_create.attach_type
    attr.put_u32(12, XDP_FLAGS_DRV_MODE); // link_create.flags
    bpf(BPF_LINK_CREATE, &mut attr)
}

/// Attaches an XDP_PASS program in native (driver) mode to interface `ifname` of the named
/// network namespace `netns`. The program stays attached while the returned link is open.
pub fn attach(netns: &str, ifname: &str) -> io::Result<OwnedFd> {
    let netns_path = format!("/run/netns/{netns}");
    let ifname = CString::new(ifname).expect("interface name has no NUL");
    // Interface indexes are per namespace, and bpf(2) resolves target_ifindex in the calling
    // thread's namespace: do it from a short-lived thread that enters `netns`.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = File::open(&netns_path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{netns_path}: {e}")))?;
                // SAFETY: setns(2) on a namespace fd we hold open; it changes only this
                // thread's network namespace, and this thread ends right after.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: a valid NUL-terminated string.
                let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
                if ifindex == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no interface {ifname:?} in namespace {netns}"),
                    ));
                }
                let prog = load_pass_program()?;
                link_create(&prog, ifindex).map_err(|e| {
                    io::Error::new(e.kind(), format!("attaching XDP_PASS to {ifname:?}: {e}"))
                })
            })
            .join()
            .expect("attach thread panicked")
    })
}
