//! IPVS's destination hashing scheduler (`dh`, `ip_vs_dh.c`): the packet's destination
//! address hashes to one of [`DH_TABLE_SIZE`] buckets, each naming a real server.
//!
//! The buckets are tiled with the real servers in order, one bucket each, weights ignored
//! (`ip_vs_dh_reassign`). A bucket whose server cannot take new connections (quiescent, weight
//! 0) gives no server and the data path drops, as IPVS does: `dh` has no fallback flag. The
//! data path indexes the table with [`lb_common::hash::dh_bucket`].

use lb_common::hash::DH_TABLE_SIZE;

use super::Candidate;

/// The `dh` table over `candidates` (in the service's real-server order): [`DH_TABLE_SIZE`]
/// real-server ids, 0 where the server is quiescent. Empty when no server takes connections.
pub fn table(candidates: &[Candidate]) -> Vec<u32> {
    if candidates.iter().all(|c| c.weight == 0) {
        return Vec::new();
    }
    candidates
        .iter()
        .map(|c| if c.weight > 0 { c.id } else { 0 })
        .cycle()
        .take(DH_TABLE_SIZE as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use lb_common::hash::dh_bucket;

    use super::*;

    use super::super::test_candidate as c;

    #[test]
    fn servers_tile_the_buckets_ignoring_weights() {
        let table = table(&[c(4, 5), c(8, 1)]);
        assert_eq!(table.len(), DH_TABLE_SIZE as usize);
        assert_eq!(table[..5], [4, 8, 4, 8, 4]);
        assert_eq!(table.iter().filter(|&&id| id == 4).count(), 128);
    }

    #[test]
    fn quiescent_server_keeps_its_buckets_with_no_server() {
        let table = table(&[c(1, 1), c(2, 0), c(3, 1)]);
        assert_eq!(table[..6], [1, 0, 3, 1, 0, 3]);
    }

    #[test]
    fn empty_when_no_server_takes_connections() {
        assert!(table(&[]).is_empty());
        assert!(table(&[c(1, 0)]).is_empty());
    }

    #[test]
    fn a_destination_always_gets_the_same_server() {
        let table = table(&[c(1, 1), c(2, 1), c(3, 1)]);
        let daddr = u32::from_ne_bytes([198, 51, 100, 7]);
        let bucket = dh_bucket(daddr) as usize;
        assert_eq!(table[bucket], [1, 2, 3][bucket % 3]);
    }
}
