//! Where a peer is on the network: its subnet, autonomous system and region.
//!
//! The subnet comes from the address itself (/24 for IPv4, /48 for IPv6). The AS number and the
//! region come from an operator-supplied table of IP ranges, a CSV file with one range per line:
//!
//! ```text
//! # network, asn, region
//! 10.0.0.0/8,64512,eu-west
//! 2001:db8::/32,64513,us-east
//! 192.0.2.0-192.0.2.127,64514,eu-west
//! ```
//!
//! A network is a CIDR prefix or a `first-last` range; ranges must not overlap. Lookups are a
//! binary search over the sorted ranges.
//!
//! MaxMind-format databases (the `mmdb` module) can add what the table leaves unknown: the
//! [`Locator`] takes the table's AS number and region for an address when it has them (the
//! operator's override), and asks the databases for the others. Regions from a database share
//! the table's region ids by name (`FR-IDF`, `FR`, `continent:EU`), so a table region named
//! `FR` is the same region as a database's `FR`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;

use crate::mmdb::{Mmdb, REGION_KEY_BYTES};
use crate::{Config, ConfigError};

/// Most ranges one table holds.
pub const MAX_RANGES: usize = 4_000_000;

/// Most distinct regions one table names.
pub const MAX_REGIONS: usize = u16::MAX as usize - 1;

/// A peer's place on the network, in 16 bytes. `0` means unknown for `asn` and `region`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Locality {
    /// The /24 (IPv4) or /48 (IPv6) prefix, tagged so the two families never compare equal;
    /// 0 when the address is unknown.
    pub(crate) subnet: u64,
    /// Autonomous system number, from the table or an AS database.
    pub(crate) asn: u32,
    /// Region id (1-based: the table's regions first, then the databases' as they are met).
    pub(crate) region: u16,
}

impl Locality {
    /// How close two peers are: 3 same subnet, 2 same AS, 1 same region, 0 otherwise.
    pub(crate) fn closeness(&self, other: &Self) -> u8 {
        if self.subnet != 0 && self.subnet == other.subnet {
            3
        } else if self.asn != 0 && self.asn == other.asn {
            2
        } else if self.region != 0 && self.region == other.region {
            1
        } else {
            0
        }
    }

    /// The AS number, if the table knows it.
    pub(crate) fn asn(&self) -> Option<u32> {
        (self.asn != 0).then_some(self.asn)
    }
}

/// Why an IP-range table cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// A line is not `network,asn,region` with a valid network and AS number (1-based line).
    #[error("line {0}: expected `network,asn,region` (network: CIDR or first-last)")]
    BadLine(usize),
    /// Two ranges overlap (1-based line of the later one in sorted order).
    #[error("ranges overlap near line {0}")]
    Overlap(usize),
    /// More than [`MAX_RANGES`] ranges or [`MAX_REGIONS`] regions.
    #[error("too many ranges or regions")]
    TooLarge,
    /// The file could not be read.
    #[error("cannot read the table: {0}")]
    Io(String),
}

/// The operator's IP-range → (AS, region) table.
#[derive(Debug, Clone, Default)]
pub struct IpTable {
    /// (first, last, asn, region), sorted by `first`, non-overlapping; addresses as IPv6
    /// (IPv4 mapped into `::ffff:0:0/96`).
    ranges: Vec<(u128, u128, u32, u16)>,
    regions: Vec<String>,
}

impl IpTable {
    /// Parses the CSV text of a table (see the module docs); blank lines and `#` comments are
    /// skipped.
    ///
    /// # Errors
    /// [`TableError`] for the first bad line, overlapping ranges, or a table too large.
    pub fn parse(text: &str) -> Result<Self, TableError> {
        let mut region_ids: HashMap<&str, u16> = HashMap::new();
        let mut regions = Vec::new();
        let mut ranges = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || TableError::BadLine(n + 1);
            let mut fields = line.split(',').map(str::trim);
            let (Some(net), Some(asn), region, None) = (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            let (first, last) = parse_network(net).ok_or_else(bad)?;
            let asn: u32 = asn.parse().map_err(|_| bad())?;
            let region = match region.filter(|r| !r.is_empty()) {
                None => 0,
                Some(name) => match region_ids.get(name) {
                    Some(&id) => id,
                    None => {
                        if regions.len() >= MAX_REGIONS {
                            return Err(TableError::TooLarge);
                        }
                        regions.push(name.to_owned());
                        // Bounded by MAX_REGIONS just above, so the 1-based index fits in u16.
                        let id = u16::try_from(regions.len()).map_err(|_| TableError::TooLarge)?;
                        region_ids.insert(name, id);
                        id
                    }
                },
            };
            if ranges.len() >= MAX_RANGES {
                return Err(TableError::TooLarge);
            }
            ranges.push((first, last, asn, region));
        }
        ranges.sort_unstable_by_key(|r| r.0);
        for (i, pair) in ranges.windows(2).enumerate() {
            if pair[1].0 <= pair[0].1 {
                return Err(TableError::Overlap(i + 2));
            }
        }
        Ok(Self { ranges, regions })
    }

    /// Reads and parses the table at `path`.
    ///
    /// # Errors
    /// As [`IpTable::parse`], or [`TableError::Io`].
    pub fn load(path: &std::path::Path) -> Result<Self, TableError> {
        let text = std::fs::read_to_string(path).map_err(|e| TableError::Io(format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the table has no range.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The name of a region by its 1-based index in the table (as matched internally).
    pub fn region_name(&self, region: u16) -> Option<&str> {
        self.regions.get(usize::from(region).checked_sub(1)?).map(String::as_str)
    }

    /// Where `ip` is.
    pub(crate) fn locate(&self, ip: IpAddr) -> Locality {
        let bits = as_v6(ip);
        let (asn, region) = match self.ranges.partition_point(|r| r.0 <= bits).checked_sub(1) {
            Some(i) if self.ranges[i].1 >= bits => (self.ranges[i].2, self.ranges[i].3),
            _ => (0, 0),
        };
        Locality { subnet: subnet(ip), asn, region }
    }
}

/// Where peers are: the operator's table first, then the MaxMind-format databases for the AS
/// number or region the table leaves unknown.
#[derive(Debug)]
pub(crate) struct Locator {
    table: IpTable,
    asn_db: Option<Arc<Mmdb>>,
    region_db: Option<Arc<Mmdb>>,
    regions: RegionIds,
    lookup_errors: Counter,
}

impl Locator {
    /// Loads the table and databases named by `ip_table`, `ip_asn_mmdb` and `ip_region_mmdb`
    /// (a path given for both databases is read once); database lookups that fail count in
    /// `lookup_errors`.
    ///
    /// # Errors
    /// [`ConfigError::IpTable`] or [`ConfigError::Mmdb`] for a file that cannot be used.
    pub(crate) fn from_config(config: &Config, lookup_errors: Counter) -> Result<Self, ConfigError> {
        let table = match config.ip_table.as_str() {
            "" => IpTable::default(),
            path => IpTable::load(std::path::Path::new(path))?,
        };
        let open = |field, path: &str| match path {
            "" => Ok(None),
            path => Mmdb::load(field, std::path::Path::new(path)).map(|db| Some(Arc::new(db))),
        };
        let asn_db = open("ip_asn_mmdb", &config.ip_asn_mmdb)?;
        let region_db = match asn_db.as_ref() {
            Some(db) if config.ip_region_mmdb == config.ip_asn_mmdb => Some(Arc::clone(db)),
            _ => open("ip_region_mmdb", &config.ip_region_mmdb)?,
        };
        Ok(Self::new(table, asn_db, region_db, lookup_errors))
    }

    /// A locator over `table` and the optional databases.
    pub(crate) fn new(
        table: IpTable,
        asn_db: Option<Arc<Mmdb>>,
        region_db: Option<Arc<Mmdb>>,
        lookup_errors: Counter,
    ) -> Self {
        let regions = RegionIds::new(&table.regions);
        Self { table, asn_db, region_db, regions, lookup_errors }
    }

    /// Where `ip` is.
    pub(crate) fn locate(&self, ip: IpAddr) -> Locality {
        let mut place = self.table.locate(ip);
        let asn_db = self.asn_db.as_deref().filter(|_| place.asn == 0);
        let region_db = self.region_db.as_deref().filter(|_| place.region == 0);
        match (asn_db, region_db) {
            (Some(a), Some(r)) if std::ptr::eq(a, r) => self.fill(a, ip, &mut place, true, true),
            _ => {
                if let Some(db) = asn_db {
                    self.fill(db, ip, &mut place, true, false);
                }
                if let Some(db) = region_db {
                    self.fill(db, ip, &mut place, false, true);
                }
            }
        }
        place
    }

    /// Sets `place`'s AS number and/or region from `db`'s record for `ip`; a failed lookup
    /// leaves them unknown and is counted.
    fn fill(&self, db: &Mmdb, ip: IpAddr, place: &mut Locality, asn: bool, region: bool) {
        let record = match db.lookup(ip) {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(error) => {
                self.lookup_errors.inc();
                tracing::debug!(%error, "MaxMind database lookup failed");
                return;
            }
        };
        if asn {
            place.asn = record.asn().unwrap_or(0);
        }
        let mut buf = [0; REGION_KEY_BYTES];
        if let Some(key) = record.region_key(&mut buf).filter(|_| region) {
            place.region = self.regions.id(key);
        }
    }
}

/// Region names → ids: the table's regions, then the databases' as they are met, up to
/// [`MAX_REGIONS`] (later ones stay unknown).
#[derive(Debug, Default)]
struct RegionIds {
    ids: RwLock<HashMap<Box<str>, u16>>,
}

impl RegionIds {
    /// Ids 1, 2, … for `names`, which are distinct and at most [`MAX_REGIONS`].
    fn new(names: &[String]) -> Self {
        let ids = names.iter().zip(1..=u16::MAX).map(|(name, id)| (name.as_str().into(), id)).collect();
        Self { ids: RwLock::new(ids) }
    }

    /// The id of region `name`, new if it was never met; 0 when the ids are used up.
    fn id(&self, name: &str) -> u16 {
        // Plain map reads and inserts cannot leave the map inconsistent; a poisoned lock is
        // still usable.
        if let Some(&id) = self.ids.read().unwrap_or_else(PoisonError::into_inner).get(name) {
            return id;
        }
        let mut ids = self.ids.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = ids.get(name) {
            return id;
        }
        let Some(id) = u16::try_from(ids.len() + 1).ok().filter(|_| ids.len() < MAX_REGIONS) else {
            return 0;
        };
        ids.insert(name.into(), id);
        id
    }
}

/// The tagged /24 or /48 prefix of `ip`.
fn subnet(ip: IpAddr) -> u64 {
    match canonical(ip) {
        IpAddr::V4(v4) => (1 << 62) | u64::from(v4.to_bits() >> 8),
        // The top 48 bits of a u128 fit in a u64; tag bit 63 keeps it apart from IPv4.
        IpAddr::V6(v6) => (1 << 63) | (v6.to_bits() >> 80) as u64,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn as_v6(ip: IpAddr) -> u128 {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

/// `first-last` or `addr/len` as an inclusive range of IPv6-space addresses.
fn parse_network(net: &str) -> Option<(u128, u128)> {
    if let Some((first, last)) = net.split_once('-') {
        let (first, last) = (as_v6(first.trim().parse().ok()?), as_v6(last.trim().parse().ok()?));
        return (first <= last).then_some((first, last));
    }
    let (addr, len) = net.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    let len = match canonical(addr) {
        IpAddr::V4(_) if len <= 32 => len + 96,
        IpAddr::V6(_) if len <= 128 => len,
        _ => return None,
    };
    let host_bits = 128 - len;
    let mask = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
    let first = as_v6(addr) & !mask;
    Some((first, first | mask))
}

/// An IPv6 address from its bits (for tests and callers holding raw bits).
#[cfg(test)]
fn v6(bits: u128) -> IpAddr {
    IpAddr::V6(std::net::Ipv6Addr::from_bits(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "# network,asn,region\n10.0.0.0/8,64512,eu\n\n192.0.2.0-192.0.2.127, 64514 ,us\n2001:db8::/32,64513,eu\n198.51.100.0/24,64515\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_give_asn_and_region() {
        let table = IpTable::parse(TABLE).unwrap();
        assert_eq!(table.len(), 4);
        let a = table.locate(ip("10.1.2.3"));
        assert_eq!((a.asn, table.region_name(a.region)), (64512, Some("eu")));
        let b = table.locate(ip("192.0.2.127"));
        assert_eq!((b.asn, table.region_name(b.region)), (64514, Some("us")));
        assert_eq!(table.locate(ip("192.0.2.128")).asn, 0);
        let c = table.locate(ip("2001:db8:1::1"));
        assert_eq!((c.asn, c.region), (64513, a.region));
        assert_eq!(table.locate(ip("198.51.100.9")).region, 0);
        assert_eq!(table.locate(ip("::ffff:10.0.0.1")).asn, 64512);
        assert_eq!(table.locate(v6(1)).asn, 0);
    }

    #[test]
    fn closeness_is_subnet_then_asn_then_region() {
        let table = IpTable::parse(TABLE).unwrap();
        let at = |s| table.locate(ip(s));
        assert_eq!(at("10.1.2.3").closeness(&at("10.1.2.200")), 3);
        assert_eq!(at("10.1.2.3").closeness(&at("10.9.9.9")), 2);
        assert_eq!(at("10.1.2.3").closeness(&at("2001:db8::1")), 1);
        assert_eq!(at("10.1.2.3").closeness(&at("192.0.2.1")), 0);
        assert_eq!(at("2001:db8:1:2::1").closeness(&at("2001:db8:1:ffff::1")), 3);
        assert_eq!(at("2001:db8:1::1").closeness(&at("2001:db8:2::1")), 2);
        // Without a table, only the subnet tells.
        let empty = IpTable::default();
        assert_eq!(empty.locate(ip("10.0.0.1")).closeness(&empty.locate(ip("10.0.1.1"))), 0);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert_eq!(IpTable::parse("10.0.0.0/33,1,x").unwrap_err(), TableError::BadLine(1));
        assert_eq!(IpTable::parse("\nnope,1,x").unwrap_err(), TableError::BadLine(2));
        assert_eq!(IpTable::parse("10.0.0.0/8,x,y").unwrap_err(), TableError::BadLine(1));
        assert_eq!(IpTable::parse("10.0.0.9-10.0.0.1,1").unwrap_err(), TableError::BadLine(1));
        assert_eq!(IpTable::parse("10.0.0.0/8,1,a\n10.1.0.0/16,2,b").unwrap_err(), TableError::Overlap(2));
    }

    fn mmdb(file: &str) -> Option<Arc<Mmdb>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
        Some(Arc::new(Mmdb::load("ip_asn_mmdb", &path).unwrap()))
    }

    /// The table names `FR-IDF` and `DE` like a city database does, and covers part of 10/8 with
    /// no region and 198.51.100.0/25 (which the databases also know) with its own AS.
    const OVERRIDES: &str = "10.0.0.0/16,64512,FR-IDF\n10.1.0.0/16,64513\n198.51.100.0/25,64514,DE\n";

    #[test]
    fn the_table_wins_and_the_databases_fill_the_rest() {
        let errors = Counter::default();
        let table = IpTable::parse(OVERRIDES).unwrap();
        let locator = Locator::new(table, mmdb("asn.mmdb"), mmdb("city.mmdb"), errors.clone());
        let at = |s| locator.locate(ip(s));
        // The table has both: the databases (AS 64999 / JP for 10/8, 64600 / FR-IDF) are not asked.
        assert_eq!((at("10.0.1.1").asn, at("10.0.1.1").region), (64512, 1));
        assert_eq!(at("198.51.100.1").asn, 64514);
        assert_eq!(at("198.51.100.1").region, locator.regions.id("DE"));
        // The table has the AS only: the region comes from the city database.
        assert_eq!(at("10.1.0.1").asn, 64513);
        assert_eq!(at("10.1.0.1").region, locator.regions.id("JP"));
        // Only in the databases; `FR-IDF` is the table's own region 1.
        assert_eq!((at("198.51.100.200").asn, at("198.51.100.200").region), (64600, 1));
        assert_eq!(at("203.0.113.1").closeness(&at("198.51.100.200")), 2);
        assert_eq!(at("10.0.1.1").closeness(&at("198.51.100.200")), 1);
        let six = at("2001:db8:1ff::1");
        assert_eq!((six.asn, six.region), (64601, locator.regions.id("US-CA")));
        assert_eq!(six.closeness(&at("2001:db8:200::1")), 2);
        // Absent from the table and both databases.
        assert_eq!((at("100.64.0.1").asn, at("100.64.0.1").region), (0, 0));
        assert_eq!((at("2001:db8:300::1").asn, at("2001:db8:300::1").region), (0, 0));
        assert_eq!(errors.get(), 0);
        // A malformed record is unknown, and counted.
        assert_eq!(at("233.252.0.1").asn, 0);
        assert_eq!(errors.get(), 1);
    }

    #[test]
    fn one_database_can_serve_both() {
        let db = mmdb("enterprise.mmdb");
        let locator = Locator::new(IpTable::default(), db.clone(), db, Counter::default());
        let place = locator.locate(ip("198.51.100.7"));
        assert_eq!((place.asn, place.region), (64700, locator.regions.id("FR-IDF")));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/enterprise.mmdb");
        let path = dir.display().to_string();
        let config = Config { ip_asn_mmdb: path.clone(), ip_region_mmdb: path, ..Config::default() };
        let locator = Locator::from_config(&config, Counter::default()).unwrap();
        assert!(Arc::ptr_eq(locator.asn_db.as_ref().unwrap(), locator.region_db.as_ref().unwrap()));
        assert_eq!(locator.locate(ip("::ffff:198.51.100.7")).asn, 64700);
        let bad = Config { ip_region_mmdb: "/nonexistent.mmdb".into(), ..Config::default() };
        let err = Locator::from_config(&bad, Counter::default()).unwrap_err();
        assert!(err.to_string().starts_with("ip_region_mmdb: /nonexistent.mmdb: cannot read"), "{err}");
    }

    #[test]
    fn region_ids_are_shared_and_bounded() {
        let regions = RegionIds::new(&["eu".to_owned(), "us".to_owned()]);
        assert_eq!((regions.id("eu"), regions.id("us"), regions.id("FR"), regions.id("FR")), (1, 2, 3, 3));
        let full: Vec<String> = (0..MAX_REGIONS).map(|i| i.to_string()).collect();
        let regions = RegionIds::new(&full);
        assert_eq!((regions.id("0"), regions.id(&(MAX_REGIONS - 1).to_string())), (1, u16::MAX - 1));
        assert_eq!(regions.id("FR"), 0);
    }
}
