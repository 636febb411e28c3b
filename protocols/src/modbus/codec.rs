//! Values ↔ registers for one point: byte and word order, bits within registers, and the
//! inverse mapping from a state back to a raw value (what the simulator writes so that a
//! profile decodes to the state a test asked for).

use super::{DataType, Order, Point, Reading, Table};

/// Register or bit contents that make a point read a given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// A coil or discrete input, or one bit of a register (`Point::bit`): write only that bit.
    Bit(bool),
    /// One register.
    One(u16),
    /// Two consecutive registers, in address order.
    Two([u16; 2]),
}

/// Why a value or state cannot be written to a point.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("{value} does not fit point {point:?} of type {data_type}")]
    OutOfRange { point: String, value: f64, data_type: DataType },
    #[error("point {point:?} has no state {state:?} (it knows: {known})")]
    UnknownState { point: String, state: String, known: String },
    #[error("point {point:?}: no value decodes to state {state:?} (an earlier rule always wins)")]
    Unreachable { point: String, state: String },
}

fn swap_bytes(w: u16, order: Order) -> u16 {
    match order {
        Order::Big => w,
        Order::Little => w.swap_bytes(),
    }
}

impl Point {
    /// The value and bit pattern of the point from the registers starting at its address.
    /// `None` when `regs` is too short.
    pub fn value_from_registers(&self, regs: &[u16]) -> Option<(f64, u32)> {
        let first = *regs.first()?;
        Some(match self.data_type {
            DataType::Bool => {
                let bit = u32::from(self.bit.unwrap_or(0)).min(15);
                let v = u32::from((first >> bit) & 1);
                (f64::from(v), v)
            }
            DataType::U16 => {
                let w = swap_bytes(first, self.byte_order);
                (f64::from(w), u32::from(w))
            }
            DataType::I16 => {
                let w = swap_bytes(first, self.byte_order);
                (f64::from(w as i16), u32::from(w))
            }
            DataType::U32 | DataType::I32 | DataType::F32 => {
                let second = *regs.get(1)?;
                let (hi, lo) = match self.word_order {
                    Order::Big => (first, second),
                    Order::Little => (second, first),
                };
                let bits =
                    (u32::from(swap_bytes(hi, self.byte_order)) << 16) | u32::from(swap_bytes(lo, self.byte_order));
                let raw = match self.data_type {
                    DataType::U32 => f64::from(bits),
                    DataType::I32 => f64::from(bits as i32),
                    _ => f64::from(f32::from_bits(bits)),
                };
                (raw, bits)
            }
        })
    }

    /// Decodes the point from the registers starting at its address.
    pub fn decode_registers(&self, regs: &[u16]) -> Option<Reading<'_>> {
        let (raw, bits) = self.value_from_registers(regs)?;
        Some(Reading { raw, state: self.state_of(raw, bits) })
    }

    /// Decodes a coil or discrete input.
    pub fn decode_bit(&self, on: bool) -> Reading<'_> {
        let v = u32::from(on);
        Reading { raw: f64::from(v), state: self.state_of(f64::from(v), v) }
    }

    /// What to write so that the point reads `raw`.
    pub fn encode(&self, raw: f64) -> Result<Encoded, EncodeError> {
        let (lo, hi) = self.data_type.range();
        let integral = self.data_type.is_integer();
        if !raw.is_finite() || raw < lo || raw > hi || (integral && raw.fract() != 0.0) {
            return Err(EncodeError::OutOfRange { point: self.id.clone(), value: raw, data_type: self.data_type });
        }
        if self.table.is_bits() || self.data_type == DataType::Bool {
            return Ok(Encoded::Bit(raw != 0.0));
        }
        let bits: u32 = match self.data_type {
            DataType::U16 => raw as u32,
            DataType::I16 => u32::from(raw as i16 as u16),
            DataType::U32 => raw as u32,
            DataType::I32 => raw as i32 as u32,
            DataType::F32 => (raw as f32).to_bits(),
            DataType::Bool => u32::from(raw != 0.0),
        };
        if !self.data_type.is_32bit() {
            return Ok(Encoded::One(swap_bytes(bits as u16, self.byte_order)));
        }
        let hi = swap_bytes((bits >> 16) as u16, self.byte_order);
        let lo = swap_bytes(bits as u16, self.byte_order);
        Ok(Encoded::Two(match self.word_order {
            Order::Big => [hi, lo],
            Order::Little => [lo, hi],
        }))
    }

    /// A raw value that decodes to `state`, preferring one close to `current` (so that
    /// setting one status bit of a zone-status word keeps the others where possible).
    pub fn raw_for_state(&self, state: &str, current: f64) -> Result<f64, EncodeError> {
        let Some(map) = self.states.as_deref() else {
            return Err(EncodeError::UnknownState {
                point: self.id.clone(),
                state: state.into(),
                known: "none".into(),
            });
        };
        if !map.states().any(|s| s == state) {
            let known = map.states().collect::<Vec<_>>().join(", ");
            return Err(EncodeError::UnknownState { point: self.id.clone(), state: state.into(), known });
        }
        let pattern = self.data_type.pattern_mask();
        let cur_bits: u32 =
            if self.data_type.is_integer() && current.is_finite() { (current as i64 as u32) & pattern } else { 0 };
        let mut candidates: Vec<u32> = Vec::new();
        let mut float_candidates: Vec<f64> = Vec::new();
        for r in map.rules.iter().filter(|r| r.state == state) {
            match (r.value, r.mask) {
                (Some(v), None) => float_candidates.push(v),
                (None, Some(m)) => {
                    candidates.push(cur_bits | m);
                    candidates.push(m);
                    // The lowest bit of the mask alone.
                    candidates.push(m & m.wrapping_neg());
                }
                (Some(v), Some(m)) => {
                    let v = v as u32;
                    candidates.push((cur_bits & !m) | (v & m));
                    candidates.push(v & m);
                }
                (None, None) => {}
            }
        }
        if map.default.as_deref() == Some(state) {
            // Clear every bit any rule looks at, then try small values.
            let all_masks = map.rules.iter().filter_map(|r| r.mask).fold(0u32, |a, m| a | m);
            candidates.push(cur_bits & !all_masks);
        }
        // For the default state, search small values too (lazily: usually 0 already fits).
        let search_to = if map.default.as_deref() == Some(state) { u32::from(u16::MAX).min(pattern) } else { 0 };
        let search = (0..=search_to).filter(|_| search_to > 0);
        let to_raw = |bits: u32| -> f64 {
            match self.data_type {
                DataType::I16 => f64::from(bits as u16 as i16),
                DataType::I32 => f64::from(bits as i32),
                DataType::F32 => f64::from(f32::from_bits(bits)),
                _ => f64::from(bits),
            }
        };
        let bits_of = |raw: f64| -> u32 {
            match self.data_type {
                DataType::F32 => (raw as f32).to_bits(),
                _ => (raw as i64 as u32) & pattern,
            }
        };
        let (lo, hi) = self.data_type.range();
        let fits = |raw: f64| raw.is_finite() && raw >= lo && raw <= hi;
        for raw in float_candidates {
            if fits(raw) && map.state_of(raw, bits_of(raw)) == Some(state) {
                return Ok(raw);
            }
        }
        for bits in candidates.into_iter().chain(search) {
            let bits = bits & pattern;
            let raw = to_raw(bits);
            if fits(raw) && map.state_of(raw, bits) == Some(state) {
                return Ok(raw);
            }
        }
        Err(EncodeError::Unreachable { point: self.id.clone(), state: state.into() })
    }

    /// Whether the point lives in a register (as opposed to a coil or discrete input).
    pub fn in_register(&self) -> bool {
        !self.table.is_bits()
    }

    /// Whether Modbus clients can write the point's table.
    pub fn writable(&self) -> bool {
        matches!(self.table, Table::Coil | Table::Holding)
    }
}
