//! Checks on an expanded profile: everything a type cannot express. Each message names the
//! point (its expanded id) and says how to fix it.

use std::collections::{BTreeMap, HashSet};

use super::{DataType, Point, Profile, Role, Table};

/// What occupies one register (or one bit address of a bit table).
enum Occupant {
    Whole(usize),
    Bits(Box<[Option<usize>; 16]>),
}

pub(super) const NO_POINTS: &str = "the profile has no points";

pub(super) fn validate(p: &Profile) -> Vec<String> {
    let mut errs = Vec::new();
    if p.slow_every == 0 {
        errs.push("slow_every is 0; use 1 or more".to_string());
    }
    if p.points.is_empty() {
        errs.push(format!("{NO_POINTS}; add [[point]] entries"));
    }
    let mut ids = HashSet::new();
    // A state map shared by many points (a repeated entry, a named set) is checked once per
    // role and type, so 200 zones with one mistake give one message, not 200.
    let mut maps_checked = HashSet::new();
    for pt in &p.points {
        let check_map = match &pt.states {
            Some(m) => maps_checked.insert((std::sync::Arc::as_ptr(m), pt.role, pt.data_type)),
            None => true,
        };
        check_point(pt, check_map, &mut errs);
        if !ids.insert(pt.id.as_str()) {
            errs.push(format!("point {:?}: duplicate id; give each point a unique id", pt.id));
        }
    }
    check_overlaps(p, &mut errs);
    errs
}

fn check_point(pt: &Point, check_map: bool, errs: &mut Vec<String>) {
    let what = format!("point {:?}", pt.id);
    if let Err(e) = crate::ids::validate_segment(&pt.id) {
        errs.push(format!("{what}: id {e}"));
    }
    // Table, type and bit.
    if pt.table.is_bits() {
        if pt.bit.is_some() {
            errs.push(format!("{what}: bit is set on a {} (a {} is already one bit); remove bit", pt.table, pt.table));
        }
        if pt.data_type != DataType::Bool {
            errs.push(format!(
                "{what}: type {} on a {}; a {} holds one bit, use type = \"bool\"",
                pt.data_type, pt.table, pt.table
            ));
        }
    } else {
        match (pt.bit, pt.data_type) {
            (Some(b), _) if b > 15 => errs.push(format!("{what}: bit {b} is outside 0..=15")),
            (Some(_), DataType::Bool) => {}
            (Some(_), t) => {
                errs.push(format!("{what}: bit is set but type is {t}; a bit is a bool (remove type or bit)"))
            }
            (None, DataType::Bool) => errs.push(format!(
                "{what}: type bool on a {} register needs bit = 0..15 (or use mask rules on a u16)",
                pt.table
            )),
            (None, _) => {}
        }
    }
    let (start, end) = pt.span();
    if end > 65536 {
        errs.push(format!(
            "{what}: {} at address {start} needs addresses {start}..={}, past the last address 65535",
            pt.data_type,
            end - 1
        ));
    }
    if pt.twenty_four_hour && pt.role != Role::Zone {
        errs.push(format!("{what}: twenty_four_hour applies to zones only, this is a {}", pt.role));
    }

    // States.
    let vocab = pt.role.vocabulary();
    let map = pt.states.as_deref().filter(|_| check_map);
    let from = map.and_then(|m| m.name.as_deref()).map(|n| format!(" (from state set {n:?})")).unwrap_or_default();
    match (pt.role, map) {
        (Role::Heartbeat, Some(m)) if !m.is_empty() => {
            errs.push(format!(
                "{what}: a heartbeat carries no states (any changing number is alive); remove rules/default/states"
            ));
        }
        (r, None) if r.needs_states() && pt.states.is_none() => errs.push(format!(
            "{what}: a {r} point needs states; add rules (e.g. {{ value = 1, state = \"{}\" }}) and/or default",
            vocab.and_then(|v| v.get(1).or(v.first())).unwrap_or(&"...")
        )),
        (r, Some(m)) if r.needs_states() && m.is_empty() => {
            errs.push(format!("{what}: a {r} point needs states; its state mapping{from} is empty"));
        }
        _ => {}
    }
    if let (Some(m), Some(vocab)) = (map, vocab)
        && pt.role != Role::Heartbeat
    {
        for s in m.states() {
            if !vocab.contains(&s) {
                errs.push(format!(
                    "{what}: state {s:?}{from} is not a {} state; use one of {}",
                    pt.role,
                    vocab.join(", ")
                ));
            }
        }
    }
    if let Some(m) = map {
        let (lo, hi) = pt.data_type.range();
        let pattern = pt.data_type.pattern_mask();
        for (j, r) in m.rules.iter().enumerate() {
            let rw = format!("{what}: rule {}{from}", j + 1);
            if r.state.trim().is_empty() {
                errs.push(format!("{rw} references no state"));
            }
            if r.mask.is_some() && !pt.data_type.is_integer() {
                errs.push(format!("{rw}: mask on a {} value; masks need an integer type", pt.data_type));
            }
            match (r.value, r.mask) {
                (None, None) => errs.push(format!("{rw} has neither value nor mask, so it can never match")),
                (Some(v), None) => {
                    if v < lo || v > hi || (pt.data_type.is_integer() && v.fract() != 0.0) {
                        errs.push(format!(
                            "{rw}: value {v} can never be read from a {} (range {lo}..={hi})",
                            pt.data_type
                        ));
                    }
                }
                (None, Some(mk)) => {
                    if mk & pattern == 0 {
                        errs.push(format!(
                            "{rw}: mask {mk:#x} has no bit inside a {} ({pattern:#x}), so it can never match",
                            pt.data_type
                        ));
                    }
                }
                (Some(v), Some(mk)) => {
                    if v < 0.0 || v.fract() != 0.0 || v > f64::from(u32::MAX) || (v as u32) & !mk != 0 {
                        errs.push(format!(
                            "{rw}: value {v} has bits outside mask {mk:#x}, so (x & mask) == value can never hold"
                        ));
                    }
                }
            }
        }
    }
}

fn check_overlaps(p: &Profile, errs: &mut Vec<String>) {
    let mut used: [BTreeMap<u32, Occupant>; 4] = Default::default();
    let mut reported = HashSet::new();
    let mut clash = |errs: &mut Vec<String>, a: usize, b: usize, table: Table, addr: u32, bit: Option<u8>| {
        let key = (a.min(b), a.max(b));
        if reported.insert(key) {
            let at = match bit {
                Some(bit) => format!("{table} {addr} bit {bit}"),
                None => format!("{table} {addr}"),
            };
            errs.push(format!(
                "point {:?} overlaps point {:?} at {at}; move one of them (a register is either one value or a set of bits)",
                p.points[b].id, p.points[a].id
            ));
        }
    };
    for (i, pt) in p.points.iter().enumerate() {
        let (start, end) = pt.span();
        let map = &mut used[pt.table.index()];
        for addr in start..end.min(65536) {
            match (map.get_mut(&addr), pt.bit) {
                (None, None) => {
                    map.insert(addr, Occupant::Whole(i));
                }
                (None, Some(b)) => {
                    let mut bits = Box::new([None; 16]);
                    bits[usize::from(b).min(15)] = Some(i);
                    map.insert(addr, Occupant::Bits(bits));
                }
                (Some(Occupant::Whole(j)), bit) => {
                    let j = *j;
                    clash(errs, j, i, pt.table, addr, bit);
                }
                (Some(Occupant::Bits(bits)), None) => {
                    if let Some(j) = bits.iter().flatten().next().copied() {
                        clash(errs, j, i, pt.table, addr, None);
                    }
                }
                (Some(Occupant::Bits(bits)), Some(b)) => {
                    let slot = &mut bits[usize::from(b).min(15)];
                    match slot {
                        Some(j) => {
                            let j = *j;
                            clash(errs, j, i, pt.table, addr, Some(b));
                        }
                        None => *slot = Some(i),
                    }
                }
            }
        }
    }
}
