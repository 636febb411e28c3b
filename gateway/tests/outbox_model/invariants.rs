//! The invariants checked after every action.
//!
//! 1. Contiguous seq: every append gets `last_seq + 1`, also across reopen and crash.
//! 2. Exact counters: `depth()` and `bytes()` equal the model's.
//! 3. Delivery order: `pending_from` yields priority events by seq, then the rest by seq, and
//!    reading in small windows yields the same sequence as one big read.
//! 4. The bound: an append evicts exactly what the policy says; never a priority event; the
//!    outbox is over a bound only when no non-priority event is left.
//! 5. No loss: every appended (durable) event not yet acked or evicted is delivered — after a
//!    reopen or a crash too (`known_errors` states the one allowed divergence).

use gateway::outbox::{Appended, Cursor, Outbox};

use crate::model::{Expect, Model};

/// (seq, is_priority) in delivery order, read in one go.
pub fn stored(outbox: &Outbox) -> Result<Vec<(u64, bool)>, String> {
    let mut c = Cursor::START;
    let all = outbox.pending_from(&mut c, usize::MAX).map_err(|e| e.to_string())?;
    Ok(all.iter().map(|p| (p.seq().0, p.is_priority())).collect())
}

pub fn appended(m: &Model, a: &Appended, expect: &Expect) -> Result<(), String> {
    if a.alert.seq.0 != expect.seq {
        return Err(format!("seq {} assigned, expected {} (not contiguous)", a.alert.seq.0, expect.seq));
    }
    if a.evicted != expect.evicted.len() as u64 || a.stored != expect.stored {
        return Err(format!(
            "append {}: evicted {} stored {}, the model says evicted {:?} stored {}",
            expect.seq, a.evicted, a.stored, expect.evicted, expect.stored
        ));
    }
    if !m.evicted_priority.is_empty() {
        return Err(format!("the policy evicted priority events {:?}", m.evicted_priority));
    }
    Ok(())
}

pub fn check(outbox: &Outbox, m: &Model, step: usize) -> Result<(), String> {
    if outbox.last_seq().0 != m.last_seq {
        return Err(format!("last_seq {} != model {}", outbox.last_seq().0, m.last_seq));
    }
    if outbox.depth() != m.count() {
        return Err(format!("depth {} != model {}", outbox.depth(), m.count()));
    }
    if outbox.bytes() != m.bytes() {
        return Err(format!("bytes {} != model {}", outbox.bytes(), m.bytes()));
    }
    let one = stored(outbox)?;
    let seqs: Vec<u64> = one.iter().map(|(s, _)| *s).collect();
    let want = m.delivery_order();
    if seqs != want {
        return Err(format!("delivery order {seqs:?} != model {want:?}"));
    }
    for (s, prio) in &one {
        let lane = m.stored.get(s).map(|e| e.lane);
        if lane.map(|l| l == 0) != Some(*prio) {
            return Err(format!("seq {s} in the wrong class (priority={prio}, model lane {lane:?})"));
        }
    }
    // Windowed reads (the uplink's path) give the same sequence.
    let w = 1 + step % 4;
    let mut c = Cursor::START;
    let mut windowed = Vec::new();
    loop {
        let got = outbox.pending_from(&mut c, w).map_err(|e| e.to_string())?;
        if got.is_empty() {
            break;
        }
        windowed.extend(got.iter().map(|p| p.seq().0));
    }
    if windowed != seqs {
        return Err(format!("windowed read {windowed:?} != {seqs:?}"));
    }
    // Over a bound only with no non-priority event left.
    let over = m.count() > m.bounds.max_events || m.bytes() > m.bounds.max_bytes;
    if over && m.stored.values().any(|e| e.lane != 0) {
        return Err("over the bound while non-priority events remain".into());
    }
    Ok(())
}
