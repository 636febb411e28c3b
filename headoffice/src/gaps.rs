//! `seq` gap detection per branch.
//!
//! Every gateway numbers its alerts 1, 2, 3… and never reuses a number, so a number head office
//! has not seen, between the lowest and the highest it has seen, is an alert that is missing:
//! still on its way (after an outage a gateway sends alarms first, so `seq` arrives out of
//! order), or evicted from a full outbox. A late arrival fills the hole. A new alert (new id)
//! whose `seq` was already seen means the gateway's data directory was wiped: a new sequence
//! begins for that branch (`docs/CONTRACT.md` §4.2).
//!
//! The tracker is pure and fed in arrival order. `hq listen` feeds it live to log gaps as they
//! open and close; `hq gaps` replays the stored alerts (of one or several stores) by receipt
//! time, so the answer is the same whichever process saw which alert.

use std::collections::{BTreeMap, HashMap};

use protocols::BranchId;
use protocols::time::{Timestamp, rfc3339_ms};
use serde::Serialize;

/// A run of missing `seq` values, `from..=to`, of one branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub branch: BranchId,
    pub from: u64,
    pub to: u64,
    /// When head office first saw an alert beyond the hole.
    #[serde(with = "rfc3339_ms")]
    pub detected_at: Timestamp,
}

impl Gap {
    pub fn missing(&self) -> u64 {
        self.to - self.from + 1
    }
}

/// What one observed `seq` changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Holes this `seq` revealed.
    pub opened: Vec<Gap>,
    /// Whether it filled (part of) a known hole.
    pub filled: bool,
    /// Whether it started a new sequence (the gateway's data was wiped).
    pub restarted: bool,
}

#[derive(Debug, Clone, Default)]
struct BranchSeqs {
    min: u64,
    max: u64,
    /// Open holes: `from → (to, detected_at)`.
    holes: BTreeMap<u64, (u64, Timestamp)>,
    /// The last time any alert of the branch arrived.
    last_seen: Option<Timestamp>,
}

/// Per-branch `seq` bookkeeping. Feed it only alerts that are new by (branch, id).
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    branches: HashMap<BranchId, BranchSeqs>,
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that an alert with `seq` of `branch` arrived at `at`.
    pub fn observe(&mut self, branch: &BranchId, seq: u64, at: Timestamp) -> Observed {
        let mut out = Observed::default();
        let Some(b) = self.branches.get_mut(branch) else {
            self.branches
                .insert(branch.clone(), BranchSeqs { min: seq, max: seq, holes: BTreeMap::new(), last_seen: Some(at) });
            return out;
        };
        b.last_seen = Some(b.last_seen.map_or(at, |t| t.max(at)));
        let gap = |from: u64, to: u64| Gap { branch: branch.clone(), from, to, detected_at: at };
        if seq > b.max {
            if seq > b.max + 1 {
                b.holes.insert(b.max + 1, (seq - 1, at));
                out.opened.push(gap(b.max + 1, seq - 1));
            }
            b.max = seq;
        } else if seq < b.min {
            if seq + 1 < b.min {
                b.holes.insert(seq + 1, (b.min - 1, at));
                out.opened.push(gap(seq + 1, b.min - 1));
            }
            b.min = seq;
        } else if let Some((&from, &(to, detected))) =
            b.holes.range(..=seq).next_back().filter(|(_, (to, _))| seq <= *to)
        {
            b.holes.remove(&from);
            if from < seq {
                b.holes.insert(from, (seq - 1, detected));
            }
            if seq < to {
                b.holes.insert(seq + 1, (to, detected));
            }
            out.filled = true;
        } else {
            // Already seen, yet a new alert: a new sequence.
            *b = BranchSeqs { min: seq, max: seq, holes: BTreeMap::new(), last_seen: Some(at) };
            out.restarted = true;
        }
        out
    }

    /// Every open hole, by branch and `seq`.
    pub fn gaps(&self) -> Vec<Gap> {
        let mut v: Vec<Gap> = self
            .branches
            .iter()
            .flat_map(|(branch, b)| {
                b.holes.iter().map(|(&from, &(to, detected_at))| Gap { branch: branch.clone(), from, to, detected_at })
            })
            .collect();
        v.sort_by(|a, b| (&a.branch, a.from).cmp(&(&b.branch, b.from)));
        v
    }

    /// When the last alert of `branch` arrived.
    pub fn last_seen(&self, branch: &BranchId) -> Option<Timestamp> {
        self.branches.get(branch).and_then(|b| b.last_seen)
    }
}

pub const GAPS_VIEW_SCHEMA: &str = "hq-gaps/1";

/// `hq gaps`: every open hole, and whether the branch is still catching up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapsView {
    pub schema: &'static str,
    #[serde(with = "rfc3339_ms")]
    pub generated_at: Timestamp,
    /// A hole counts as `missing` once its branch has been quiet this long.
    pub settle_seconds: u64,
    pub gaps: Vec<GapLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapLine {
    #[serde(flatten)]
    pub gap: Gap,
    pub missing: u64,
    /// When the branch's last alert arrived.
    #[serde(with = "rfc3339_ms")]
    pub last_alert_at: Timestamp,
    /// `pending` while the branch still sends (a gateway catching up after an outage sends out
    /// of order), `missing` once it has been quiet for the settle time.
    pub state: &'static str,
}

/// The open holes of `tracker` as of `now`.
pub fn view(tracker: &SeqTracker, now: Timestamp, settle: std::time::Duration) -> GapsView {
    let settle_c = chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX);
    let gaps = tracker
        .gaps()
        .into_iter()
        .map(|gap| {
            let last = tracker.last_seen(&gap.branch).unwrap_or(gap.detected_at);
            let quiet = now.signed_duration_since(last) >= settle_c;
            GapLine {
                missing: gap.missing(),
                last_alert_at: last,
                state: if quiet { "missing" } else { "pending" },
                gap,
            }
        })
        .collect();
    GapsView { schema: GAPS_VIEW_SCHEMA, generated_at: now, settle_seconds: settle.as_secs(), gaps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn t(s: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(s)
    }

    fn b() -> BranchId {
        BranchId::new("b1").unwrap()
    }

    #[test]
    fn a_skipped_seq_is_a_gap_with_the_time_it_was_seen() {
        let mut tr = SeqTracker::new();
        for (i, s) in [1, 2, 3, 5, 6].into_iter().enumerate() {
            tr.observe(&b(), s, t(i as i64));
        }
        assert_eq!(tr.gaps(), vec![Gap { branch: b(), from: 4, to: 4, detected_at: t(3) }]);
    }

    #[test]
    fn a_late_arrival_closes_the_gap_and_a_partial_one_splits_it() {
        let mut tr = SeqTracker::new();
        tr.observe(&b(), 1, t(0));
        let o = tr.observe(&b(), 10, t(1));
        assert_eq!(o.opened.len(), 1);
        assert!(tr.observe(&b(), 5, t(2)).filled);
        let g: Vec<(u64, u64)> = tr.gaps().iter().map(|g| (g.from, g.to)).collect();
        assert_eq!(g, vec![(2, 4), (6, 9)]);
        for s in [2, 3, 4, 6, 7, 8, 9] {
            tr.observe(&b(), s, t(3));
        }
        assert!(tr.gaps().is_empty());
    }

    #[test]
    fn gaps_are_only_between_the_lowest_and_highest_seen() {
        let mut tr = SeqTracker::new();
        tr.observe(&b(), 100, t(0));
        tr.observe(&b(), 101, t(1));
        assert!(tr.gaps().is_empty(), "head office started late: 1..99 are not missing");
        tr.observe(&b(), 98, t(2));
        assert_eq!(tr.gaps().len(), 1);
        assert_eq!((tr.gaps()[0].from, tr.gaps()[0].to), (99, 99));
    }

    #[test]
    fn a_reused_seq_with_a_new_id_restarts_the_sequence() {
        let mut tr = SeqTracker::new();
        tr.observe(&b(), 1, t(0));
        tr.observe(&b(), 3, t(1));
        let o = tr.observe(&b(), 3, t(2));
        assert!(o.restarted);
        assert!(tr.gaps().is_empty());
    }

    #[test]
    fn branches_are_independent() {
        let mut tr = SeqTracker::new();
        let b2 = BranchId::new("b2").unwrap();
        tr.observe(&b(), 1, t(0));
        tr.observe(&b2, 7, t(0));
        tr.observe(&b(), 2, t(1));
        tr.observe(&b2, 8, t(1));
        assert!(tr.gaps().is_empty());
        assert_eq!(tr.last_seen(&b2), Some(t(1)));
    }

    #[test]
    fn a_gap_is_pending_while_the_branch_still_sends() {
        let mut tr = SeqTracker::new();
        tr.observe(&b(), 1, t(0));
        tr.observe(&b(), 3, t(10));
        let settle = std::time::Duration::from_secs(60);
        assert_eq!(view(&tr, t(30), settle).gaps[0].state, "pending");
        let v = view(&tr, t(70), settle);
        assert_eq!((v.gaps[0].state, v.gaps[0].missing), ("missing", 1));
    }
}
