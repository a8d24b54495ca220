//! MaxMind-format databases (`.mmdb`) as a source of AS numbers and regions.
//!
//! Two kinds of database are read, with the [`maxminddb`] crate:
//! - AS databases (GeoLite2-ASN, GeoIP2-ISP, DB-IP ASN lite): the top-level
//!   `autonomous_system_number`;
//! - place databases (GeoLite2-City/Country, GeoIP2-City/Country, DB-IP city/country lite): the
//!   region is the country's ISO code with the first (most general) subdivision's ISO code when
//!   present (`FR-IDF`), else the country (`FR`), else the continent (`continent:EU`, tagged
//!   because continent codes such as `AS` and `NA` are also country codes).
//!
//! GeoIP2-Enterprise has both kinds (the AS number in `traits.autonomous_system_number`), so one
//! file can serve both; GeoIP2-City has no AS number and GeoIP2-ISP no place, so those need two.
//! A database is read into memory (at most [`MAX_MMDB_BYTES`]) and checked at start; a lookup
//! that fails on a corrupt record counts as unknown.

use std::io::Read as _;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::{MaxMindDbError, Reader};
use serde::{Deserialize, Deserializer};

/// Largest database file read, in bytes (512 MiB; GeoLite2-City is about 60 MiB).
pub const MAX_MMDB_BYTES: u64 = 512 << 20;

/// Longest ISO or continent code taken from a record, in bytes; longer ones are ignored.
const MAX_CODE_BYTES: usize = 8;

/// Room for the longest region key: `continent:` or `CC-` plus a code.
pub(crate) const REGION_KEY_BYTES: usize = 10 + 2 * MAX_CODE_BYTES;

/// Why a MaxMind-format database cannot be used; each names the config field and the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MmdbError {
    /// The file cannot be read (missing, unreadable). Fix the path or its permissions.
    #[error("{field}: {path}: cannot read: {reason}")]
    Io {
        /// The config field naming the file.
        field: &'static str,
        /// The file's path.
        path: String,
        /// The operating system's message.
        reason: String,
    },
    /// The file is larger than [`MAX_MMDB_BYTES`] (its size in bytes).
    #[error("{field}: {path}: {bytes} bytes, above the {MAX_MMDB_BYTES}-byte limit")]
    TooLarge {
        /// The config field naming the file.
        field: &'static str,
        /// The file's path.
        path: String,
        /// The file's size, in bytes.
        bytes: u64,
    },
    /// The file is not a MaxMind DB (truncated, corrupt metadata or search tree, another format).
    #[error("{field}: {path}: not a usable MaxMind DB file: {reason}")]
    Invalid {
        /// The config field naming the file.
        field: &'static str,
        /// The file's path.
        path: String,
        /// What the reader found wrong.
        reason: String,
    },
}

/// One MaxMind-format database, held in memory; lookups borrow from it and do not allocate.
pub(crate) struct Mmdb {
    reader: Reader<Vec<u8>>,
    /// An IPv4-only database (`ip_version` 4) cannot answer for IPv6 addresses.
    v4_only: bool,
}

impl std::fmt::Debug for Mmdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let meta = self.reader.metadata();
        f.debug_struct("Mmdb").field("database_type", &meta.database_type).field("nodes", &meta.node_count).finish()
    }
}

impl Mmdb {
    /// Reads and opens the database at `path`, named by config field `field` in errors.
    ///
    /// # Errors
    /// [`MmdbError`] when the file cannot be read, is above [`MAX_MMDB_BYTES`], or is not a
    /// MaxMind DB.
    pub(crate) fn load(field: &'static str, path: &Path) -> Result<Self, MmdbError> {
        let shown = || path.display().to_string();
        let io = |e: std::io::Error| MmdbError::Io { field, path: shown(), reason: e.to_string() };
        let file = std::fs::File::open(path).map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len();
        if bytes > MAX_MMDB_BYTES {
            return Err(MmdbError::TooLarge { field, path: shown(), bytes });
        }
        // Read at most one byte past the limit, in case the file grew since its size was read.
        let mut buf = Vec::with_capacity(usize::try_from(bytes).unwrap_or(0));
        file.take(MAX_MMDB_BYTES + 1).read_to_end(&mut buf).map_err(io)?;
        let read = buf.len() as u64;
        if read > MAX_MMDB_BYTES {
            return Err(MmdbError::TooLarge { field, path: shown(), bytes: read });
        }
        let db =
            Self::from_bytes(buf).map_err(|e| MmdbError::Invalid { field, path: shown(), reason: e.to_string() })?;
        let meta = db.reader.metadata();
        tracing::info!(field, path = %shown(), database_type = %meta.database_type, build_epoch = meta.build_epoch,
            "MaxMind database loaded");
        Ok(db)
    }

    /// Opens a database from its bytes.
    ///
    /// # Errors
    /// The reader's error when the bytes are not a MaxMind DB.
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<Self, MaxMindDbError> {
        let reader = Reader::from_source(bytes)?;
        let v4_only = reader.metadata().ip_version == 4;
        Ok(Self { reader, v4_only })
    }

    /// The record for `ip` (IPv4-mapped IPv6 addresses are looked up as IPv4); `Ok(None)` when
    /// the database has nothing for it.
    ///
    /// # Errors
    /// The reader's error when the record is corrupt or not shaped as expected.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Result<Option<GeoRecord<'_>>, MaxMindDbError> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.v4_only && ip.is_ipv6() {
            return Ok(None);
        }
        self.reader.lookup(ip)?.decode::<GeoRecord<'_>>()
    }
}

/// The fields the tracker reads from a record, borrowed from the database; the rest is skipped.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GeoRecord<'a> {
    /// AS databases (GeoLite2-ASN, GeoIP2-ISP).
    autonomous_system_number: Option<u32>,
    /// GeoIP2-Enterprise.
    traits: Option<Traits>,
    #[serde(borrow)]
    country: Option<Place<'a>>,
    #[serde(borrow)]
    continent: Option<Place<'a>>,
    /// The first (most general) subdivision only.
    #[serde(borrow, default, deserialize_with = "first_place")]
    subdivisions: Option<Place<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct Traits {
    autonomous_system_number: Option<u32>,
}

/// A continent (`code`), country or subdivision (`iso_code`).
#[derive(Debug, Default, Deserialize)]
struct Place<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
    #[serde(borrow)]
    code: Option<&'a str>,
}

impl GeoRecord<'_> {
    /// The AS number, if the record has a non-zero one.
    pub(crate) fn asn(&self) -> Option<u32> {
        let traits = self.traits.as_ref().and_then(|t| t.autonomous_system_number);
        self.autonomous_system_number.or(traits).filter(|&asn| asn != 0)
    }

    /// The region key (`FR-IDF`, `FR` or `continent:EU`, see the module docs), written into
    /// `buf`; `None` when the record has no usable place.
    pub(crate) fn region_key<'b>(&self, buf: &'b mut [u8; REGION_KEY_BYTES]) -> Option<&'b str> {
        let country = usable(self.country.as_ref().and_then(|p| p.iso_code));
        let subdivision = usable(self.subdivisions.as_ref().and_then(|p| p.iso_code));
        let continent = usable(self.continent.as_ref().and_then(|p| p.code));
        let parts: [&str; 3] = match (country, subdivision, continent) {
            (Some(country), Some(sub), _) => [country, "-", sub],
            (Some(country), None, _) => [country, "", ""],
            (None, _, Some(continent)) => ["continent:", continent, ""],
            (None, _, None) => return None,
        };
        let mut len = 0;
        for part in parts {
            // Each part is at most MAX_CODE_BYTES or the 10-byte prefix, so they fit in the buffer.
            buf.get_mut(len..len + part.len())?.copy_from_slice(part.as_bytes());
            len += part.len();
        }
        // Whole `&str`s were copied, so the bytes are UTF-8.
        std::str::from_utf8(&buf[..len]).ok()
    }
}

/// `code` unless it is empty or longer than [`MAX_CODE_BYTES`].
fn usable(code: Option<&str>) -> Option<&str> {
    code.filter(|c| !c.is_empty() && c.len() <= MAX_CODE_BYTES)
}

/// Reads a subdivision list keeping only its first element, without allocating for the rest.
fn first_place<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Place<'de>>, D::Error> {
    struct First;
    impl<'de> serde::de::Visitor<'de> for First {
        type Value = Option<Place<'de>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of subdivisions")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<Place<'de>>()?;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }
    deserializer.deserialize_seq(First)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(file: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file)
    }

    fn at(db: &Mmdb, ip: &str) -> (Option<u32>, Option<String>) {
        let Some(record) = db.lookup(ip.parse().unwrap()).unwrap() else { return (None, None) };
        let mut buf = [0; REGION_KEY_BYTES];
        (record.asn(), record.region_key(&mut buf).map(str::to_owned))
    }

    #[test]
    fn asn_databases_give_the_as_number_for_v4_and_v6() {
        let db = Mmdb::load("ip_asn_mmdb", &data("asn.mmdb")).unwrap();
        assert_eq!(at(&db, "198.51.100.7"), (Some(64600), None));
        assert_eq!(at(&db, "::ffff:203.0.113.1"), (Some(64600), None));
        assert_eq!(at(&db, "2001:db8:1ff:1::1"), (Some(64601), None));
        assert_eq!(at(&db, "192.0.2.1"), (None, None));
        assert_eq!(at(&db, "2001:db8:300::1"), (None, None));
    }

    #[test]
    fn city_databases_give_country_and_subdivision_else_country_else_continent() {
        let db = Mmdb::load("ip_region_mmdb", &data("city.mmdb")).unwrap();
        assert_eq!(at(&db, "198.51.100.7"), (None, Some("FR-IDF".into())));
        assert_eq!(at(&db, "203.0.113.9"), (None, Some("DE".into())));
        assert_eq!(at(&db, "192.0.2.1"), (None, Some("continent:AS".into())));
        assert_eq!(at(&db, "2001:db8:100::1"), (None, Some("US-CA".into())));
        assert_eq!(at(&db, "2001:db8:300::1"), (None, None));
    }

    #[test]
    fn an_enterprise_database_gives_both() {
        let db = Mmdb::load("ip_asn_mmdb", &data("enterprise.mmdb")).unwrap();
        assert_eq!(at(&db, "198.51.100.7"), (Some(64700), Some("FR-IDF".into())));
        assert_eq!(at(&db, "2001:db8:100::1"), (None, Some("US".into())));
    }

    fn place(iso: &str) -> Option<Place<'_>> {
        Some(Place { iso_code: Some(iso), code: None })
    }

    #[test]
    fn long_codes_are_ignored() {
        let long = "X".repeat(MAX_CODE_BYTES + 1);
        let record = GeoRecord { country: place("FR"), subdivisions: place(&long), ..GeoRecord::default() };
        let mut buf = [0; REGION_KEY_BYTES];
        assert_eq!(record.region_key(&mut buf), Some("FR"));
        let record = GeoRecord { country: place(&long), ..GeoRecord::default() };
        assert_eq!(record.region_key(&mut buf), None);
        let longest = "Y".repeat(MAX_CODE_BYTES);
        let continent = Some(Place { iso_code: None, code: Some(longest.as_str()) });
        let record = GeoRecord { continent, ..GeoRecord::default() };
        assert_eq!(record.region_key(&mut buf), Some(format!("continent:{longest}").as_str()));
    }

    #[test]
    fn unusable_files_are_refused_with_the_field_and_path() {
        let bytes = std::fs::read(data("city.mmdb")).unwrap();
        let truncated = std::env::temp_dir().join(format!("swarmcast-truncated-{}.mmdb", std::process::id()));
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let err = Mmdb::load("ip_region_mmdb", &truncated).unwrap_err();
        std::fs::remove_file(&truncated).unwrap();
        let shown = err.to_string();
        assert!(matches!(err, MmdbError::Invalid { .. }), "{shown}");
        assert!(shown.starts_with(&format!("ip_region_mmdb: {}: not a usable MaxMind DB", truncated.display())));
        // Garbage, or a CSV table given by mistake.
        assert!(Mmdb::from_bytes(b"10.0.0.0/8,1,eu\n".to_vec()).is_err());
        assert!(Mmdb::from_bytes(Vec::new()).is_err());
        let missing = Mmdb::load("ip_asn_mmdb", Path::new("/nonexistent/asn.mmdb")).unwrap_err();
        assert!(missing.to_string().starts_with("ip_asn_mmdb: /nonexistent/asn.mmdb: cannot read"), "{missing}");
    }
}
