//! The compiled XDP program, embedded at build time by `build.rs`.

/// Bytes of the eBPF object file (ELF) holding lb's XDP programs and maps.
pub fn ebpf_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb"))
}
