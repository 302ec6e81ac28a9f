//! Who holds the XDP program on an interface, to say so when a second lbd finds the
//! interface taken (the kernel only answers EBUSY). Each open BPF link is a file descriptor
//! whose `/proc/PID/fdinfo` entry names its type and, for XDP, its interface.

use std::path::Path;

/// The interface index of an XDP link described by `fdinfo`, if it is one.
pub fn xdp_link_ifindex(fdinfo: &str) -> Option<u32> {
    let field = |name: &str| {
        fdinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    };
    if field("link_type")? != "xdp" {
        return None;
    }
    field("ifindex")?.parse().ok()
}

/// A process other than this one holding an XDP link on `ifindex`: its pid and name.
pub fn xdp_holder(ifindex: u32) -> Option<(u32, String)> {
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || !holds_xdp_link(&entry.path(), ifindex) {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        return Some((pid, comm.trim().to_owned()));
    }
    None
}

fn holds_xdp_link(proc_dir: &Path, ifindex: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fdinfo")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_to_string(fd.path())
            .is_ok_and(|info| xdp_link_ifindex(&info) == Some(ifindex))
    })
}

/// Why `iface` (index `ifindex`) refused a program: what to tell the user.
pub fn busy_hint(iface: &str, ifindex: u32) -> String {
    match xdp_holder(ifindex) {
        Some((pid, comm)) => format!(
            " ({iface} already has an XDP program, held by pid {pid} ({comm}): one lbd per \
             interface; stop that one first)"
        ),
        None => format!(
            " ({iface} already has an XDP program that no process holds: left running by an \
             lbd (`lbd --cleanup --bpffs DIR` removes it), or attached by another tool \
             (`ip link set dev {iface} xdp off`))"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xdp_links_fdinfo_names_its_interface() {
        let xdp = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1053\nlink_type:\txdp\n\
                   link_id:\t7\nprog_tag:\t0123456789abcdef\nprog_id:\t41\nifindex:\t3\n";
        assert_eq!(xdp_link_ifindex(xdp), Some(3));
        let tc = xdp.replace("link_type:\txdp", "link_type:\ttcx");
        assert_eq!(xdp_link_ifindex(&tc), None);
        assert_eq!(xdp_link_ifindex("pos:\t0\nflags:\t02\n"), None);
    }
}
