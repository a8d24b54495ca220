//! Tests of the pure swarm registry.

use std::net::IpAddr;

use super::*;
use crate::locality::IpTable;

const TIMEOUT: Duration = Duration::from_secs(60);

fn id(s: &str) -> PeerId {
    s.parse().unwrap()
}

fn swarm(rendition: u32) -> SwarmId {
    SwarmId { customer: "acme".into(), content: "live".into(), rendition }
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn registry(capacity: usize) -> SwarmRegistry {
    SwarmRegistry::new(TIMEOUT, capacity, 100)
}

fn track(reg: &mut SwarmRegistry, now: Instant, p: &str, s: SwarmId) -> Result<(), RegistryFull> {
    reg.track(now, &id(p), s, Locality::default(), None)
}

fn peers(reg: &SwarmRegistry, now: Instant, p: &str, max: usize) -> Vec<PeerId> {
    reg.peers_for(now, &id(p), max, &PeeringRules::default(), History::default())
}

fn ids(list: &[&str]) -> Vec<PeerId> {
    list.iter().map(|p| id(p)).collect()
}

#[test]
fn peers_are_most_recent_first_and_never_self() {
    let t0 = Instant::now();
    let mut reg = registry(100);
    for (i, p) in ["a", "b", "c", "d"].iter().enumerate() {
        track(&mut reg, secs(t0, i as u64), p, swarm(0)).unwrap();
    }
    assert_eq!(peers(&reg, secs(t0, 5), "b", 10), ids(&["d", "c", "a"]));
    assert_eq!(peers(&reg, secs(t0, 5), "b", 2), ids(&["d", "c"]));
    // Activity moves a peer to the front.
    track(&mut reg, secs(t0, 6), "a", swarm(0)).unwrap();
    assert_eq!(peers(&reg, secs(t0, 6), "b", 10), ids(&["a", "d", "c"]));
}

#[test]
fn swarms_are_separate_and_tracking_moves_peers() {
    let t0 = Instant::now();
    let mut reg = registry(100);
    track(&mut reg, t0, "a", swarm(0)).unwrap();
    track(&mut reg, t0, "b", swarm(1)).unwrap();
    assert!(peers(&reg, t0, "a", 10).is_empty());
    assert_eq!(reg.swarm_count(), 2);
    track(&mut reg, t0, "a", swarm(1)).unwrap();
    assert_eq!(peers(&reg, t0, "b", 10), ids(&["a"]));
    assert_eq!((reg.peer_count(), reg.swarm_count()), (2, 1));
    let other_content = SwarmId { content: "other".into(), ..swarm(1) };
    track(&mut reg, t0, "c", other_content).unwrap();
    assert_eq!(peers(&reg, t0, "c", 10), Vec::<PeerId>::new());
}

#[test]
fn unknown_peer_gets_nothing() {
    let reg = registry(100);
    assert!(peers(&reg, Instant::now(), "x", 10).is_empty());
}

#[test]
fn silent_peers_expire_and_are_not_offered_before() {
    let t0 = Instant::now();
    let mut reg = registry(100);
    track(&mut reg, t0, "old", swarm(0)).unwrap();
    track(&mut reg, secs(t0, 30), "new", swarm(0)).unwrap();
    track(&mut reg, secs(t0, 61), "asker", swarm(0)).unwrap();
    // Not expired yet, but already stale: not offered.
    assert_eq!(peers(&reg, secs(t0, 61), "asker", 10), ids(&["new"]));
    assert_eq!(reg.expire(secs(t0, 61)), 1);
    assert_eq!(reg.peer_count(), 2);
    assert_eq!(reg.expire(secs(t0, 200)), 2);
    assert_eq!((reg.peer_count(), reg.swarm_count()), (0, 0));
}

#[test]
fn capacity_refuses_new_peers_unless_some_expire() {
    let t0 = Instant::now();
    let mut reg = registry(2);
    track(&mut reg, t0, "a", swarm(0)).unwrap();
    track(&mut reg, secs(t0, 10), "b", swarm(0)).unwrap();
    assert!(reg.is_full());
    assert_eq!(track(&mut reg, secs(t0, 20), "c", swarm(0)), Err(RegistryFull));
    // Known peers still update when full.
    assert_eq!(track(&mut reg, secs(t0, 20), "a", swarm(1)), Ok(()));
    // Once "b" is silent for the timeout, "c" takes its place.
    assert_eq!(track(&mut reg, secs(t0, 75), "c", swarm(0)), Ok(()));
    assert_eq!(peers(&reg, secs(t0, 75), "c", 10), Vec::<PeerId>::new());
    assert_eq!(reg.peer_count(), 2);
}

const TABLE: &str = "10.0.0.0/16,64500,eu\n10.1.0.0/16,64501,eu\n10.2.0.0/16,64502,us\n";

/// Tracks `p` at address `ip` with `profile` fields on top of the located place.
fn track_at(reg: &mut SwarmRegistry, table: &IpTable, now: Instant, p: &str, ip: &str, profile: Profile) {
    let locality = table.locate(ip.parse::<IpAddr>().unwrap());
    reg.track(now, &id(p), swarm(0), locality, Some(Profile { locality, ..profile })).unwrap();
}

#[test]
fn candidates_rank_by_subnet_then_asn_then_region_then_uplink() {
    let t0 = Instant::now();
    let table = IpTable::parse(TABLE).unwrap();
    let mut reg = registry(100);
    let p = Profile::default();
    track_at(&mut reg, &table, t0, "far", "192.0.2.1", Profile { uplink_kbps: 90_000, ..p });
    track_at(&mut reg, &table, t0, "region", "10.1.9.9", p);
    track_at(&mut reg, &table, t0, "asn-slow", "10.0.9.9", Profile { uplink_kbps: 1_000, ..p });
    track_at(&mut reg, &table, t0, "asn-fast", "10.0.8.8", Profile { uplink_kbps: 9_000, ..p });
    track_at(&mut reg, &table, t0, "subnet", "10.0.1.200", p);
    track_at(&mut reg, &table, t0, "other-us", "10.2.0.1", p);
    track_at(&mut reg, &table, t0, "me", "10.0.1.1", p);
    let ranked = peers(&reg, t0, "me", 10);
    assert_eq!(ranked, ids(&["subnet", "asn-fast", "asn-slow", "region", "far", "other-us"]));
}

#[test]
fn the_askers_history_puts_failures_last_and_successes_first() {
    let t0 = Instant::now();
    let table = IpTable::parse(TABLE).unwrap();
    let mut reg = registry(100);
    for p in ["a", "b", "c", "me"] {
        track_at(&mut reg, &table, t0, p, "10.0.0.1", Profile::default());
    }
    let failed = ids(&["c"]);
    let connected = ids(&["a"]);
    let history = History { connected: &connected, failed: &failed };
    let ranked = reg.peers_for(t0, &id("me"), 10, &PeeringRules::default(), history);
    assert_eq!(ranked, ids(&["a", "b", "c"]));
}

#[test]
fn rules_exclude_cellular_non_uploaders_and_asns() {
    let t0 = Instant::now();
    let table = IpTable::parse(TABLE).unwrap();
    let mut reg = registry(100);
    let p = Profile::default();
    track_at(&mut reg, &table, t0, "cell", "10.0.0.2", Profile { cellular: true, ..p });
    track_at(&mut reg, &table, t0, "leech", "10.0.0.3", Profile { upload_allowed: false, ..p });
    track_at(&mut reg, &table, t0, "us", "10.2.0.1", p);
    track_at(&mut reg, &table, t0, "eu", "10.1.0.1", p);
    track_at(&mut reg, &table, t0, "me", "10.0.0.1", p);
    let rules = PeeringRules::default();
    let ask = |rules: &PeeringRules| reg.peers_for(t0, &id("me"), 10, rules, History::default());
    assert_eq!(ask(&rules), ids(&["eu", "us"]));
    assert_eq!(ask(&PeeringRules { upload_on_cellular: true, ..rules.clone() }), ids(&["cell", "eu", "us"]));
    assert_eq!(ask(&PeeringRules { asn_deny: vec![64502], ..rules.clone() }), ids(&["eu"]));
    assert_eq!(ask(&PeeringRules { asn_allow: vec![64500, 64502], ..rules.clone() }), ids(&["us"]));
    // An asker outside the allowed ASes gets nobody.
    assert_eq!(ask(&PeeringRules { asn_allow: vec![64501], ..rules.clone() }), Vec::<PeerId>::new());
    assert_eq!(ask(&PeeringRules { upload_allowed: false, ..rules }), Vec::<PeerId>::new());
}

#[test]
fn a_slot_is_72_bytes() {
    assert_eq!(size_of::<Slot>(), 72);
}
