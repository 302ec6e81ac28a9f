//! Batched map access through bpf(2)'s `BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_UPDATE_BATCH` and
//! `BPF_MAP_DELETE_BATCH` (Linux 5.6), which aya 0.14 does not wrap; and the element
//! operations it does not wrap either (`take`: lookup-and-delete; `insert_new`).
//!
//! aya reads a map one entry per system call and walks a hash map with two per entry
//! (`get_next_key`, then `lookup`): lbd's once-a-second sweep of a million-entry connection
//! table would be two million system calls a second. One batch call moves thousands of
//! entries between the map and buffers that are kept from one call to the next.
//!
//! Keys and values are [`Pod`] types laid out as the kernel lays them out. A per-CPU map has
//! one value per possible CPU for each key, each padded to 8 bytes: readers and writers of
//! such maps say how many values a key has (`per_key`), and their value type must be a
//! multiple of 8 bytes long (lb's are; checked).

use std::{
    io,
    mem::{MaybeUninit, size_of},
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use aya::Pod;

/// bpf(2) commands (`enum bpf_cmd`, linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// The `batch` member of `union bpf_attr` (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    /// Where a walk resumes (0: at the start): the cursor the previous call wrote, which the
    /// kernel reads as a bucket index (u32) for hash maps and as the last key (u32) for
    /// arrays.
    in_batch: u64,
    /// Where the kernel writes the cursor to resume from.
    out_batch: u64,
    keys: u64,
    values: u64,
    /// In: how many entries the buffers hold; out: how many were handled.
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}
const _: () = assert!(size_of::<BatchAttr>() == 56);

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: a batch attribute; the kernel reads and writes only within it, the cursors it
    // points to (8 bytes each, more than the 4 the kernel uses for hash maps and arrays) and
    // the key and value buffers, which every caller sizes for `count` entries.
    unsafe { sys_bpf(cmd, attr) }.map(drop)
}

/// bpf(2) with `attr` as its `union bpf_attr` prefix; the call's non-negative result (a new
/// descriptor for the create commands).
///
/// # Safety
/// `attr` is a `union bpf_attr` member as linux/bpf.h lays it out for `cmd`, and every
/// buffer it points to is valid for what the kernel reads or writes through it.
unsafe fn sys_bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<i64> {
    // SAFETY: the caller's promise, above; the size passed is `attr`'s own.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            size_of::<A>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn errno_is(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// Where a walk of a map stands, so that it can go on in a later call (a hash map's walk is
/// by bucket, and its buckets are fixed when the map is created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The kernel's cursor, once a first call has returned one.
    at: Option<u64>,
}

impl Cursor {
    /// Whether the walk stands at the map's start.
    pub fn at_start(&self) -> bool {
        self.at.is_none()
    }
}

/// Buffers for reading a map a chunk at a time, kept from one walk to the next so that a
/// walk allocates nothing once they have grown to size.
pub struct Reader<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
    chunk: usize,
    per_key: usize,
}

impl<K: Pod + Default, V: Pod + Default> Reader<K, V> {
    /// A reader asking for up to `chunk` entries per call, each with `per_key` values (1, or
    /// the number of possible CPUs for a per-CPU map).
    pub fn new(chunk: usize, per_key: usize) -> Self {
        assert!(chunk > 0 && per_key > 0, "empty batches");
        assert!(
            per_key == 1 || size_of::<V>().is_multiple_of(8),
            "per-CPU values are padded to 8 bytes by the kernel"
        );
        Reader {
            keys: vec![K::default(); chunk],
            values: vec![V::default(); chunk * per_key],
            chunk,
            per_key,
        }
    }

    /// Reads the map behind `fd` from its start, handing each chunk to `each` (its keys, and
    /// `per_key` values per key, in order), until the map ends or `limit` entries were read;
    /// returns how many were. An array is read in index order. A hash map is read bucket by
    /// bucket: entries added or removed meanwhile may or may not be seen, none twice.
    pub fn read(
        &mut self,
        fd: BorrowedFd<'_>,
        limit: usize,
        each: impl FnMut(&[K], &[V]),
    ) -> io::Result<usize> {
        let mut cursor = Cursor::default();
        Ok(self.read_on(fd, &mut cursor, limit, each)?.0)
    }

    /// As [`Reader::read`], from where `cursor` stands, leaving it where the walk stopped;
    /// returns how many entries were read and whether the map's end was reached (the cursor
    /// is then back at the start). A hash map's walk stops before a bucket that does not fit
    /// in what is left of `limit` (but reads at least one, however large).
    pub fn read_on(
        &mut self,
        fd: BorrowedFd<'_>,
        cursor: &mut Cursor,
        limit: usize,
        mut each: impl FnMut(&[K], &[V]),
    ) -> io::Result<(usize, bool)> {
        let mut total = 0;
        let mut cursor_in = cursor.at.unwrap_or(0);
        let mut cursor_out = 0u64;
        let mut started = cursor.at.is_some();
        // Set when the first bucket holds more than `limit` entries: it is read whole.
        let mut whole = false;
        while total < limit {
            let want = if whole {
                self.chunk
            } else {
                self.chunk.min(limit - total)
            };
            let mut attr = BatchAttr {
                in_batch: if started {
                    (&raw const cursor_in) as u64
                } else {
                    0
                },
                out_batch: (&raw mut cursor_out) as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: want as u32,
                map_fd: fd.as_raw_fd() as u32,
                ..BatchAttr::default()
            };
            let result = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
            let n = (attr.count as usize).min(want);
            match result {
                Ok(()) => {}
                // The end of the map, after the last `n` entries.
                Err(e) if errno_is(&e, libc::ENOENT) => {
                    if n > 0 {
                        each(&self.keys[..n], &self.values[..n * self.per_key]);
                    }
                    *cursor = Cursor::default();
                    return Ok((total + n, true));
                }
                // The next hash bucket holds more entries than asked for.
                Err(e) if errno_is(&e, libc::ENOSPC) && n == 0 => {
                    if want == self.chunk {
                        // More than the buffers hold.
                        self.grow();
                    } else if total > 0 {
                        // More than is left of `limit`: the next call reads it.
                        break;
                    } else {
                        whole = true;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            if n == 0 {
                break;
            }
            each(&self.keys[..n], &self.values[..n * self.per_key]);
            total += n;
            cursor_in = cursor_out;
            started = true;
        }
        cursor.at = started.then_some(cursor_in);
        Ok((total, false))
    }

    fn grow(&mut self) {
        self.chunk *= 2;
        self.keys.resize(self.chunk, K::default());
        self.values.resize(self.chunk * self.per_key, V::default());
    }
}

/// Writes `values` at `keys` (`values.len() / keys.len()` values per key: a per-CPU map's
/// CPUs) in one call, creating or replacing entries.
pub fn update<K: Pod, V: Pod>(fd: BorrowedFd<'_>, keys: &[K], values: &[V]) -> io::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let per_key = values.len() / keys.len();
    assert!(
        per_key > 0 && values.len() == keys.len() * per_key,
        "{} values for {} keys",
        values.len(),
        keys.len()
    );
    assert!(
        per_key == 1 || size_of::<V>().is_multiple_of(8),
        "per-CPU values are padded to 8 bytes by the kernel"
    );
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: keys.len() as u32,
        map_fd: fd.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    bpf(BPF_MAP_UPDATE_BATCH, &mut attr)
}

/// Deletes `keys` from a hash map; keys already gone are skipped. Returns how many entries
/// were deleted.
pub fn delete<K: Pod>(fd: BorrowedFd<'_>, keys: &[K]) -> io::Result<usize> {
    let mut done = 0;
    let mut deleted = 0;
    while done < keys.len() {
        let rest = &keys[done..];
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: rest.len() as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        let result = bpf(BPF_MAP_DELETE_BATCH, &mut attr);
        let n = (attr.count as usize).min(rest.len());
        deleted += n;
        match result {
            Ok(()) => done = keys.len(),
            // The kernel stops at a key that is not there (gone meanwhile): skip it.
            Err(e) if errno_is(&e, libc::ENOENT) => done += n + 1,
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// bpf(2) commands on one element.
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
/// `BPF_MAP_UPDATE_ELEM` flag: only if the key is not there.
const BPF_NOEXIST: u64 = 1;

/// The element member of `union bpf_attr` (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf_elem(cmd: libc::c_long, attr: &mut ElemAttr) -> io::Result<()> {
    // SAFETY: an element attribute; the kernel reads the key and writes or reads the value,
    // buffers of the map's key and value sizes (the callers' types are the map's).
    unsafe { sys_bpf(cmd, attr) }.map(drop)
}

/// The value `key` holds, `None` if it is not there.
pub fn lookup<K: Pod, V: Pod>(fd: BorrowedFd<'_>, key: &K) -> io::Result<Option<V>> {
    let mut value = MaybeUninit::<V>::zeroed();
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: std::ptr::from_ref(key) as u64,
        value: value.as_mut_ptr() as u64,
        ..ElemAttr::default()
    };
    match bpf_elem(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        // SAFETY: the kernel wrote a whole value (and it was zeroed before); V is Pod.
        Ok(()) => Ok(Some(unsafe { value.assume_init() })),
        Err(e) if errno_is(&e, libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `key` from a hash map and returns the value it held at that moment, in one step
/// (`BPF_MAP_LOOKUP_AND_DELETE_ELEM`, Linux 5.14 for hash maps): `None` if it was not there.
/// Of two removers racing, exactly one gets the value.
pub fn take<K: Pod, V: Pod>(fd: BorrowedFd<'_>, key: &K) -> io::Result<Option<V>> {
    let mut value = MaybeUninit::<V>::zeroed();
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: std::ptr::from_ref(key) as u64,
        value: value.as_mut_ptr() as u64,
        ..ElemAttr::default()
    };
    match bpf_elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, &mut attr) {
        // SAFETY: the kernel wrote a whole value (and it was zeroed before); V is Pod.
        Ok(()) => Ok(Some(unsafe { value.assume_init() })),
        Err(e) if errno_is(&e, libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Inserts `key` → `value` unless `key` is there; returns whether it was inserted.
pub fn insert_new<K: Pod, V: Pod>(fd: BorrowedFd<'_>, key: &K, value: &V) -> io::Result<bool> {
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: std::ptr::from_ref(key) as u64,
        value: std::ptr::from_ref(value) as u64,
        flags: BPF_NOEXIST,
        ..ElemAttr::default()
    };
    match bpf_elem(BPF_MAP_UPDATE_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if errno_is(&e, libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `BPF_MAP_CREATE` and the map types created here.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// The head of `union bpf_attr` for `BPF_MAP_CREATE`.
#[repr(C)]
struct CreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
}

/// A map of its own for lbd (not in the object, never pinned): gone with its descriptor.
fn create_map(
    map_type: u32,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
    inner: Option<BorrowedFd<'_>>,
) -> io::Result<OwnedFd> {
    let mut attr = CreateAttr {
        map_type,
        key_size: key_size as u32,
        value_size: value_size as u32,
        max_entries,
        map_flags: 0,
        inner_map_fd: inner.map_or(0, |fd| fd.as_raw_fd() as u32),
    };
    // SAFETY: a BPF_MAP_CREATE attribute prefix, pointing at nothing.
    let fd = unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }?;
    // SAFETY: a descriptor the kernel just gave us and nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits out an RCU grace period: when [`Grace::wait`] returns, every run of a BPF program
/// that began before the call has finished. lbd needs this before it rewrites memory a
/// running program may still be reading (a real server's copy that was live, see
/// `dataplane::RealCopies`).
///
/// bpf(2) has no command for it, but the kernel waits (`synchronize_rcu`) after each update
/// of a map of maps, so that "userspace, when we return to it, knows that all non-sleepable
/// programs that could be running use the new map value" (`maybe_wait_bpf_programs`,
/// kernel/bpf/syscall.c, Linux 4.15 on). Updating the one slot of a private array of maps
/// is that wait and nothing else.
pub struct Grace {
    outer: OwnedFd,
    inner: OwnedFd,
}

impl Grace {
    pub fn new() -> io::Result<Self> {
        let inner = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 1, None)?;
        let outer = create_map(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 1, Some(inner.as_fd()))?;
        Ok(Grace { outer, inner })
    }

    /// Returns once every BPF program run that was under way at the call has finished.
    pub fn wait(&self) -> io::Result<()> {
        let key = 0u32;
        let value = self.inner.as_raw_fd() as u32;
        let mut attr = ElemAttr {
            map_fd: self.outer.as_raw_fd() as u32,
            key: std::ptr::from_ref(&key) as u64,
            value: std::ptr::from_ref(&value) as u64,
            ..ElemAttr::default()
        };
        bpf_elem(BPF_MAP_UPDATE_ELEM, &mut attr)
    }
}

#[cfg(test)]
mod tests {
    //! Against the kernel (root): maps made with BPF_MAP_CREATE for the test alone.

    use std::os::fd::{AsFd as _, OwnedFd};

    use super::*;

    const BPF_MAP_TYPE_HASH: u32 = 1;
    const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
    const BPF_MAP_TYPE_LRU_HASH: u32 = 9;

    fn create<K, V>(map_type: u32, max_entries: u32) -> OwnedFd {
        create_map(map_type, size_of::<K>(), size_of::<V>(), max_entries, None)
            .unwrap_or_else(|e| panic!("BPF_MAP_CREATE (root needed): {e}"))
    }

    fn read_all<K: Pod + Default, V: Pod + Default>(
        reader: &mut Reader<K, V>,
        fd: BorrowedFd<'_>,
    ) -> Vec<(K, V)> {
        let mut all = Vec::new();
        let n = reader
            .read(fd, usize::MAX, |keys, values| {
                all.extend(keys.iter().copied().zip(values.iter().copied()));
            })
            .unwrap();
        assert_eq!(n, all.len());
        all
    }

    #[test]
    fn a_grace_period_is_waited_for_as_often_as_asked() {
        let grace = Grace::new().expect("an array of maps (root needed)");
        for _ in 0..3 {
            grace.wait().expect("updating the array of maps");
        }
    }

    #[test]
    fn hash_maps_are_written_read_and_deleted_in_batches() {
        for map_type in [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH] {
            let map = create::<u64, u64>(map_type, 20_000);
            let keys: Vec<u64> = (0..10_000u64).map(|k| k * 7919).collect();
            let values: Vec<u64> = keys.iter().map(|k| k + 1).collect();
            update(map.as_fd(), &keys, &values).unwrap();

            // A chunk of 1 is too small for buckets with several entries: the reader grows.
            for chunk in [1, 64, 4096] {
                let mut reader = Reader::<u64, u64>::new(chunk, 1);
                let mut seen = read_all(&mut reader, map.as_fd());
                seen.sort_unstable();
                assert_eq!(seen.len(), keys.len(), "type {map_type}, chunk {chunk}");
                assert!(seen.iter().all(|(k, v)| *v == k + 1));
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                assert!(seen.iter().map(|(k, _)| *k).eq(sorted));
            }

            // Every other key, plus keys that are not there (skipped, not counted).
            let mut doomed: Vec<u64> = keys.iter().copied().step_by(2).collect();
            doomed.insert(10, 3);
            doomed.push(5);
            assert_eq!(delete(map.as_fd(), &doomed).unwrap(), 5_000);
            let left = read_all(&mut Reader::<u64, u64>::new(256, 1), map.as_fd());
            assert_eq!(left.len(), 5_000);
            assert!(left.iter().all(|(k, _)| (k / 7919) % 2 == 1));
        }
    }

    #[test]
    fn a_walk_goes_on_where_it_stopped() {
        let map = create::<u32, u32>(BPF_MAP_TYPE_LRU_HASH, 4096);
        let keys: Vec<u32> = (0..1000).collect();
        update(map.as_fd(), &keys, &keys).unwrap();
        let mut reader = Reader::<u32, u32>::new(64, 1);
        let mut cursor = Cursor::default();
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            let (n, ended) = reader
                .read_on(map.as_fd(), &mut cursor, 150, |keys, _| {
                    seen.extend_from_slice(keys)
                })
                .unwrap();
            calls += 1;
            assert!(n <= 150);
            if ended {
                assert!(cursor.at_start());
                break;
            }
            assert!(!cursor.at_start());
        }
        assert!(calls >= 7, "1000 entries, 150 at a time: {calls} calls");
        seen.sort_unstable();
        assert_eq!(seen, keys, "every entry once");

        // One entry at a time: a bucket holding more is read whole.
        let mut seen = Vec::new();
        while !reader
            .read_on(map.as_fd(), &mut cursor, 1, |keys, _| {
                seen.extend_from_slice(keys)
            })
            .unwrap()
            .1
        {}
        seen.sort_unstable();
        assert_eq!(seen, keys, "every entry once, one bucket at a time");
    }

    #[test]
    fn arrays_are_read_in_order_up_to_a_limit() {
        let map = create::<u32, [u32; 6]>(BPF_MAP_TYPE_ARRAY, 1000);
        let keys: Vec<u32> = (0..1000).collect();
        let values: Vec<[u32; 6]> = keys.iter().map(|&k| [k; 6]).collect();
        update(map.as_fd(), &keys, &values).unwrap();
        let mut reader = Reader::<u32, [u32; 6]>::new(128, 1);
        let mut seen = Vec::new();
        let n = reader
            .read(map.as_fd(), 300, |keys, values| {
                seen.extend(keys.iter().copied().zip(values.iter().copied()))
            })
            .unwrap();
        assert_eq!(n, 300);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(i, (k, v))| *k == i as u32 && *v == [*k; 6])
        );
        // Past the end: what there is.
        assert_eq!(read_all(&mut reader, map.as_fd()).len(), 1000);
    }

    #[test]
    fn per_cpu_arrays_carry_one_value_per_possible_cpu() {
        let cpus = aya::util::nr_cpus().unwrap();
        let map = create::<u32, u64>(BPF_MAP_TYPE_PERCPU_ARRAY, 10);
        let keys: Vec<u32> = (0..10).collect();
        let values: Vec<u64> = (0..10 * cpus as u64).collect();
        update(map.as_fd(), &keys, &values).unwrap();
        let mut reader = Reader::<u32, u64>::new(4, cpus);
        let mut got = Vec::new();
        reader
            .read(map.as_fd(), usize::MAX, |keys, values| {
                assert_eq!(values.len(), keys.len() * cpus);
                got.extend_from_slice(values);
            })
            .unwrap();
        assert_eq!(got, values);
    }
}
