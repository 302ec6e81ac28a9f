//! The state file: the configuration lbd restores at start, so nothing configured is lost
//! when it restarts. Written atomically (temporary file, fsync, rename).

use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Default location of the state file.
pub const DEFAULT_STATE: &str = "/var/lib/lb/state.json";

/// Bumped when the file's layout changes incompatibly.
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid lb state file: {source}")]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has format version {found}; this lbd reads version {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    config: Config,
}

/// The saved configuration, or `None` when there is no state file yet.
pub fn load(path: &Path) -> Result<Option<Config>, StateError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|source| StateError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    if file.version != FORMAT_VERSION {
        return Err(StateError::Version {
            path: path.to_owned(),
            found: file.version,
        });
    }
    Ok(Some(file.config))
}

/// Saves `config` to `path`, replacing the previous file only once the new one is complete
/// and on disk: written to a temporary file of its own (created afresh, mode 0600, never
/// through a symbolic link), flushed, renamed over `path`, and the directory flushed so the
/// rename survives a crash. The file holds the whole configuration: only root reads it.
pub fn save(path: &Path, config: &Config) -> Result<(), StateError> {
    let io_err = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err)?;
    let file = StateFile {
        version: FORMAT_VERSION,
        config: config.clone(),
    };
    let text = serde_json::to_vec_pretty(&file).expect("configuration serialises");
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), unique()));
    let written = (|| {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        out.write_all(&text)?;
        out.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(io_err)
}

/// A number no other save of this process has used.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Command;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("lb-state-test-{}", std::process::id()));
        let path = dir.join("state.json");
        assert_eq!(load(&path).unwrap(), None);
        let config = Config::default()
            .apply_all(&[Command::SetTimeouts {
                timeouts: crate::model::Timeouts {
                    tcp: 1,
                    tcp_fin: 2,
                    udp: 3,
                },
            }])
            .unwrap();
        save(&path, &config).unwrap();
        assert_eq!(load(&path).unwrap(), Some(config));
        fs::write(&path, "{").unwrap();
        assert!(
            load(&path)
                .unwrap_err()
                .to_string()
                .contains("not a valid lb state file")
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_file_is_private_replaces_a_symlink_rather_than_follow_it_and_leaves_no_temporary() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("lb-state-safe-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "keep me").unwrap();
        let path = dir.join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        save(&path, &Config::default()).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(load(&path).unwrap(), Some(Config::default()));
        // A temporary someone planted under the old fixed name is not written through.
        std::os::unix::fs::symlink(&victim, dir.join("state.json.tmp")).unwrap();
        save(&path, &Config::default()).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["state.json", "state.json.tmp", "victim"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ipv6_services_round_trip_and_old_netmasks_still_load() {
        let dir = std::env::temp_dir().join(format!("lb-state-test6-{}", std::process::id()));
        let path = dir.join("state.json");
        let commands = crate::ipvsadm::parse_restore_with(
            "-A -u [2001:db8::1]:53 -s sh -p 600 -M 64\n\
             -a -u [2001:db8::1]:53 -r [2001:db8::31]:5353 -m -w 1\n\
             -a -u [2001:db8::1]:53 -r 10.0.1.1:53 -i -w 1\n\
             -A -t 10.0.0.1:443 -s wlc -p 100 -M 255.255.255.0\n",
            &crate::ipvsadm::NoNames,
        )
        .unwrap();
        let config = Config::default().apply_all(&commands).unwrap();
        save(&path, &config).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        // IPv4 masks stay strings, as state files before IPv6 have them; prefix lengths are
        // numbers.
        assert!(text.contains("\"netmask\": \"255.255.255.0\""), "{text}");
        assert!(text.contains("\"netmask\": 64"), "{text}");
        assert!(text.contains("\"2001:db8::31\""), "{text}");
        assert_eq!(load(&path).unwrap(), Some(config));
        fs::remove_dir_all(dir).unwrap();
    }
}
