//! The `bpf(2)` commands the benchmarks need beyond aya: loading hand-assembled programs (the
//! baselines), a program array for tail calls, BPF_PROG_TEST_RUN with every option (repeat,
//! `ctx_in`, live frames), and what the kernel says about a map's memory.
//!
//! Everything is a thin wrapper over the system call with the `bpf_attr` offsets of
//! `include/uapi/linux/bpf.h` spelled out where they are used.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    time::Duration,
};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;

const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`: XDP_TX and XDP_REDIRECT really send the frames.
pub const F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The union `bpf_attr`, large enough for the commands used here; unused bytes must be zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Self([0; 128])
    }

    fn u32(&mut self, offset: usize, value: u32) -> &mut Self {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64(&mut self, offset: usize, value: u64) -> &mut Self {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn get_u32(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.0[offset..offset + 4].try_into().expect("4 bytes"))
    }
}

fn sys_bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a zero-filled, 8-aligned buffer of the size we pass, holding a valid
    // bpf_attr for `cmd`; every pointer inside it refers to memory that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn new_fd(ret: i64) -> OwnedFd {
    // SAFETY: the commands that return a descriptor return a new one that we now own.
    unsafe { OwnedFd::from_raw_fd(ret as RawFd) }
}

/// Loads `insns` as an XDP program named `name` (at most 15 bytes); the verifier's log is in
/// the error.
pub fn load_xdp(name: &str, insns: &[u64]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_XDP) // prog_type
        .u32(4, insns.len() as u32) // insn_cnt
        .u64(8, insns.as_ptr() as u64) // insns
        .u64(16, license.as_ptr() as u64) // license
        .u32(24, 1) // log_level
        .u32(28, log.len() as u32) // log_size
        .u64(32, log.as_mut_ptr() as u64) // log_buf
        .u32(68, BPF_XDP); // expected_attach_type
    let name = name.as_bytes();
    let len = name.len().min(15);
    attr.0[48..48 + len].copy_from_slice(&name[..len]); // prog_name
    sys_bpf(BPF_PROG_LOAD, &mut attr).map(new_fd).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        io::Error::new(
            e.kind(),
            format!(
                "loading XDP program: {e}; verifier log:\n{}",
                String::from_utf8_lossy(&log[..end])
            ),
        )
    })
}

/// A program array of one slot, for a tail call.
pub fn prog_array() -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, BPF_MAP_TYPE_PROG_ARRAY) // map_type
        .u32(4, 4) // key_size
        .u32(8, 4) // value_size
        .u32(12, 1); // max_entries
    sys_bpf(BPF_MAP_CREATE, &mut attr).map(new_fd)
}

/// An array of one `u32` (a counter a hand-assembled program keeps).
pub fn counter_array() -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, BPF_MAP_TYPE_ARRAY) // map_type
        .u32(4, 4) // key_size
        .u32(8, 4) // value_size
        .u32(12, 1); // max_entries
    sys_bpf(BPF_MAP_CREATE, &mut attr).map(new_fd)
}

/// Puts program `prog` into slot 0 of program array `map`.
pub fn set_tail_call(map: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let key = 0u32;
    let value = prog.as_raw_fd() as u32;
    let mut attr = Attr::new();
    attr.u32(0, map.as_raw_fd() as u32) // map_fd
        .u64(8, &key as *const u32 as u64) // key
        .u64(16, &value as *const u32 as u64) // value
        .u64(24, 0); // flags: BPF_ANY
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
}

/// One BPF_PROG_TEST_RUN of an XDP program.
pub struct TestRun<'a> {
    pub prog: BorrowedFd<'a>,
    pub data: &'a [u8],
    /// The `xdp_md` given as `ctx_in` names this interface (of the calling thread's network
    /// namespace) as the one the frame arrived on; 0 for the kernel's default (loopback).
    pub ingress_ifindex: u32,
    pub repeat: u32,
    pub flags: u32,
    /// Frames per batch in live-frames mode (0: the kernel's default, 64).
    pub batch_size: u32,
}

/// What a test run returned.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The XDP action of the last run.
    pub verdict: u32,
    /// The kernel's own average per run (whole nanoseconds).
    pub kernel_ns: u32,
    /// CPU time the calling thread spent in the system call (it includes the kernel's loop
    /// overhead and the one-off setup, which is tiny next to many repeats).
    pub thread_cpu: Duration,
    /// Wall-clock time of the system call.
    pub wall: Duration,
    /// The packet as the last run left it (empty in live-frames mode).
    pub data_out: Vec<u8>,
}

/// `struct xdp_md` as `ctx_in`: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
/// egress_ifindex. The kernel wants no metadata and `data_end` equal to the input's length.
fn xdp_md(len: usize, ingress_ifindex: u32) -> [u32; 6] {
    [0, len as u32, 0, ingress_ifindex, 0, 0]
}

pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass; the clock id is valid.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl TestRun<'_> {
    pub fn run(&self) -> io::Result<RunResult> {
        let live = self.flags & F_TEST_XDP_LIVE_FRAMES != 0;
        // Room for rewrites that grow the packet (IP-in-IP adds 20 bytes).
        let mut out = vec![0u8; if live { 0 } else { self.data.len() + 256 }];
        let ctx = xdp_md(self.data.len(), self.ingress_ifindex);
        let mut attr = Attr::new();
        attr.u32(0, self.prog.as_raw_fd() as u32) // prog_fd
            .u32(8, self.data.len() as u32) // data_size_in
            .u64(16, self.data.as_ptr() as u64) // data_in
            .u32(32, self.repeat) // repeat
            .u32(64, self.flags) // flags
            .u32(72, self.batch_size); // batch_size
        if !live {
            attr.u32(12, out.len() as u32) // data_size_out
                .u64(24, out.as_mut_ptr() as u64); // data_out
        }
        if self.ingress_ifindex != 0 {
            attr.u32(40, std::mem::size_of_val(&ctx) as u32) // ctx_size_in
                .u64(48, ctx.as_ptr() as u64); // ctx_in
        }
        let cpu_before = thread_cpu_time();
        let wall_before = std::time::Instant::now();
        let result = sys_bpf(BPF_PROG_TEST_RUN, &mut attr);
        let wall = wall_before.elapsed();
        let thread_cpu = thread_cpu_time().saturating_sub(cpu_before);
        result.map_err(|e| io::Error::new(e.kind(), format!("BPF_PROG_TEST_RUN: {e}")))?;
        let out_len = attr.get_u32(12) as usize;
        out.truncate(out_len.min(out.len()));
        Ok(RunResult {
            verdict: attr.get_u32(4),
            kernel_ns: attr.get_u32(36),
            thread_cpu,
            wall,
            data_out: out,
        })
    }
}

/// The kernel's estimate of the memory a map uses (the `memlock` line of its fdinfo).
pub fn map_memlock(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    let text = std::fs::read_to_string(&path)?;
    text.lines()
        .find_map(|line| line.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no memlock line in {path}")))
}

/// Pins the calling thread to `cpu`, so repeated measurements do not migrate.
pub fn pin_thread_to(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity only touch the
    // set we pass, for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

const BPF_LINK_CREATE: libc::c_long = 28;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// Attaches XDP program `prog` in native (driver) mode to interface `ifindex` of the calling
/// thread's network namespace; it stays attached while the returned link is open.
pub fn attach_xdp_native(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, prog.as_raw_fd() as u32) // link_create.prog_fd
        .u32(4, ifindex) // link_create.target_ifindex
        .u32(8, BPF_XDP) // link_create.attach_type
        .u32(12, XDP_FLAGS_DRV_MODE); // link_create.flags
    sys_bpf(BPF_LINK_CREATE, &mut attr).map(new_fd)
}
