//! The model: what the outbox should hold, as plain collections.

use std::collections::{BTreeMap, BTreeSet};

use gateway::outbox::OutboxBounds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    /// 0 = priority; 1..=4 = non-priority by severity (info..critical).
    pub lane: u8,
    pub size: u64,
}

/// What one append should have done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub seq: u64,
    pub evicted: Vec<u64>,
    pub stored: bool,
}

#[derive(Debug)]
pub struct Model {
    pub bounds: OutboxBounds,
    pub last_seq: u64,
    /// Stored, unacknowledged events by seq.
    pub stored: BTreeMap<u64, Event>,
    /// Every event ever appended (to re-add one that reappears after a crash).
    pub all: BTreeMap<u64, Event>,
    /// Acked since the last flush: may reappear after a crash (see `known_errors`).
    pub acked_unflushed: BTreeSet<u64>,
    /// Priority events ever evicted (must stay empty).
    pub evicted_priority: Vec<u64>,
}

impl Model {
    pub fn new(bounds: OutboxBounds) -> Model {
        Model {
            bounds,
            last_seq: 0,
            stored: BTreeMap::new(),
            all: BTreeMap::new(),
            acked_unflushed: BTreeSet::new(),
            evicted_priority: Vec::new(),
        }
    }

    pub fn count(&self) -> u64 {
        self.stored.len() as u64
    }
    pub fn bytes(&self) -> u64 {
        self.stored.values().map(|e| e.size).sum()
    }

    /// The eviction policy, stated simply: while over a bound, drop the lowest-severity,
    /// oldest non-priority event among the stored ones and the incoming one; never a
    /// priority event; if only priority events are left, a priority event goes over the bound.
    pub fn append(&mut self, lane: u8, size: u64) -> Expect {
        let seq = self.last_seq + 1;
        self.last_seq = seq;
        let mut evicted = Vec::new();
        let mut stored = true;
        loop {
            let over = self.count() + 1 > self.bounds.max_events || self.bytes() + size > self.bounds.max_bytes;
            if !over {
                break;
            }
            let victim = self.stored.values().filter(|e| e.lane != 0).min_by_key(|e| (e.lane, e.seq)).copied();
            match victim {
                Some(v) if lane == 0 || lane >= v.lane => {
                    self.stored.remove(&v.seq);
                    evicted.push(v.seq);
                }
                _ if lane != 0 => {
                    stored = false;
                    evicted.push(seq);
                    break;
                }
                _ => break,
            }
        }
        for s in &evicted {
            if self.all.get(s).is_some_and(|e| e.lane == 0) {
                self.evicted_priority.push(*s);
            }
        }
        let ev = Event { seq, lane, size };
        self.all.insert(seq, ev);
        if stored {
            self.stored.insert(seq, ev);
        }
        // Appends flush: every earlier ack is durable now.
        self.acked_unflushed.clear();
        Expect { seq, evicted, stored }
    }

    /// The seq at index `pick` (modulo) in delivery order.
    pub fn pick(&self, pick: usize) -> Option<u64> {
        let order = self.delivery_order();
        if order.is_empty() { None } else { Some(order[pick % order.len()]) }
    }

    pub fn ack(&mut self, seq: u64) {
        if self.stored.remove(&seq).is_some() {
            self.acked_unflushed.insert(seq);
        }
    }

    pub fn flushed(&mut self) {
        self.acked_unflushed.clear();
    }

    /// Priority events by seq, then the others by seq.
    pub fn delivery_order(&self) -> Vec<u64> {
        let prio = self.stored.values().filter(|e| e.lane == 0).map(|e| e.seq);
        let rest = self.stored.values().filter(|e| e.lane != 0).map(|e| e.seq);
        prio.chain(rest).collect()
    }
}
