//! Read planning and decoding of read results.
//!
//! A poll's cost is dominated by round trips, so points are merged into as few requests as
//! possible per table: ranges at most `max_gap` unneeded addresses apart share a request, up
//! to the protocol's limit (125 registers or 2000 bits). Reading a gap costs a few bytes;
//! a larger gap risks exception 2 on devices that reject unmapped addresses, so the gap is
//! configurable (0 = contiguous only).
//!
//! A [`ReadPlan`] is computed once per panel; it remembers where each point's data lands
//! in the responses, so decoding a cycle is a walk over the points with no searching and
//! no allocation.

use std::collections::BTreeMap;

use super::{Point, PointValue, Profile, Reading, Table};

/// One read: `count` registers (or bits) of `table` from `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadRequest {
    pub table: Table,
    pub address: u16,
    pub count: u16,
}

impl ReadRequest {
    /// `[start, end)` in `u32`.
    pub fn span(&self) -> (u32, u32) {
        (u32::from(self.address), u32::from(self.address) + u32::from(self.count))
    }

    /// Whether the request covers all of `point`.
    pub fn covers(&self, point: &Point) -> bool {
        let (s, e) = self.span();
        let (ps, pe) = point.span();
        self.table == point.table && ps >= s && pe <= e
    }
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawData {
    Bits(Vec<bool>),
    Registers(Vec<u16>),
}

impl RawData {
    pub fn len(&self) -> usize {
        match self {
            RawData::Bits(b) => b.len(),
            RawData::Registers(r) => r.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why read results could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("expected {expected} results, got {got}")]
    ResultCount { expected: usize, got: usize },
    #[error("{table} read at {address}: expected {expected} values, got {got}")]
    Short { table: Table, address: u16, expected: usize, got: usize },
    #[error("{table} read at {address}: got {got} where {expected} were expected")]
    Kind { table: Table, address: u16, expected: &'static str, got: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    point: usize,
    request: usize,
    offset: u16,
}

/// Requests for a set of points, and where each point's data lands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadPlan {
    requests: Vec<ReadRequest>,
    slots: Vec<Slot>,
}

impl ReadPlan {
    pub fn requests(&self) -> &[ReadRequest] {
        &self.requests
    }

    /// Indices (into the profile's points) of the points this plan reads.
    pub fn point_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().map(|s| s.point)
    }

    /// Checks that `data[i]` answers `requests()[i]` in kind and length.
    pub fn check(&self, data: &[RawData]) -> Result<(), DecodeError> {
        if data.len() != self.requests.len() {
            return Err(DecodeError::ResultCount { expected: self.requests.len(), got: data.len() });
        }
        for (req, d) in self.requests.iter().zip(data) {
            check_one(req, d)?;
        }
        Ok(())
    }

    /// Decodes every planned point of `profile` from `data` (one entry per request, in
    /// order), calling `f(point index, point, reading)`. Checks the data first; on error
    /// `f` is not called at all.
    pub fn decode_with<'p>(
        &self,
        profile: &'p Profile,
        data: &[RawData],
        mut f: impl FnMut(usize, &'p Point, Reading<'p>),
    ) -> Result<(), DecodeError> {
        self.check(data)?;
        for s in &self.slots {
            let (Some(point), Some(d)) = (profile.points.get(s.point), data.get(s.request)) else {
                continue;
            };
            if let Some(r) = decode_at(point, d, usize::from(s.offset)) {
                f(s.point, point, r);
            }
        }
        Ok(())
    }
}

fn check_one(req: &ReadRequest, d: &RawData) -> Result<(), DecodeError> {
    let (ok_kind, got) = match d {
        RawData::Bits(_) => (req.table.is_bits(), "bits"),
        RawData::Registers(_) => (!req.table.is_bits(), "registers"),
    };
    if !ok_kind {
        let expected = if req.table.is_bits() { "bits" } else { "registers" };
        return Err(DecodeError::Kind { table: req.table, address: req.address, expected, got });
    }
    if d.len() < usize::from(req.count) {
        return Err(DecodeError::Short {
            table: req.table,
            address: req.address,
            expected: usize::from(req.count),
            got: d.len(),
        });
    }
    Ok(())
}

fn decode_at<'p>(point: &'p Point, d: &RawData, offset: usize) -> Option<Reading<'p>> {
    match d {
        RawData::Bits(b) => b.get(offset).map(|on| point.decode_bit(*on)),
        RawData::Registers(r) => point.decode_registers(r.get(offset..)?),
    }
}

pub(super) fn plan(profile: &Profile, max_gap: u16, include: impl Fn(&Point) -> bool) -> ReadPlan {
    let mut out = ReadPlan::default();
    for table in Table::ALL {
        // (start, end, point index), sorted by start.
        let mut spans: Vec<(u32, u32, usize)> = profile
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.table == table && include(p))
            .map(|(i, p)| {
                let (s, e) = p.span();
                (s, e, i)
            })
            .filter(|(_, e, _)| *e <= 65536)
            .collect();
        spans.sort_unstable();
        let limit = u32::from(table.max_per_read());
        let gap = u32::from(max_gap);
        let mut cur: Option<(u32, u32)> = None;
        for (s, e, i) in spans {
            match cur {
                Some((cs, ce)) if s <= ce + gap && e.max(ce) - cs <= limit => {
                    cur = Some((cs, ce.max(e)));
                }
                _ => {
                    if let Some((cs, ce)) = cur {
                        out.requests.push(ReadRequest { table, address: cs as u16, count: (ce - cs) as u16 });
                    }
                    cur = Some((s, e));
                }
            }
            let start = cur.map_or(s, |c| c.0);
            out.slots.push(Slot { point: i, request: out.requests.len(), offset: (s - start) as u16 });
        }
        if let Some((cs, ce)) = cur {
            out.requests.push(ReadRequest { table, address: cs as u16, count: (ce - cs) as u16 });
        }
    }
    out.slots.sort_unstable_by_key(|s| s.point);
    out
}

pub(super) fn decode_reads(
    profile: &Profile,
    reads: &[(ReadRequest, RawData)],
) -> Result<BTreeMap<String, PointValue>, DecodeError> {
    for (req, d) in reads {
        check_one(req, d)?;
    }
    let mut out = BTreeMap::new();
    for p in &profile.points {
        let Some((req, d)) = reads.iter().find(|(r, _)| r.covers(p)) else {
            continue;
        };
        let offset = (p.span().0 - u32::from(req.address)) as usize;
        if let Some(r) = decode_at(p, d, offset) {
            out.insert(p.id.clone(), r.to_value());
        }
    }
    Ok(out)
}
