//! Where the data path's state lives between lbd runs: the BPF filesystem.
//!
//! Every map that holds state (services, real servers, scheduling tables, connections,
//! persistence templates, lblc/lblcr locality tables, counters, the pre-filter's sets) and
//! the XDP link on each interface are pinned under `<base>/v<LAYOUT_VERSION>/`. A restarted or upgraded lbd re-adopts them: its new program
//! takes over the existing links atomically (`bpf_link_update`) and works on the same maps, so
//! established connections keep flowing while lbd is down and after it is back. A pinned
//! state with another map layout is refused with a clear message instead of being misread.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use aya::maps::MapData;
use lb_common::{
    Conn, Counters, FlowKey, Iface, LAYOUT_VERSION, Locality, LocalityKey, Persist, PersistKey,
    RealConns, RealServer, Service, ServiceKey, ServiceState, maps,
};

/// Default base directory on the BPF filesystem.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf/lb";

/// The maps kept across restarts, with their key and value sizes. (lblcr's per-CPU scratch
/// value holds nothing between packets and is not among them.)
pub const PINNED_MAPS: [(&str, usize, usize); 16] = [
    (
        maps::SERVICES,
        size_of::<ServiceKey>(),
        size_of::<Service>(),
    ),
    (maps::REALS, 4, size_of::<RealServer>()),
    (maps::REAL_SLOT, 4, 4),
    (maps::SCHED_TABLE, 4, 4),
    (maps::SERVICE_STATE, 4, size_of::<ServiceState>()),
    (maps::CONNS, size_of::<FlowKey>(), size_of::<Conn>()),
    (maps::HALF_OPEN, size_of::<FlowKey>(), size_of::<Conn>()),
    (maps::REAL_CONNS, 4, size_of::<RealConns>()),
    (maps::PERSIST, size_of::<PersistKey>(), size_of::<Persist>()),
    (
        maps::LOCALITY,
        size_of::<LocalityKey>(),
        size_of::<Locality>(),
    ),
    (maps::IFACES, 4, size_of::<Iface>()),
    (maps::SERVICE_STATS, 4, size_of::<Counters>()),
    (maps::REAL_STATS, 4, size_of::<Counters>()),
    (maps::DP_STATS, 4, 8),
    (maps::FILTER, 4, 8),
    (maps::SETTINGS, 4, size_of::<lb_common::Settings>()),
];

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path} holds data-path state of map layout {found}, this lbd uses layout \
         {LAYOUT_VERSION}: start the lbd that matches it, or run `lbd --cleanup` to remove it \
         (established connections through this director are then dropped)"
    )]
    OtherLayout { path: PathBuf, found: String },
    #[error(
        "pinned map {path} has key/value sizes {found:?}, expected {expected:?}: it was left by \
         an incompatible lbd; run `lbd --cleanup` to remove it"
    )]
    Mismatch {
        path: PathBuf,
        found: (u32, u32),
        expected: (u32, u32),
    },
    #[error(
        "{path} is not on a BPF filesystem: mount one (`mount -t bpf bpf DIR`) and point \
         --bpffs into it"
    )]
    NotBpffs { path: PathBuf },
    #[error(
        "{path} is in use by another lbd{}: one lbd per pin directory; stop it first (or give \
         this one another --bpffs)",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse { path: PathBuf, holder: Option<u32> },
    #[error("reading pinned map {path}: {source}")]
    Map {
        path: PathBuf,
        source: aya::maps::MapError,
    },
}

/// The pin directory of one lbd instance.
#[derive(Clone, Debug)]
pub struct PinDir {
    base: PathBuf,
}

impl PinDir {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        PinDir { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `<base>/v<LAYOUT_VERSION>`.
    pub fn dir(&self) -> PathBuf {
        self.base.join(format!("v{LAYOUT_VERSION}"))
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    pub fn link(&self, ifindex: u32) -> PathBuf {
        self.dir().join(format!("link-{ifindex}"))
    }

    /// Checks what is pinned before anything is loaded: refuses another layout version and
    /// maps whose sizes do not match ours. Returns whether state was found (a restart).
    pub fn check(&self) -> Result<bool, PinError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| PinError::Io { path, source }
        };
        let entries = match fs::read_dir(&self.base) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&self.base)(e)),
        };
        let ours = format!("v{LAYOUT_VERSION}");
        for entry in entries {
            let entry = entry.map_err(io_err(&self.base))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != ours {
                return Err(PinError::OtherLayout {
                    path: entry.path(),
                    found: name,
                });
            }
        }
        let mut found = false;
        for (name, key, value) in PINNED_MAPS {
            let path = self.map(name);
            if !path.exists() {
                continue;
            }
            found = true;
            let map = MapData::from_pin(&path).map_err(|source| PinError::Map {
                path: path.clone(),
                source,
            })?;
            let info = map.info().map_err(|source| PinError::Map {
                path: path.clone(),
                source,
            })?;
            let found_sizes = (info.key_size(), info.value_size());
            let expected = (key as u32, value as u32);
            if found_sizes != expected {
                return Err(PinError::Mismatch {
                    path,
                    found: found_sizes,
                    expected,
                });
            }
        }
        Ok(found)
    }

    /// Takes the pin directory for this process: an exclusive `flock` on `<base>` (created,
    /// with the BPF filesystem mounted under `/sys/fs/bpf` if need be), held until the
    /// returned lock is dropped or the process exits. Nothing else is touched, so a second
    /// lbd on the same directory is refused before it loads or writes anything; the message
    /// names the holder's pid (from `/proc/locks`). A hitless restart is unaffected: the new
    /// lbd starts once the old one has exited, and the kernel releases a lock with its holder.
    pub fn lock(&self) -> Result<InstanceLock, PinError> {
        use std::os::{fd::AsRawFd as _, unix::fs::MetadataExt as _};
        self.mount_if_needed()?;
        let io_err = |source| PinError::Io {
            path: self.base.clone(),
            source,
        };
        fs::create_dir_all(&self.base).map_err(io_err)?;
        let dir = fs::File::open(&self.base).map_err(io_err)?;
        // SAFETY: flock(2) on a descriptor we own.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io_err(e));
            }
            let meta = dir.metadata().map_err(io_err)?;
            let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
            return Err(PinError::InUse {
                path: self.base.clone(),
                holder: flock_holder(&locks, meta.dev(), meta.ino()),
            });
        }
        Ok(InstanceLock { _dir: dir })
    }

    fn mount_if_needed(&self) -> Result<(), PinError> {
        let sys_bpf = Path::new("/sys/fs/bpf");
        if self.base.starts_with(sys_bpf) && !is_bpffs(sys_bpf) {
            mount_bpffs(sys_bpf)?;
        }
        Ok(())
    }

    /// Creates the pin directory, mounting the BPF filesystem at `/sys/fs/bpf` first if the
    /// base lies there and nothing is mounted (as inside `ip netns exec`, which remounts /sys).
    pub fn create(&self) -> Result<(), PinError> {
        self.mount_if_needed()?;
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|source| PinError::Io {
            path: dir.clone(),
            source,
        })?;
        if !is_bpffs(&dir) {
            return Err(PinError::NotBpffs { path: dir });
        }
        Ok(())
    }

    /// Removes every pin (links first, so the programs detach) and the directories.
    pub fn remove_all(&self) -> Result<bool, PinError> {
        let entries = match fs::read_dir(&self.base) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(PinError::Io {
                    path: self.base.clone(),
                    source,
                });
            }
        };
        for version in entries.flatten() {
            let dir = version.path();
            let mut pins: Vec<PathBuf> = fs::read_dir(&dir)
                .map(|e| e.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            // Links first: removing their pins detaches the programs.
            pins.sort_by_key(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("link-"))
            });
            for pin in pins {
                fs::remove_file(&pin).map_err(|source| PinError::Io { path: pin, source })?;
            }
            fs::remove_dir(&dir).map_err(|source| PinError::Io { path: dir, source })?;
        }
        fs::remove_dir(&self.base).map_err(|source| PinError::Io {
            path: self.base.clone(),
            source,
        })?;
        Ok(true)
    }
}

/// A pin directory taken by this lbd ([`PinDir::lock`]).
#[derive(Debug)]
pub struct InstanceLock {
    _dir: fs::File,
}

/// The pid holding a `flock` on the file with device `dev` and inode `ino`, as
/// `/proc/locks` shows it: `1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF`, the device
/// as `major:minor` in hex.
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let file = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        // Blocked waiters ("1: -> FLOCK ...") hold nothing.
        let at = words.iter().position(|w| *w == "FLOCK")?;
        if words.get(1) == Some(&"->") || words.get(at + 4) != Some(&file.as_str()) {
            return None;
        }
        words.get(at + 3)?.parse().ok()
    })
}

/// The BPF filesystem's magic number (`statfs(2)` `f_type`).
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

fn is_bpffs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes one struct statfs into the zeroed buffer we own.
    unsafe {
        let mut buf: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut buf) == 0 && buf.f_type as i64 == BPF_FS_MAGIC
    }
}

fn mount_bpffs(at: &Path) -> Result<(), PinError> {
    use std::os::unix::ffi::OsStrExt as _;
    let target = std::ffi::CString::new(at.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: mount(2) with NUL-terminated strings we own and no data argument.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(PinError::Io {
            path: at.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_state_of_another_layout_is_refused() {
        let base = std::env::temp_dir().join(format!("lb-pin-test-{}", std::process::id()));
        let pins = PinDir::new(&base);
        // Nothing pinned: a first start.
        assert!(!pins.check().unwrap());
        // What an lbd of the layout before lblc/lblcr's locality table left.
        fs::create_dir_all(base.join("v1")).unwrap();
        let err = pins.check().unwrap_err();
        fs::remove_dir_all(&base).unwrap();
        assert!(
            matches!(&err, PinError::OtherLayout { found, .. } if found == "v1"),
            "{err:?}"
        );
        assert!(err.to_string().contains("lbd --cleanup"), "{err}");
        assert_eq!(pins.dir(), base.join(format!("v{LAYOUT_VERSION}")));
    }

    #[test]
    fn a_second_lock_on_the_pin_directory_is_refused_with_the_holder() {
        let base = std::env::temp_dir().join(format!("lb-pin-lock-{}", std::process::id()));
        let pins = PinDir::new(&base);
        let held = pins.lock().unwrap();
        // flock locks belong to the open file: a second open in this process conflicts too.
        let err = pins.lock().unwrap_err();
        assert!(
            matches!(err, PinError::InUse { holder: Some(pid), .. } if pid == std::process::id()),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("in use by another lbd (pid "),
            "{err}"
        );
        drop(held);
        drop(pins.lock().unwrap());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 99 00:2a:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 1234 00:2a:77 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 555 00:2a:77 0 EOF\n";
        let dev = libc::makedev(0, 0x2a);
        assert_eq!(flock_holder(locks, dev, 77), Some(1234));
        assert_eq!(flock_holder(locks, dev, 78), None);
    }

    #[test]
    fn the_locality_table_is_kept_across_restarts() {
        assert!(PINNED_MAPS.contains(&(
            maps::LOCALITY,
            size_of::<LocalityKey>(),
            size_of::<Locality>()
        )));
    }
}
