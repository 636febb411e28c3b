//! Modbus register-map profiles: what a panel's registers mean, as data.
//!
//! Alarm and access panels rarely speak Modbus natively; a branch reaches them through an
//! integration module or a PLC, so every site has its own register map. The gateway
//! therefore treats the map as data — a *profile* (TOML, see `docs/PROFILES.md`) — and this
//! module holds everything about profiles that needs no I/O:
//!
//! - the model ([`Profile`], [`Point`], [`StateMap`]) and [`parse`] from TOML, which reports
//!   every problem at once so an installer can fix a file in one pass;
//! - [`Profile::validate`]: overlaps, address ranges (32-bit spans included), states outside
//!   a role's vocabulary, rules that can never match, duplicate ids;
//! - read planning ([`Profile::plan`], [`Profile::read_plan`]): as few requests as possible
//!   per table, within the protocol's limits (125 registers, 2000 bits per request);
//! - decoding register and bit values into [`PointValue`]s (raw number + mapped state), and
//!   the inverse ([`Point::raw_for_state`], [`Point::encode`]) for the simulator.
//!
//! Addresses are 0-based protocol addresses everywhere (what goes on the wire), never the
//! 1-based "4xxxx" references of vendor manuals.
//!
//! Built-in profiles ([`builtin`]) are the TOML files in `protocols/profiles/`, embedded at
//! compile time; the simulator serves them and the gateway polls them.

mod codec;
mod parse;
mod plan;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use codec::{EncodeError, Encoded};
pub use parse::parse;
pub use plan::{DecodeError, RawData, ReadPlan, ReadRequest};

/// Most registers one read request (FC 3/4) may ask for.
pub const MAX_REGISTERS_PER_READ: u16 = 125;
/// Most bits one read request (FC 1/2) may ask for.
pub const MAX_BITS_PER_READ: u16 = 2000;
/// The default gap (unneeded addresses) a read may span to merge two ranges.
pub const DEFAULT_MAX_GAP: u16 = 8;
/// Slow-tier points are read every this many poll cycles unless the profile says otherwise.
pub const DEFAULT_SLOW_EVERY: u32 = 4;

/// The names of the built-in profiles.
pub const BUILTIN_NAMES: [&str; 3] = ["generic-alarm", "generic-access", "zone-status-word"];

const GENERIC_ALARM: &str = include_str!("../../profiles/generic-alarm.toml");
const GENERIC_ACCESS: &str = include_str!("../../profiles/generic-access.toml");
const ZONE_STATUS_WORD: &str = include_str!("../../profiles/zone-status-word.toml");

/// The TOML text of a built-in profile.
pub fn builtin_text(name: &str) -> Option<&'static str> {
    match name {
        "generic-alarm" => Some(GENERIC_ALARM),
        "generic-access" => Some(GENERIC_ACCESS),
        "zone-status-word" => Some(ZONE_STATUS_WORD),
        _ => None,
    }
}

/// A built-in profile by name (`generic-alarm`, `generic-access`, `zone-status-word`).
///
/// The embedded files are checked by the tests, so a `None` here means an unknown name.
pub fn builtin(name: &str) -> Option<Profile> {
    builtin_text(name).and_then(|t| parse(t).ok())
}

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Read/write bits (FC 1, 5, 15).
    Coil,
    /// Read-only bits (FC 2).
    DiscreteInput,
    /// Read/write 16-bit registers (FC 3, 6, 16).
    Holding,
    /// Read-only 16-bit registers (FC 4).
    Input,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Coil, Table::DiscreteInput, Table::Holding, Table::Input];

    /// The name used in profile files.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete-input",
            Table::Holding => "holding",
            Table::Input => "input",
        }
    }

    pub fn from_name(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Coils and discrete inputs hold bits; the others hold 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    /// The protocol's limit on one read of this table.
    pub fn max_per_read(self) -> u16 {
        if self.is_bits() { MAX_BITS_PER_READ } else { MAX_REGISTERS_PER_READ }
    }

    /// The read function code.
    pub fn read_function(self) -> u8 {
        match self {
            Table::Coil => 1,
            Table::DiscreteInput => 2,
            Table::Holding => 3,
            Table::Input => 4,
        }
    }

    /// A dense index (0..4), for per-table arrays.
    pub fn index(self) -> usize {
        match self {
            Table::Coil => 0,
            Table::DiscreteInput => 1,
            Table::Holding => 2,
            Table::Input => 3,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a point means to the gateway; each role has its own state vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Zone,
    Partition,
    PanelFault,
    Door,
    Lock,
    ReaderFault,
    /// A number that keeps changing while the panel's logic runs; no states.
    Heartbeat,
    /// Any other number (temperature, battery voltage…); states optional and free-form.
    Value,
}

/// The fault codes a `panel-fault` or `reader-fault` point may report besides `ok`.
pub const FAULT_STATES: [&str; 7] =
    ["ok", "ac-loss", "battery-low", "comm-failure", "tamper", "lock-fault", "reader-fault"];

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Zone,
        Role::Partition,
        Role::PanelFault,
        Role::Door,
        Role::Lock,
        Role::ReaderFault,
        Role::Heartbeat,
        Role::Value,
    ];

    /// The name used in profile files (and by `ProfileResolver`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Zone => "zone",
            Role::Partition => "partition",
            Role::PanelFault => "panel-fault",
            Role::Door => "door",
            Role::Lock => "lock",
            Role::ReaderFault => "reader-fault",
            Role::Heartbeat => "heartbeat",
            Role::Value => "value",
        }
    }

    pub fn from_name(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The states a point of this role may map to; `None` means free-form (`value`).
    /// `heartbeat` has an empty vocabulary: it carries no states.
    pub fn vocabulary(self) -> Option<&'static [&'static str]> {
        match self {
            Role::Zone => Some(&["normal", "alarm", "tamper", "fault", "bypassed", "disabled"]),
            Role::Partition => Some(&["armed", "disarmed"]),
            Role::Door => Some(&["closed", "open", "forced", "held-open"]),
            Role::Lock => Some(&["locked", "unlocked"]),
            Role::PanelFault | Role::ReaderFault => Some(&FAULT_STATES),
            Role::Heartbeat => Some(&[]),
            Role::Value => None,
        }
    }

    /// Whether a point of this role must map its values to states.
    pub fn needs_states(self) -> bool {
        !matches!(self, Role::Heartbeat | Role::Value)
    }

    /// The state a freshly started panel shows (used by the simulator).
    pub fn resting_state(self) -> Option<&'static str> {
        match self {
            Role::Zone => Some("normal"),
            Role::Partition => Some("disarmed"),
            Role::Door => Some("closed"),
            Role::Lock => Some("locked"),
            Role::PanelFault | Role::ReaderFault => Some("ok"),
            Role::Heartbeat | Role::Value => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a point's value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// A coil, a discrete input, or one bit of a register.
    Bool,
    U16,
    I16,
    /// Two consecutive registers.
    U32,
    I32,
    /// IEEE 754 single precision in two consecutive registers.
    F32,
}

impl DataType {
    pub const ALL: [DataType; 6] =
        [DataType::Bool, DataType::U16, DataType::I16, DataType::U32, DataType::I32, DataType::F32];

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::F32 => "f32",
        }
    }

    pub fn from_name(s: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Registers (or bits) the value occupies.
    pub fn width(self) -> u16 {
        match self {
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            _ => 1,
        }
    }

    pub fn is_32bit(self) -> bool {
        self.width() == 2
    }

    /// Whether mask rules make sense (integer bit patterns).
    pub fn is_integer(self) -> bool {
        !matches!(self, DataType::F32)
    }

    /// The bits of the raw pattern (for mask checks).
    pub fn pattern_mask(self) -> u32 {
        match self {
            DataType::Bool => 1,
            DataType::U16 | DataType::I16 => 0xFFFF,
            _ => 0xFFFF_FFFF,
        }
    }

    /// The range of values the type can hold.
    pub fn range(self) -> (f64, f64) {
        match self {
            DataType::Bool => (0.0, 1.0),
            DataType::U16 => (0.0, 65535.0),
            DataType::I16 => (-32768.0, 32767.0),
            DataType::U32 => (0.0, 4_294_967_295.0),
            DataType::I32 => (-2_147_483_648.0, 2_147_483_647.0),
            DataType::F32 => (f32::MIN as f64, f32::MAX as f64),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Byte order within a register, or word order within a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Most significant first (the Modbus convention).
    #[default]
    Big,
    Little,
}

impl Order {
    pub fn from_name(s: &str) -> Option<Order> {
        match s {
            "big" => Some(Order::Big),
            "little" => Some(Order::Little),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Big => "big",
            Order::Little => "little",
        }
    }
}

/// How often a point is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tier {
    /// Every poll cycle (alarm zones, doors).
    #[default]
    Fast,
    /// Every `slow_every`-th cycle (diagnostics, heartbeats); the last value is carried.
    Slow,
}

impl Tier {
    pub fn from_name(s: &str) -> Option<Tier> {
        match s {
            "fast" => Some(Tier::Fast),
            "slow" => Some(Tier::Slow),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Slow => "slow",
        }
    }
}

/// One mapping rule. `value` alone: the value equals it. `mask` alone: any of the mask's
/// bits is set. Both: `(pattern & mask) == value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub value: Option<f64>,
    pub mask: Option<u32>,
    pub state: String,
}

impl Rule {
    /// Whether the rule matches a value (`raw`) with bit pattern `bits`.
    pub fn matches(&self, raw: f64, bits: u32) -> bool {
        match (self.value, self.mask) {
            (Some(v), None) => raw == v,
            (None, Some(m)) => bits & m != 0,
            (Some(v), Some(m)) => v >= 0.0 && v <= u32::MAX as f64 && (bits & m) as f64 == v,
            (None, None) => false,
        }
    }
}

/// Ordered rules (first match wins) and a default for values no rule matches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateMap {
    /// The named state set this came from, if any (for messages).
    pub name: Option<String>,
    pub rules: Vec<Rule>,
    pub default: Option<String>,
}

impl StateMap {
    /// The state for a value, or `None` when no rule matches and there is no default.
    pub fn state_of(&self, raw: f64, bits: u32) -> Option<&str> {
        self.rules.iter().find(|r| r.matches(raw, bits)).map(|r| r.state.as_str()).or(self.default.as_deref())
    }

    /// Every state the map can produce, rules first, then the default.
    pub fn states(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.state.as_str()).chain(self.default.as_deref())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.default.is_none()
    }
}

/// One point of a profile, after `count` expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: String,
    pub role: Role,
    pub table: Table,
    /// 0-based protocol address.
    pub address: u16,
    /// A bit (0 = least significant) within a register.
    pub bit: Option<u8>,
    pub data_type: DataType,
    pub byte_order: Order,
    pub word_order: Order,
    /// How values map to states; shared between the points of a repeated entry.
    pub states: Option<Arc<StateMap>>,
    pub tier: Tier,
    /// A panic / hold-up zone: never considered disarmed.
    pub twenty_four_hour: bool,
}

impl Point {
    /// A point of the given role, table and address, with defaults elsewhere (u16, or bool on
    /// a bit table). Handy for building profiles in code.
    pub fn new(id: impl Into<String>, role: Role, table: Table, address: u16) -> Point {
        Point {
            id: id.into(),
            role,
            table,
            address,
            bit: None,
            data_type: if table.is_bits() { DataType::Bool } else { DataType::U16 },
            byte_order: Order::Big,
            word_order: Order::Big,
            states: None,
            tier: Tier::Fast,
            twenty_four_hour: false,
        }
    }

    /// Addresses (registers, or bits on a bit table) the point occupies: `[start, end)`.
    /// `u32` so that an invalid 32-bit point at 65535 does not wrap.
    pub fn span(&self) -> (u32, u32) {
        let start = u32::from(self.address);
        let width = if self.table.is_bits() { 1 } else { u32::from(self.data_type.width()) };
        (start, start + width)
    }

    /// The state a value maps to (no state map → `None`).
    pub fn state_of(&self, raw: f64, bits: u32) -> Option<&str> {
        self.states.as_deref().and_then(|m| m.state_of(raw, bits))
    }
}

/// A decoded point: the raw number (bools as 0/1) and the state it maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct PointValue {
    pub raw: f64,
    pub state: Option<String>,
}

/// A decoded point borrowing its state from the profile (no allocation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading<'a> {
    pub raw: f64,
    pub state: Option<&'a str>,
}

impl Reading<'_> {
    pub fn to_value(self) -> PointValue {
        PointValue { raw: self.raw, state: self.state.map(str::to_owned) }
    }
}

/// A register map.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// Slow-tier points are read every this many poll cycles.
    pub slow_every: u32,
    /// The largest gap of unneeded addresses a poller's read may span (0 for devices that
    /// reject reads of unmapped addresses).
    pub max_gap: u16,
    /// Points in file order, `count` entries expanded.
    pub points: Vec<Point>,
}

impl Profile {
    pub fn new(name: impl Into<String>, points: Vec<Point>) -> Profile {
        Profile {
            name: name.into(),
            description: String::new(),
            slow_every: DEFAULT_SLOW_EVERY,
            max_gap: DEFAULT_MAX_GAP,
            points,
        }
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    pub fn point(&self, id: &str) -> Option<&Point> {
        self.points.iter().find(|p| p.id == id)
    }

    /// Index of a point in [`Profile::points`].
    pub fn point_index(&self, id: &str) -> Option<usize> {
        self.points.iter().position(|p| p.id == id)
    }

    /// (point id, role name) pairs, as the site config's `ProfileResolver` wants them.
    pub fn point_roles(&self) -> Vec<(String, String)> {
        self.points.iter().map(|p| (p.id.clone(), p.role.as_str().to_string())).collect()
    }

    /// Whether any point is on the slow tier.
    pub fn has_slow_points(&self) -> bool {
        self.points.iter().any(|p| p.tier == Tier::Slow)
    }

    /// Every problem in the profile; empty when it is usable. [`parse`] already runs this.
    pub fn validate(&self) -> Vec<String> {
        validate::validate(self)
    }

    /// The fewest read requests that cover every point, merging ranges at most `max_gap`
    /// unneeded addresses apart, within the protocol limits.
    pub fn plan(&self, max_gap: u16) -> Vec<ReadRequest> {
        self.read_plan(max_gap, |_| true).requests().to_vec()
    }

    /// A plan for the points `include` selects, remembering where each point's data lands.
    pub fn read_plan(&self, max_gap: u16, include: impl Fn(&Point) -> bool) -> ReadPlan {
        plan::plan(self, max_gap, include)
    }

    /// Decodes every point that one of `reads` covers (points no read covers are left out).
    pub fn decode(&self, reads: &[(ReadRequest, RawData)]) -> Result<BTreeMap<String, PointValue>, DecodeError> {
        plan::decode_reads(self, reads)
    }
}
