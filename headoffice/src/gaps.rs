//! `seq` gap detection per branch.
//!
//! Every gateway numbers its alerts 1, 2, 3… and never reuses a number, so a number head office
//! has not seen, between the lowest and the highest it has seen, is an alert that is missing:
//! still on its way (after an outage a gateway sends alarms first, so `seq` arrives out of
//! order), or evicted from a full outbox. A late arrival fills the hole. A new alert (new id)
//! whose `seq` was already seen means the gateway's data directory was wiped: a new sequence
//! (epoch) begins for that branch (`docs/CONTRACT.md` §4.2).
//!
//! The bookkeeping lives in the database (`alerts.epoch`, `branch_seq`), so the answer is the
//! same across restarts and whichever listener stored which alert; the holes themselves are
//! found by the database ([`crate::db::Store::gaps`]). This module turns them into the view.

use protocols::BranchId;
use protocols::time::{Timestamp, rfc3339_ms};
use serde::Serialize;

use crate::db::GapRow;

/// A run of missing `seq` values, `from..=to`, of one branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub branch: BranchId,
    pub from: u64,
    pub to: u64,
    /// When head office received the first alert beyond the hole.
    #[serde(with = "rfc3339_ms")]
    pub detected_at: Timestamp,
}

impl Gap {
    pub fn missing(&self) -> u64 {
        self.to - self.from + 1
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

/// The open holes as of `now`.
pub fn view(rows: Vec<GapRow>, now: Timestamp, settle: std::time::Duration) -> GapsView {
    let settle_c = chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX);
    let gaps = rows
        .into_iter()
        .map(|r| {
            let gap = Gap { branch: r.branch, from: r.from, to: r.to, detected_at: r.detected_at };
            let quiet = now.signed_duration_since(r.last_seen) >= settle_c;
            GapLine {
                missing: gap.missing(),
                last_alert_at: r.last_seen,
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

    #[test]
    fn a_gap_is_pending_while_the_branch_still_sends() {
        let row = GapRow { branch: BranchId::new("b1").unwrap(), from: 2, to: 2, detected_at: t(10), last_seen: t(10) };
        let settle = std::time::Duration::from_secs(60);
        assert_eq!(view(vec![row.clone()], t(30), settle).gaps[0].state, "pending");
        let v = view(vec![row], t(70), settle);
        assert_eq!((v.gaps[0].state, v.gaps[0].missing), ("missing", 1));
    }
}
