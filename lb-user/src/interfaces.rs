//! The director's NICs as they come and go. An XDP attachment belongs to one network device:
//! when a NIC is deleted (a driver reload, a bond or VLAN rebuilt, `ip link del`), its
//! attachment goes with it, and a NIC created again under the same name is a new device
//! that has no program. lbd looks up every `--iface` by name once a second and attaches
//! again to one that came back; this module decides what changed, the director acts on it.

/// The index of the device named `name` now; 0 if there is none.
pub fn index_of(name: &str) -> u32 {
    let Ok(name) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: if_nametoindex reads the NUL-terminated string we own.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

/// An interface lbd was told to attach to, and the device it is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    pub name: String,
    /// The device's index when last seen; 0 while no device has the name.
    pub ifindex: u32,
}

/// What became of an attached interface since the last look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// No device has its name any more: the attachment went with the old one.
    Gone { name: String, old: u32 },
    /// A device has its name again (or another device took it): attach to `new`, and forget
    /// `old` (0 if the name was gone).
    Back { name: String, old: u32, new: u32 },
}

/// Compares `attached` with each name's current device index (`index_of`, 0 when no device
/// has the name), records what it finds in `attached`, and returns the changes.
pub fn follow(attached: &mut [Attached], index_of: impl Fn(&str) -> u32) -> Vec<Change> {
    let mut changes = Vec::new();
    for iface in attached.iter_mut() {
        let now = index_of(&iface.name);
        if now == iface.ifindex {
            continue;
        }
        let old = iface.ifindex;
        iface.ifindex = now;
        let name = iface.name.clone();
        changes.push(if now == 0 {
            Change::Gone { name, old }
        } else {
            Change::Back {
                name,
                old,
                new: now,
            }
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn attached(name: &str, ifindex: u32) -> Attached {
        Attached {
            name: name.into(),
            ifindex,
        }
    }

    #[test]
    fn a_nic_deleted_then_created_again_is_gone_then_back() {
        let mut ifaces = vec![attached("eth0", 2), attached("eth1", 3)];
        let mut now: HashMap<&str, u32> = HashMap::from([("eth0", 2), ("eth1", 3)]);
        fn index(now: &HashMap<&str, u32>) -> impl Fn(&str) -> u32 {
            let now: HashMap<String, u32> =
                now.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
            move |name| now.get(name).copied().unwrap_or(0)
        }
        assert!(follow(&mut ifaces, index(&now)).is_empty());

        now.remove("eth1");
        assert_eq!(
            follow(&mut ifaces, index(&now)),
            vec![Change::Gone {
                name: "eth1".into(),
                old: 3
            }]
        );
        assert!(follow(&mut ifaces, index(&now)).is_empty(), "said once");

        now.insert("eth1", 7);
        assert_eq!(
            follow(&mut ifaces, index(&now)),
            vec![Change::Back {
                name: "eth1".into(),
                old: 0,
                new: 7
            }]
        );
        assert_eq!(ifaces[1], attached("eth1", 7));
        assert!(follow(&mut ifaces, index(&now)).is_empty());
    }

    #[test]
    fn a_nic_replaced_between_two_looks_is_back_at_once() {
        let mut ifaces = vec![attached("eth0", 2)];
        assert_eq!(
            follow(&mut ifaces, |_| 9),
            vec![Change::Back {
                name: "eth0".into(),
                old: 2,
                new: 9
            }]
        );
    }
}
