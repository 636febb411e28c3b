//! Profile files (TOML) → [`Profile`]. The file is first read into loosely typed structs
//! (strings, wide integers) so that an unknown type or an address of -1 becomes a precise
//! message next to all the other problems, instead of serde stopping at the first one.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{
    DEFAULT_MAX_GAP, DEFAULT_SLOW_EVERY, DataType, Order, Point, Profile, Role, Rule, StateMap, Table, Tier, validate,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    slow_every: Option<i64>,
    #[serde(default)]
    max_gap: Option<i64>,
    /// Defaults for every point.
    #[serde(default)]
    byte_order: Option<String>,
    #[serde(default)]
    word_order: Option<String>,
    #[serde(default)]
    states: BTreeMap<String, RawStateSet>,
    #[serde(default, rename = "point")]
    points: Vec<RawPoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStateSet {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    default: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    value: Option<toml::Value>,
    #[serde(default)]
    mask: Option<i64>,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoint {
    id: String,
    role: String,
    table: String,
    address: i64,
    #[serde(default)]
    bit: Option<i64>,
    #[serde(default, rename = "type")]
    data_type: Option<String>,
    #[serde(default)]
    byte_order: Option<String>,
    #[serde(default)]
    word_order: Option<String>,
    /// The name of a `[states.NAME]` set.
    #[serde(default)]
    states: Option<String>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    twenty_four_hour: bool,
    #[serde(default)]
    count: Option<i64>,
    /// Address step between repeats (default: the type's width, or 0 for bit points).
    #[serde(default)]
    stride: Option<i64>,
    /// Bit step between repeats of a bit point (default 1).
    #[serde(default)]
    bit_stride: Option<i64>,
    /// The number `{n}` takes for the first repeat (default 1).
    #[serde(default)]
    first: Option<i64>,
}

/// Parses and validates a profile. `Err` lists every problem found, each a sentence naming
/// the point and the fix.
pub fn parse(text: &str) -> Result<Profile, Vec<String>> {
    let raw: RawProfile = toml::from_str(text).map_err(|e| {
        let msg = e.message().to_string();
        vec![match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: {msg}")
            }
            None => msg,
        }]
    })?;
    let mut errs = Vec::new();

    let slow_every = match raw.slow_every {
        None => DEFAULT_SLOW_EVERY,
        Some(n) if (1..=10_000).contains(&n) => n as u32,
        Some(n) => {
            errs.push(format!("slow_every = {n} is out of range; use 1 to 10000 (cycles between slow-tier reads)"));
            DEFAULT_SLOW_EVERY
        }
    };
    let max_gap = match raw.max_gap {
        None => DEFAULT_MAX_GAP,
        Some(n) if (0..=2000).contains(&n) => n as u16,
        Some(n) => {
            errs.push(format!("max_gap = {n} is out of range; use 0 to 2000 (unneeded addresses a read may span)"));
            DEFAULT_MAX_GAP
        }
    };
    let def_byte = order(raw.byte_order.as_deref(), "byte_order", "the profile", &mut errs).unwrap_or_default();
    let def_word = order(raw.word_order.as_deref(), "word_order", "the profile", &mut errs).unwrap_or_default();

    let mut sets: BTreeMap<&str, Arc<StateMap>> = BTreeMap::new();
    for (name, set) in &raw.states {
        let what = format!("state set {name:?}");
        let rules = rules(&set.rules, &what, &mut errs);
        sets.insert(name, Arc::new(StateMap { name: Some(name.clone()), rules, default: set.default.clone() }));
    }

    let mut points = Vec::new();
    for (i, p) in raw.points.iter().enumerate() {
        let what = format!("point[{i}] {:?}", p.id);
        let before = errs.len();
        let role = Role::from_name(&p.role);
        if role.is_none() {
            errs.push(format!(
                "{what}: unknown role {:?}; use one of {}",
                p.role,
                Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let table = Table::from_name(&p.table);
        if table.is_none() {
            errs.push(format!("{what}: unknown table {:?}; use coil, discrete-input, holding or input", p.table));
        }
        let data_type = match p.data_type.as_deref() {
            None => Some(match (table, p.bit) {
                (Some(t), _) if t.is_bits() => DataType::Bool,
                (_, Some(_)) => DataType::Bool,
                _ => DataType::U16,
            }),
            Some(t) => {
                let dt = DataType::from_name(t);
                if dt.is_none() {
                    errs.push(format!("{what}: unknown type {t:?}; use bool, u16, i16, u32, i32 or f32"));
                }
                dt
            }
        };
        let address = if (0..=65535).contains(&p.address) {
            Some(p.address as u16)
        } else {
            errs.push(format!(
                "{what}: address {} is outside 0..=65535 (addresses are 0-based protocol addresses; see docs/PROFILES.md)",
                p.address
            ));
            None
        };
        let bit = match p.bit {
            None => None,
            Some(b) if (0..=15).contains(&b) => Some(b as u8),
            Some(b) => {
                errs.push(format!("{what}: bit {b} is outside 0..=15 (bit 0 is the least significant)"));
                None
            }
        };
        let byte_order = order(p.byte_order.as_deref(), "byte_order", &what, &mut errs).unwrap_or(def_byte);
        let word_order = order(p.word_order.as_deref(), "word_order", &what, &mut errs).unwrap_or(def_word);
        if p.word_order.is_some() && data_type.is_some_and(|t| !t.is_32bit()) {
            errs.push(format!("{what}: word_order only applies to 32-bit types (u32, i32, f32); remove it"));
        }
        if p.byte_order.is_some() && (data_type == Some(DataType::Bool) || table.is_some_and(Table::is_bits)) {
            errs.push(format!("{what}: byte_order does not apply to bits; remove it"));
        }
        let tier = match p.tier.as_deref() {
            None => Tier::Fast,
            Some(t) => Tier::from_name(t).unwrap_or_else(|| {
                errs.push(format!("{what}: unknown tier {t:?}; use fast or slow"));
                Tier::Fast
            }),
        };
        let states = match (&p.states, &p.rules, &p.default) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                errs.push(format!("{what}: give either states = \"NAME\" or rules/default, not both"));
                None
            }
            (Some(name), None, None) => match sets.get(name.as_str()) {
                Some(s) => Some(Arc::clone(s)),
                None => {
                    errs.push(format!(
                        "{what}: unknown state set {name:?}; define [states.{name}] or use one of: {}",
                        if sets.is_empty() {
                            "(none defined)".to_string()
                        } else {
                            sets.keys().copied().collect::<Vec<_>>().join(", ")
                        }
                    ));
                    None
                }
            },
            (None, None, None) => None,
            (None, r, d) => {
                let rules = rules(r.as_deref().unwrap_or_default(), &what, &mut errs);
                Some(Arc::new(StateMap { name: None, rules, default: d.clone() }))
            }
        };
        let count = match p.count {
            None => 1,
            Some(n) if (1..=65536).contains(&n) => n as u32,
            Some(n) => {
                errs.push(format!("{what}: count = {n} is out of range; use 1 to 65536"));
                1
            }
        };
        if count > 1 && !p.id.contains("{n}") {
            errs.push(format!("{what}: count = {count} but the id has no {{n}}, so every repeat would have the same id; write e.g. \"zone.{{n}}\""));
        }
        let default_stride = if bit.is_some() { 0 } else { i64::from(data_type.map_or(1, DataType::width)) };
        let stride = p.stride.unwrap_or(default_stride);
        if !(0..=65535).contains(&stride) {
            errs.push(format!("{what}: stride = {stride} is out of range; use 0 to 65535"));
        }
        let bit_stride = p.bit_stride.unwrap_or(if bit.is_some() { 1 } else { 0 });
        if p.bit_stride.is_some() && p.bit.is_none() {
            errs.push(format!("{what}: bit_stride needs bit"));
        }
        if !(0..=15).contains(&bit_stride) {
            errs.push(format!("{what}: bit_stride = {bit_stride} is out of range; use 0 to 15"));
        }
        let first = p.first.unwrap_or(1);
        if errs.len() > before {
            continue;
        }
        let (Some(role), Some(table), Some(data_type), Some(address)) = (role, table, data_type, address) else {
            continue;
        };
        for k in 0..count {
            let k64 = i64::from(k);
            let addr = i64::from(address) + k64 * stride;
            let b = bit.map(|b| i64::from(b) + k64 * bit_stride);
            let id = if count > 1 || p.id.contains("{n}") {
                p.id.replace("{n}", &(first + k64).to_string())
            } else {
                p.id.clone()
            };
            if addr > 65535 {
                errs.push(format!(
                    "{what}: repeat {} ({id:?}) lands at address {addr}, past 65535; lower count or stride",
                    k + 1
                ));
                break;
            }
            if let Some(b) = b
                && b > 15
            {
                errs.push(format!(
                    "{what}: repeat {} ({id:?}) lands on bit {b}, past 15; use stride to move to the next register",
                    k + 1
                ));
                break;
            }
            points.push(Point {
                id,
                role,
                table,
                address: addr as u16,
                bit: b.map(|b| b as u8),
                data_type,
                byte_order,
                word_order,
                states: states.clone(),
                tier,
                twenty_four_hour: p.twenty_four_hour,
            });
        }
    }

    let had_points = !raw.points.is_empty();
    let profile = Profile { name: raw.name, description: raw.description, slow_every, max_gap, points };
    if profile.name.trim().is_empty() {
        errs.push("name is empty; give the profile a name".to_string());
    }
    // Entries that failed above were already reported; "no points" would only repeat them.
    errs.extend(profile.validate().into_iter().filter(|e| !(had_points && e.starts_with(validate::NO_POINTS))));
    if errs.is_empty() { Ok(profile) } else { Err(errs) }
}

fn order(s: Option<&str>, field: &str, what: &str, errs: &mut Vec<String>) -> Option<Order> {
    let s = s?;
    let o = Order::from_name(s);
    if o.is_none() {
        errs.push(format!("{what}: {field} = {s:?}; use \"big\" or \"little\""));
    }
    o
}

fn rules(raw: &[RawRule], what: &str, errs: &mut Vec<String>) -> Vec<Rule> {
    let mut out = Vec::new();
    for (j, r) in raw.iter().enumerate() {
        let rw = format!("{what}: rule {}", j + 1);
        let state = match r.state.as_deref() {
            Some(s) if !s.trim().is_empty() => Some(s.to_string()),
            _ => {
                errs.push(format!("{rw} references no state; add state = \"...\""));
                None
            }
        };
        let value = match &r.value {
            None => Some(None),
            Some(toml::Value::Integer(i)) => Some(Some(*i as f64)),
            Some(toml::Value::Float(f)) => Some(Some(*f)),
            Some(toml::Value::Boolean(b)) => Some(Some(if *b { 1.0 } else { 0.0 })),
            Some(other) => {
                errs.push(format!("{rw}: value {other} is not a number"));
                None
            }
        };
        let mask = match r.mask {
            None => Some(None),
            Some(m) if (1..=i64::from(u32::MAX)).contains(&m) => Some(Some(m as u32)),
            Some(m) => {
                errs.push(format!("{rw}: mask {m:#x} is out of range; use 0x1 to 0xFFFFFFFF"));
                None
            }
        };
        if r.value.is_none() && r.mask.is_none() {
            errs.push(format!("{rw} has neither value nor mask, so it can never match; add value = N or mask = 0x..."));
            continue;
        }
        if let (Some(state), Some(value), Some(mask)) = (state, value, mask) {
            out.push(Rule { value, mask, state });
        }
    }
    out
}
