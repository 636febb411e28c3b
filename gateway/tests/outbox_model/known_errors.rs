//! Divergences between the outbox and the model that the contract allows, stated once.
//!
//! * **Acked, not yet flushed, then a crash.** Removing an acknowledged event is not flushed on
//!   its own (that would cost an fsync per PUBACK). sled's background flusher and the next group
//!   commit make it durable, but if the process dies first the event is back after restart and
//!   is delivered again. That is a duplicate, which at-least-once delivery allows (head office
//!   dedupes on `id`). The model tracks acks since the last flush (`acked_unflushed`): after a
//!   restart exactly those may reappear — nothing else, and nothing durable may be missing.
//! * Not allowed, and therefore not here: losing an appended event, reusing a seq, evicting a
//!   priority event, counters that differ from the contents.

use crate::model::Model;

/// After a reopen or crash: the outbox must hold every event the model holds, plus possibly
/// some of `acked_unflushed`; the model adopts the reappeared ones.
pub fn reconcile_after_restart(m: &mut Model, actual: &[(u64, bool)]) -> Result<(), String> {
    let actual_set: std::collections::BTreeSet<u64> = actual.iter().map(|(s, _)| *s).collect();
    let missing: Vec<u64> = m.stored.keys().filter(|s| !actual_set.contains(s)).copied().collect();
    if !missing.is_empty() {
        return Err(format!("durable events lost after restart: {missing:?}"));
    }
    for s in &actual_set {
        if m.stored.contains_key(s) {
            continue;
        }
        if !m.acked_unflushed.contains(s) {
            return Err(format!("seq {s} reappeared after restart but was not an unflushed ack"));
        }
        let ev = *m.all.get(s).ok_or_else(|| format!("seq {s} was never appended"))?;
        m.stored.insert(*s, ev);
    }
    m.acked_unflushed.clear();
    Ok(())
}
