//! Pure logic: the table of content settings and the rollout decision. No IO, no clock.

use std::collections::HashMap;

use protocol::api::ContentSettings;
use sha2::{Digest, Sha256};

/// Settings per `(customer, content)`, bounded in size.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    contents: HashMap<(String, String), ContentSettings>,
    max_contents: usize,
}

/// The catalog already holds its maximum number of contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CatalogFull;

impl Catalog {
    /// An empty catalog that holds at most `max_contents` entries.
    pub(crate) fn new(max_contents: usize) -> Self {
        Self { contents: HashMap::new(), max_contents }
    }

    /// The settings of a content, if it is known.
    pub(crate) fn get(&self, customer: &str, content: &str) -> Option<&ContentSettings> {
        // Names are bounded by MAX_NAME_LEN, so building the owned key is cheap.
        self.contents.get(&(customer.to_owned(), content.to_owned()))
    }

    /// Sets the settings of a content, replacing earlier ones.
    ///
    /// # Errors
    /// [`CatalogFull`] when the content is new and the catalog is full.
    pub(crate) fn put(&mut self, customer: &str, content: &str, settings: ContentSettings) -> Result<(), CatalogFull> {
        let key = (customer.to_owned(), content.to_owned());
        if !self.contents.contains_key(&key) && self.contents.len() >= self.max_contents {
            return Err(CatalogFull);
        }
        self.contents.insert(key, settings);
        Ok(())
    }
}

/// The rollout bucket, 0–99, of a session identified by `key` (e.g. client address plus
/// content): the first 8 bytes of SHA-256(`key`) modulo 100. Stable across restarts and hosts.
pub(crate) fn rollout_bucket(key: &[u8]) -> u8 {
    let digest = Sha256::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder of a division by 100 always fits in a u8.
    (u64::from_be_bytes(first) % 100) as u8
}

/// Whether a session in `bucket` gets P2P under `settings`.
pub(crate) fn p2p_on(settings: &ContentSettings, bucket: u8) -> bool {
    settings.p2p_enabled && bucket < settings.rollout_percent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(enabled: bool, rollout: u8) -> ContentSettings {
        ContentSettings { p2p_enabled: enabled, rollout_percent: rollout, ..ContentSettings::default() }
    }

    #[test]
    fn rollout_decision_follows_percent_and_switch() {
        assert!(p2p_on(&settings(true, 100), 99));
        assert!(!p2p_on(&settings(true, 0), 0));
        assert!(p2p_on(&settings(true, 50), 49));
        assert!(!p2p_on(&settings(true, 50), 50));
        assert!(!p2p_on(&settings(false, 100), 0));
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(rollout_bucket(b"10.0.0.1|acme|live"), rollout_bucket(b"10.0.0.1|acme|live"));
        let mut seen = [0u32; 100];
        for i in 0..10_000u32 {
            seen[usize::from(rollout_bucket(&i.to_be_bytes()))] += 1;
        }
        // Uniform would be 100 per bucket; a hash far from uniform would leave some near 0.
        assert!(seen.iter().all(|&n| (50..=150).contains(&n)), "{seen:?}");
    }

    #[test]
    fn catalog_is_bounded_but_updates_in_place() {
        let mut catalog = Catalog::new(1);
        assert_eq!(catalog.put("a", "b", settings(true, 10)), Ok(()));
        assert_eq!(catalog.put("a", "b", settings(false, 20)), Ok(()));
        assert_eq!(catalog.get("a", "b"), Some(&settings(false, 20)));
        assert_eq!(catalog.put("a", "c", settings(true, 10)), Err(CatalogFull));
        assert_eq!(catalog.get("a", "c"), None);
    }
}
