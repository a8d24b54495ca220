//! Which tracker shard holds a content's swarms: rendezvous (highest random weight) hashing.
//!
//! Every rendition of a content lands on one shard, since an agent moves between renditions and
//! keeps its peerId. Each shard scores `SHA-256(shard URL | customer | content)` and the highest
//! wins, so adding or removing one shard moves only the contents that shard wins or held.

use sha2::{Digest, Sha256};

/// The shard of `shards` for (`customer`, `content`); `None` when there are no shards.
pub(crate) fn pick<'a>(shards: &'a [String], customer: &str, content: &str) -> Option<&'a String> {
    shards.iter().max_by_key(|shard| score(shard, customer, content))
}

fn score(shard: &str, customer: &str, content: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [shard, customer, content] {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_spread_over_shards_and_stay_put_when_another_shard_goes() {
        let shards: Vec<String> = ["http://t1", "http://t2", "http://t3"].map(String::from).to_vec();
        assert_eq!(pick(&[], "acme", "live"), None);
        let picks: Vec<&String> = (0..300).map(|i| pick(&shards, "acme", &format!("c{i}")).unwrap()).collect();
        for shard in &shards {
            let n = picks.iter().filter(|p| **p == shard).count();
            assert!((60..=140).contains(&n), "{shard}: {n} of 300");
        }
        // Removing t3 moves only t3's contents.
        let fewer = &shards[..2];
        for (i, before) in picks.iter().enumerate() {
            let after = pick(fewer, "acme", &format!("c{i}")).unwrap();
            if *before != &shards[2] {
                assert_eq!(after, *before);
            }
        }
        // Stable across calls and independent of the renditions.
        assert_eq!(pick(&shards, "acme", "c1"), pick(&shards, "acme", "c1"));
    }
}
