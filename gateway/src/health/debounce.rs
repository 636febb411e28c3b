//! The debounced raise/clear switch every device runs: N failures to raise, M successes to
//! clear.

use super::*;

/// A debounced raise/clear switch: N failures to raise, M successes to clear.
#[derive(Debug, Clone, Default)]
pub(super) struct Debounce {
    pub(super) fails: u32,
    pub(super) oks: u32,
    pub(super) raised: bool,
    pub(super) first_fail_at: Option<Timestamp>,
    /// When the current run of good polls began: a clear dates from the first good poll,
    /// as a raise dates from the first failed one, so durations are true to within a poll.
    pub(super) first_ok_at: Option<Timestamp>,
}

pub(super) enum Edge {
    Raise,
    Clear,
    None,
}

impl Debounce {
    pub(super) fn observe(&mut self, ok: bool, at: Timestamp, offline_after: u32, online_after: u32) -> Edge {
        if ok {
            self.fails = 0;
            self.first_fail_at = None;
            self.first_ok_at.get_or_insert(at);
            self.oks = self.oks.saturating_add(1);
            if self.raised && self.oks >= online_after {
                self.raised = false;
                return Edge::Clear;
            }
        } else {
            self.oks = 0;
            self.first_ok_at = None;
            self.fails = self.fails.saturating_add(1);
            self.first_fail_at.get_or_insert(at);
            if !self.raised && self.fails >= offline_after {
                self.raised = true;
                return Edge::Raise;
            }
        }
        Edge::None
    }
}
