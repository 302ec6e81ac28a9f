//! IPVS's source hashing scheduler (`sh`, `ip_vs_sh.c`): a client's address (and source port
//! with `sh-port`) hashes to one of [`SH_TABLE_SIZE`] buckets, each naming a real server.
//!
//! The buckets are tiled with the real servers in order, each repeated `weight` times
//! (`ip_vs_sh_reassign`, which uses the current weight: a quiescent server still takes one
//! bucket, and any weight change re-tiles the buckets after it). A bucket whose server cannot
//! take new connections gives no server (IPVS: "no destination available"), or with
//! `sh-fallback` the server IPVS's fallback walk reaches. The data path just indexes the table
//! with [`lb_common::hash::sh_bucket`].

use lb_common::hash::SH_TABLE_SIZE;

use super::Candidate;

const SIZE: usize = SH_TABLE_SIZE as usize;

/// The `sh` table over `candidates` (in the service's real-server order): [`SH_TABLE_SIZE`]
/// real-server ids, 0 where no server takes the bucket's new connections. Empty when no
/// bucket has a server.
pub fn table(candidates: &[Candidate], fallback: bool) -> Vec<u32> {
    let layout = tile(candidates);
    let available = |bucket: usize| layout[bucket].filter(|c| c.weight > 0);
    let table: Vec<u32> = (0..SIZE)
        .map(|bucket| {
            let chosen = if fallback {
                fallback_walk(bucket).find_map(available)
            } else {
                available(bucket)
            };
            chosen.map_or(0, |c| c.id)
        })
        .collect();
    if table.iter().all(|&id| id == 0) {
        return Vec::new();
    }
    table
}

/// `ip_vs_sh_reassign`: bucket by bucket, the current server until it has had `weight`
/// buckets (at least one), then the next, wrapping around. Weights summing to more than the
/// table leave the last servers out, as in IPVS.
fn tile(candidates: &[Candidate]) -> [Option<&Candidate>; SIZE] {
    let mut layout = [None; SIZE];
    if candidates.is_empty() {
        return layout;
    }
    let (mut index, mut count) = (0, 0);
    for slot in &mut layout {
        let candidate = &candidates[index];
        *slot = Some(candidate);
        count += 1;
        if count >= candidate.weight {
            index = (index + 1) % candidates.len();
            count = 0;
        }
    }
    layout
}

/// The buckets `ip_vs_sh_get_fallback` tries for a client in `bucket`: the bucket itself,
/// then, with `roffset = (offset + bucket) % SIZE`, `ip_vs_sh_hashkey(.., roffset)` =
/// `(roffset + bucket) % SIZE` for offset 0, 1, ...: every bucket once, starting at
/// `2 * bucket`. It depends only on the bucket, so precomputing it is exact.
fn fallback_walk(bucket: usize) -> impl Iterator<Item = usize> {
    std::iter::once(bucket).chain((0..SIZE).map(move |offset| (2 * bucket + offset) % SIZE))
}

#[cfg(test)]
mod tests {
    use lb_common::hash::sh_bucket;

    use super::*;

    use super::super::test_candidate as c;

    fn share(table: &[u32], id: u32) -> usize {
        table.iter().filter(|&&x| x == id).count()
    }

    #[test]
    fn equal_weights_tile_in_order() {
        let table = table(&[c(1, 1), c(2, 1), c(3, 1)], false);
        assert_eq!(table.len(), SIZE);
        assert_eq!(table[..7], [1, 2, 3, 1, 2, 3, 1]);
        // 256 = 3 * 85 + 1: the first server gets the extra bucket.
        assert_eq!(
            [share(&table, 1), share(&table, 2), share(&table, 3)],
            [86, 85, 85]
        );
    }

    #[test]
    fn weights_repeat_each_server() {
        let table = table(&[c(7, 3), c(9, 1)], false);
        assert_eq!(table[..8], [7, 7, 7, 9, 7, 7, 7, 9]);
        assert_eq!((share(&table, 7), share(&table, 9)), (192, 64));
    }

    #[test]
    fn unequal_weights_give_proportional_shares() {
        let table = table(&[c(1, 5), c(2, 3), c(3, 8)], false);
        // 256 = 16 rounds of 5 + 3 + 8.
        assert_eq!(
            [share(&table, 1), share(&table, 2), share(&table, 3)],
            [80, 48, 128]
        );
    }

    #[test]
    fn weights_beyond_the_table_leave_later_servers_out() {
        let table = table(&[c(1, 300), c(2, 1)], false);
        assert_eq!(share(&table, 1), SIZE);
    }

    #[test]
    fn quiescent_server_keeps_its_bucket_which_then_has_no_server() {
        let table = table(&[c(1, 1), c(2, 0), c(3, 1)], false);
        // Same tiling as three active servers, so nobody else's clients move.
        assert_eq!(table[..6], [1, 0, 3, 1, 0, 3]);
        assert_eq!(share(&table, 0), 85);
    }

    #[test]
    fn fallback_follows_ipvs_walk() {
        // Layout 1 2 3 1 2 3 ... with 2 quiescent. Bucket 1 walks from bucket 2 (3); bucket 4
        // from 8 (3 again: 2b is 2 mod 3 whenever b is 1 mod 3).
        let table = table(&[c(1, 1), c(2, 0), c(3, 1)], true);
        assert_eq!(table[..6], [1, 3, 3, 1, 3, 3]);
        assert_eq!(share(&table, 0), 0);

        // Weight 2 and 0 and 1: layout 1 1 2 3 | 1 1 2 3 ...; bucket 2 walks from 4 (1);
        // bucket 6 walks from 12 (1).
        let table = super::table(&[c(1, 2), c(2, 0), c(3, 1)], true);
        assert_eq!(table[..8], [1, 1, 1, 3, 1, 1, 1, 3]);

        // Walk from 2b wrapping: a lone active server at bucket 0 of a long quiescent run.
        let mut many: Vec<Candidate> = (1..=200).map(|id| c(id, 0)).collect();
        many[0].weight = 1;
        let table = super::table(&many, true);
        assert!(table.iter().all(|&id| id == 1));
    }

    #[test]
    fn fallback_never_moves_clients_of_available_servers() {
        let candidates = [c(1, 2), c(2, 0), c(3, 3), c(4, 0), c(5, 1)];
        let strict = table(&candidates, false);
        let fallback = table(&candidates, true);
        for (s, f) in strict.iter().zip(&fallback) {
            if *s != 0 {
                assert_eq!(s, f);
            } else {
                assert!(*f != 0);
            }
        }
    }

    #[test]
    fn empty_when_no_server_takes_connections() {
        assert!(table(&[], false).is_empty());
        assert!(table(&[], true).is_empty());
        assert!(table(&[c(1, 0), c(2, 0)], false).is_empty());
        assert!(table(&[c(1, 0), c(2, 0)], true).is_empty());
    }

    #[test]
    fn a_client_always_gets_the_same_server() {
        let table = table(&[c(1, 1), c(2, 1), c(3, 1), c(4, 1)], false);
        let client = u32::from_ne_bytes([192, 0, 2, 77]);
        let server = table[sh_bucket(client, 0, false) as usize];
        for port in [1024u16, 33000, 65535] {
            assert_eq!(
                table[sh_bucket(client, port.to_be(), false) as usize],
                server
            );
        }
        // With sh-port, the connections of one client spread over the servers.
        let servers: std::collections::HashSet<u32> = (1024..1088u16)
            .map(|port| table[sh_bucket(client, port.to_be(), true) as usize])
            .collect();
        assert_eq!(servers.len(), 4);
    }

    #[test]
    fn same_input_same_table() {
        let candidates = [c(3, 2), c(1, 1), c(2, 0)];
        assert_eq!(table(&candidates, true), table(&candidates, true));
    }
}
