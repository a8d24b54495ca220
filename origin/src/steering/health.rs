//! Pathway health from probe outcomes, and the priority order it implies (pure).

use serde::Serialize;

/// Successful probes in a row that bring a bad pathway back.
pub const RECOVERY_PROBES: u32 = 2;

/// What one probe of a pathway found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Playlist fresh and newest segment fetched in time.
    Ok,
    /// What went wrong: an error, a stale playlist or a slow response.
    Bad(String),
}

/// The health of one pathway, as the steering endpoint and `/steer/health` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathwayHealth {
    /// Pathway id, e.g. `cdn-a`.
    pub id: String,
    /// Whether it is steered to.
    pub healthy: bool,
    /// Successful probes in a row.
    pub ok_in_a_row: u32,
    /// Probes made.
    pub probes: u64,
    /// The last problem seen, if any.
    pub last_problem: Option<String>,
}

impl PathwayHealth {
    /// A pathway not probed yet: healthy until shown otherwise.
    pub fn new(id: &str) -> Self {
        Self { id: id.to_owned(), healthy: true, ok_in_a_row: RECOVERY_PROBES, probes: 0, last_problem: None }
    }

    /// Takes one probe's outcome: any problem marks the pathway bad at once; it comes back after
    /// [`RECOVERY_PROBES`] good probes in a row.
    pub fn observe(&mut self, outcome: Outcome) {
        self.probes += 1;
        match outcome {
            Outcome::Ok => {
                self.ok_in_a_row = self.ok_in_a_row.saturating_add(1);
                if self.ok_in_a_row >= RECOVERY_PROBES {
                    self.healthy = true;
                }
            }
            Outcome::Bad(why) => {
                self.ok_in_a_row = 0;
                self.healthy = false;
                self.last_problem = Some(why);
            }
        }
    }
}

/// Pathway ids in priority order: healthy ones in configured order, then the bad ones (still
/// listed: every id must stay declared, and a client with nothing better keeps playing).
pub fn priority(health: &[PathwayHealth]) -> Vec<String> {
    let good = health.iter().filter(|h| h.healthy);
    let bad = health.iter().filter(|h| !h.healthy);
    good.chain(bad).map(|h| h.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_moves_down_and_recovers_after_two_good_probes() {
        let mut h = vec![PathwayHealth::new("cdn-a"), PathwayHealth::new("cdn-b")];
        assert_eq!(priority(&h), ["cdn-a", "cdn-b"]);
        h[0].observe(Outcome::Bad("connection refused".into()));
        assert_eq!(priority(&h), ["cdn-b", "cdn-a"]);
        h[0].observe(Outcome::Ok);
        assert_eq!(priority(&h), ["cdn-b", "cdn-a"]);
        h[0].observe(Outcome::Ok);
        assert_eq!(priority(&h), ["cdn-a", "cdn-b"]);
        assert_eq!(h[0].probes, 3);
    }
}
