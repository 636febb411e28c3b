//! Model-based test of the sled outbox, in the style of Vector's `disk_v2` buffer model tests:
//! proptest generates random sequences of actions (append, ack, windowed reads, clean reopen,
//! crash, flush) on a small bound; each action runs against the real [`Outbox`] and against a
//! plain in-memory model of what it should hold, and the invariants in [`invariants`] are
//! checked after every step. [`known_errors`] documents the divergences the contract allows
//! (after a crash, an acknowledged event whose removal was not yet flushed may reappear).
//!
//! A crash is simulated by copying the outbox directory while the outbox is open (what a
//! killed process leaves on disk: every completed `write`, nothing of what is still in memory),
//! then opening the copy.

mod action;
mod invariants;
mod known_errors;
mod model;

use std::path::Path;
use std::sync::Arc;

use gateway::outbox::{Cursor, Outbox, OutboxBounds};
use proptest::prelude::*;

use action::{Action, arb_actions};
use model::Model;

struct Harness {
    _dirs: Vec<tempfile::TempDir>,
    dir: std::path::PathBuf,
    outbox: Option<Arc<Outbox>>,
    bounds: OutboxBounds,
}

impl Harness {
    fn new(bounds: OutboxBounds) -> Harness {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join("outbox");
        let outbox = Outbox::open(&dir, bounds).expect("open");
        Harness { _dirs: vec![d], dir, outbox: Some(outbox), bounds }
    }

    fn outbox(&self) -> &Outbox {
        self.outbox.as_deref().expect("open")
    }

    fn reopen(&mut self) {
        self.outbox = None;
        self.outbox = Some(Outbox::open(&self.dir, self.bounds).expect("reopen"));
    }

    /// Copies the live directory (a crash image), drops the outbox, opens the copy.
    fn crash(&mut self) {
        let d = tempfile::tempdir().expect("tempdir");
        let copy = d.path().join("outbox");
        copy_dir(&self.dir, &copy).expect("copy the crash image");
        self.outbox = None;
        self.dir = copy;
        self._dirs.push(d);
        self.outbox = Some(Outbox::open(&self.dir, self.bounds).expect("open after crash"));
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

fn run(bounds: OutboxBounds, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let mut h = Harness::new(bounds);
        let mut m = Model::new(bounds);
        for (step, a) in actions.into_iter().enumerate() {
            match a {
                Action::Append(spec) => {
                    let appended = h.outbox().append(spec.alert()).await.map_err(|e| fail(step, &e))?;
                    // The size depends on the outbox's string table (what it already holds):
                    // the outbox says it, the model checks what the bound makes of it.
                    let expect = m.append(spec.lane(), appended.size);
                    invariants::appended(&m, &appended, &expect).map_err(|e| at(step, e))?;
                }
                Action::Ack(pick) => {
                    if let Some(seq) = m.pick(pick) {
                        let removed = h.outbox().ack_seq(protocols::Seq(seq)).map_err(|e| fail(step, &e))?;
                        prop_assert!(removed, "step {step}: ack of stored seq {seq} found nothing");
                        m.ack(seq);
                    }
                }
                Action::DeliverWindow(n) => {
                    // What the uplink does: read a window from the start, ack it all.
                    let mut c = Cursor::START;
                    let got = h.outbox().pending_from(&mut c, n).map_err(|e| fail(step, &e))?;
                    for p in got {
                        prop_assert!(h.outbox().ack(p.id).map_err(|e| fail(step, &e))?);
                        m.ack(p.seq().0);
                    }
                }
                Action::Flush => {
                    h.outbox().flush().await.map_err(|e| fail(step, &e))?;
                    m.flushed();
                }
                Action::Reopen => {
                    h.reopen();
                    let actual = invariants::stored(h.outbox()).map_err(|e| at(step, e))?;
                    known_errors::reconcile_after_restart(&mut m, &actual).map_err(|e| at(step, e))?;
                }
                Action::Compact => {
                    let rotated = h.outbox().compact_now().map_err(|e| fail(step, &e))?;
                    prop_assert_eq!(rotated, m.count() == 0, "step {}: rotation when depth {}", step, m.count());
                    if rotated {
                        // The old database is gone: no acked event can come back.
                        m.flushed();
                    }
                }
                Action::Crash => {
                    h.crash();
                    let actual = invariants::stored(h.outbox()).map_err(|e| at(step, e))?;
                    known_errors::reconcile_after_restart(&mut m, &actual).map_err(|e| at(step, e))?;
                }
            }
            invariants::check(h.outbox(), &m, step).map_err(|e| at(step, e))?;
        }
        Ok(())
    })
}

fn fail(step: usize, e: &dyn std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("step {step}: outbox error: {e}"))
}

fn at(step: usize, e: String) -> TestCaseError {
    TestCaseError::fail(format!("step {step}: {e}"))
}

fn arb_bounds() -> impl Strategy<Value = OutboxBounds> {
    // Small bounds so that overflow and eviction happen often; alerts take ~50-400 bytes
    // stored (the message is padded by up to 320 bytes).
    (3u64..20, 600u64..4_000).prop_map(|(max_events, max_bytes)| OutboxBounds { max_events, max_bytes })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn outbox_matches_its_model(bounds in arb_bounds(), actions in arb_actions(60)) {
        run(bounds, actions)?;
    }
}

/// A fixed scenario, easy to read when the model test fails: an outage long enough to overflow.
#[test]
fn alarms_survive_an_overflow_and_the_count_is_reported() {
    use action::{AppendSpec, Class};
    let bounds = OutboxBounds { max_events: 5, max_bytes: 1 << 20 };
    let mut actions = vec![Action::Append(AppendSpec { class: Class::Alarm, pad: 0 })];
    for _ in 0..10 {
        actions.push(Action::Append(AppendSpec { class: Class::Camera(0), pad: 3 }));
    }
    actions.push(Action::Append(AppendSpec { class: Class::Alarm, pad: 0 }));
    actions.push(Action::Crash);
    run(bounds, actions).expect("scenario");
}

/// Open conditions after a crash image taken right after each append (the condition change of
/// the last event may not be on disk yet: it is then replayed from the event at open), and
/// after a crash once everything was delivered: the conditions are those of the alerts
/// appended, a clear closes, a later raise reopens.
#[test]
fn open_conditions_survive_crash_images() {
    use action::{AppendSpec, Class};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut h = Harness::new(OutboxBounds { max_events: 100, max_bytes: 1 << 20 });
        let open = |h: &Harness| {
            let mut v: Vec<(String, String)> = h
                .outbox()
                .open_conditions()
                .expect("read")
                .iter()
                .map(|a| (a.condition_key().unwrap_or_default(), a.id.clone()))
                .collect();
            v.sort();
            v
        };
        let alarm = AppendSpec { class: Class::Alarm, pad: 0 }.alert();
        let raised = h.outbox().append(alarm).await.expect("append").alert;
        h.crash();
        assert_eq!(open(&h), vec![(raised.condition_key().unwrap_or_default(), raised.id.clone())]);

        let mut clear = AppendSpec { class: Class::Alarm, pad: 0 }.alert();
        clear.state = protocols::AlertState::Cleared;
        h.outbox().append(clear).await.expect("append");
        h.crash();
        assert!(open(&h).is_empty(), "the clear did not close it: {:?}", open(&h));

        // Everything delivered (so nothing can be replayed), then a crash: still closed.
        let mut c = Cursor::START;
        for p in h.outbox().pending_from(&mut c, 100).expect("read") {
            h.outbox().ack(p.id).expect("ack");
        }
        h.outbox().flush().await.expect("flush");
        h.crash();
        assert!(open(&h).is_empty());
        let again = h.outbox().append(AppendSpec { class: Class::Alarm, pad: 0 }.alert()).await.expect("append").alert;
        h.reopen();
        assert_eq!(open(&h), vec![(again.condition_key().unwrap_or_default(), again.id.clone())]);
    });
}
