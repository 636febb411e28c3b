//! The history generator's SQL: a bank's 180 days written straight into head office's schema
//! with `INSERT … SELECT` over a numbers source, in the subset PostgreSQL and SQLite share. The
//! dialects differ in three expressions only — the numbers source (`generate_series` / a
//! recursive CTE), a timestamp as RFC 3339 text (`to_char` / `strftime`) and a number in hex
//! (`to_hex` / `printf`) — see [`Dialect`].
//!
//! What a branch holds (`b1`…`bN`): 20 cameras `cam-1`…`cam-20`, four zones `z1`…`z4` (`z1` and
//! `z2` required; zone `zN` watched by cameras 2N−1 and 2N), an alarm panel `panel-1` and two
//! door controllers `door-1`, `door-2`. Its 2,800 alerts (`seq` 1…2,800) are 1,400
//! raised/cleared pairs, one pair every 180 d / 1,400 ≈ 3 h 5 min, the branches staggered
//! within that step; the clear follows its raise after a kind-specific while (doors 1–5 min,
//! alarms 2–10 min, cameras 40–80 min, faults 30–90 min), so `seq` order is time order. Every
//! 28 alerts: 14 door-status, 6 alarm-link, 6 camera-offline, 2 device-fault — per branch 1,400,
//! 600, 600 and 200; 12 of the 300 raised alarms have a linked camera down (`camera_down`).
//! Payloads are complete `branch-alert/1` documents (UUID-shaped ids included), built with `||`.
//!
//! Alerts are generated in chunks of whole cycles, time-major (every branch's pairs of one
//! stretch of time, then the next), one transaction per chunk: the order in which a live head
//! office would have stored them. With each camera-offline and device-fault chunk go its
//! consequences, as `hq listen` would have stored them: the camera's timeline facts and the
//! repairs (raise → clear).

use protocols::alert::ALERT_SCHEMA;

/// 180 days in milliseconds.
pub const SPAN_MS: i64 = 180 * 86_400_000;
/// Alerts per branch (1,400 raised/cleared pairs).
pub const PER_BRANCH: u64 = 2_800;
/// Alerts per cycle of the kind pattern.
const CYCLE: u64 = 28;
/// Cycles per generator chunk: 5 cycles = 140 alerts per branch, about 6 days.
pub const CYCLES_PER_CHUNK: u64 = 5;
/// Chunks in all.
pub const CHUNKS: u64 = PER_BRANCH / CYCLE / CYCLES_PER_CHUNK;
/// Zone uncovered/covered pairs per branch (zone `z1`).
const ZONE_PAIRS: i64 = 50;
/// Gateway offline/online pairs per branch.
const GATEWAY_PAIRS: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// `WITH RECURSIVE n(i) AS (…)` yielding the integers `from..=to` as column `i`.
    fn numbers(self, from: u64, to: u64) -> String {
        match self {
            // BIGINT throughout: times are milliseconds since the epoch.
            Dialect::Postgres => {
                format!("WITH RECURSIVE n(i) AS (SELECT generate_series(CAST({from} AS BIGINT), CAST({to} AS BIGINT)))")
            }
            Dialect::Sqlite => {
                format!("WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})")
            }
        }
    }

    /// Milliseconds since the epoch as RFC 3339 with milliseconds (`2026-11-24T08:00:00.123Z`).
    fn rfc3339(self, ms: &str) -> String {
        match self {
            Dialect::Postgres => format!(
                "(to_char(to_timestamp(({ms}) / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '.' || \
                 lpad(CAST(({ms}) % 1000 AS TEXT), 3, '0') || 'Z')"
            ),
            Dialect::Sqlite => format!(
                "(strftime('%Y-%m-%dT%H:%M:%S', ({ms}) / 1000, 'unixepoch') || '.' || printf('%03d', ({ms}) % 1000) || 'Z')"
            ),
        }
    }

    /// A non-negative number as 12 lower-case hex digits.
    fn hex12(self, x: &str) -> String {
        match self {
            Dialect::Postgres => format!("lpad(to_hex({x}), 12, '0')"),
            Dialect::Sqlite => format!("printf('%012x', {x})"),
        }
    }
}

/// What to generate: `branches` branches, history ending just before `now_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub dialect: Dialect,
    pub branches: u64,
    pub now_ms: i64,
}

impl Plan {
    fn start_ms(&self) -> i64 {
        self.now_ms - SPAN_MS
    }

    /// Alerts in all.
    pub fn alerts(&self) -> u64 {
        self.branches * PER_BRANCH
    }

    /// The statements of chunk `chunk` (0-based, `< CHUNKS`), to run in one transaction.
    pub fn alert_chunk(&self, chunk: u64) -> Vec<String> {
        let kinds = [Kind::Door, Kind::Alarm, Kind::Camera, Kind::Fault];
        let mut out = Vec::new();
        for kind in kinds {
            out.push(self.alert_statement(chunk, kind, Target::Alerts));
            if matches!(kind, Kind::Camera | Kind::Fault) {
                out.push(self.alert_statement(chunk, kind, Target::Repairs));
            }
            if kind == Kind::Camera {
                out.push(self.alert_statement(chunk, kind, Target::CameraFacts));
            }
        }
        out
    }

    /// One kind's alerts of one chunk (or their repairs, or their camera facts).
    fn alert_statement(&self, chunk: u64, kind: Kind, target: Target) -> String {
        let nb = self.branches;
        let per_chunk = CYCLES_PER_CHUNK * CYCLE;
        // i = (k − 1) · branches + (b − 1): every branch's k-th alert, then the (k+1)-th…
        let (from, to) = (chunk * per_chunk * nb, (chunk + 1) * per_chunk * nb - 1);
        let step = SPAN_MS / (PER_BRANCH as i64 / 2); // one pair per branch per step
        let stagger = step / nb as i64;
        let d = self.dialect;
        // s: per alert, b (branch number), k (seq), p (place in the 28-cycle), c (cycle),
        // j (pair), h (a pseudo-random 0..59), raised (1/0), x (the alarm's or camera outage's
        // number within the branch, 0..299), at0 (when the pair's raise occurred).
        let s = format!(
            "{numbers}, \
             g AS (SELECT i % {nb} + 1 AS b, i / {nb} + 1 AS k FROM n), \
             s0 AS (SELECT b, k, (k - 1) % 28 AS p, (k - 1) / 28 AS c, (k - 1) / 2 AS j, \
                    ((k - 1) / 28 * 7 + b * 13) % 60 AS h, 1 - (k - 1) % 2 AS raised FROM g), \
             s AS (SELECT b, k, p, c, j, h, raised, c * 3 + p / 10 AS x, \
                   {start} + j * {step} + (b - 1) * {stagger} AS at0 FROM s0)",
            numbers = d.numbers(from, to),
            start = self.start_ms(),
        );
        let a = kind.select();
        // v: the columns of an alerts row, plus what the payload is built from.
        let v = format!(
            "v AS (SELECT a.*, 'b' || CAST(b AS TEXT) AS branch, \
                   CASE raised WHEN 1 THEN 'raised' ELSE 'cleared' END AS state, {id} AS id FROM a)",
            id = uuid_like(d, "at + 200", "k", "b")
        );
        let body = match target {
            Target::Alerts => format!(
                "INSERT INTO alerts (branch, id, seq, epoch, kind, state, severity, device, device_type, \
                 occurred_at, received_at, camera_down, follow_up, payload) \
                 SELECT branch, id, k, 0, kind, state, severity, device, device_type, at, at + 500, camera_down, 0, \
                 {payload} FROM v",
                payload = payload(d)
            ),
            // As `hq listen` records them: the clearing alert's id, raise → clear.
            Target::Repairs => "INSERT INTO repairs (branch, alert_id, device_type, raised_at, cleared_at) \
                 SELECT branch, id, device_type, at0, at FROM v WHERE raised = 0"
                .to_string(),
            Target::CameraFacts => "INSERT INTO timeline (branch, subject_kind, subject, at, bad, reason, source, \
                 received_at) SELECT branch, 'camera', device, at, raised, \
                 CASE raised WHEN 1 THEN 'unreachable' ELSE NULL END, 'alert', at + 500 FROM v"
                .to_string(),
        };
        format!("{s}, a AS ({a}), {v} {body}")
    }

    /// Everything that is not an alert: cameras, zones and gateways; the zones' and gateways'
    /// timelines; each branch's sequence state; the alert counter.
    pub fn the_rest(&self) -> Vec<String> {
        let nb = self.branches;
        let d = self.dialect;
        let start = self.start_ms();
        let subjects = format!(
            "{numbers}, g AS (SELECT i % {nb} + 1 AS b, i / {nb} AS m FROM n) \
             INSERT INTO subjects (branch, subject_kind, subject, name, required) \
             SELECT 'b' || CAST(b AS TEXT), \
                    CASE WHEN m < 20 THEN 'camera' WHEN m < 24 THEN 'zone' ELSE 'gateway' END, \
                    CASE WHEN m < 20 THEN 'cam-' || CAST(m + 1 AS TEXT) WHEN m < 24 THEN 'z' || CAST(m - 19 AS TEXT) \
                         ELSE '' END, \
                    CASE WHEN m < 20 THEN 'Camera ' || CAST(m + 1 AS TEXT) WHEN m < 24 THEN {zone_name} ELSE '' END, \
                    CASE WHEN m IN (20, 21) THEN 1 ELSE 0 END \
             FROM g",
            numbers = d.numbers(0, nb * 25 - 1),
            zone_name = zone_name("m - 19"),
        );
        // Pairs of facts per branch: e even = bad from `at`, e odd = good again a while later.
        let facts = |pairs: i64, kind: &str, subject: &str, reason: &str, source: &str, shift: i64, min_ms: i64| {
            let step = SPAN_MS / pairs;
            format!(
                "{numbers}, g AS (SELECT i % {nb} + 1 AS b, i / {nb} AS e FROM n), \
                 f AS (SELECT b, e, {start} + {shift} + (e / 2) * {step} + (b - 1) * {stagger} \
                       + (e % 2) * ({min_ms} + ((e / 2) * 7 + b * 13) % 60 * 60000) AS at FROM g) \
                 INSERT INTO timeline (branch, subject_kind, subject, at, bad, reason, source, received_at) \
                 SELECT 'b' || CAST(b AS TEXT), '{kind}', '{subject}', at, 1 - e % 2, \
                        CASE e % 2 WHEN 0 THEN {reason} ELSE NULL END, '{source}', at + 500 FROM f",
                numbers = d.numbers(0, nb * pairs as u64 * 2 - 1),
                stagger = step / nb as i64,
            )
        };
        vec![
            subjects,
            // z1 uncovered for 20–79 min, about every 3.6 days.
            facts(ZONE_PAIRS, "zone", "z1", "NULL", "coverage", 1_800_000, 1_200_000),
            // The gateway offline for 5–64 min, every 18 days.
            facts(GATEWAY_PAIRS, "gateway", "", "'connection-lost'", "status", 7_200_000, 300_000),
            format!(
                "{numbers}, g AS (SELECT 'b' || CAST(i + 1 AS TEXT) AS branch FROM n) \
                 INSERT INTO branch_seq (branch, epoch, max_seq, last_seen) \
                 SELECT a.branch, 0, a.seq, a.received_at FROM g JOIN alerts a \
                 ON a.branch = g.branch AND a.epoch = 0 AND a.seq = {PER_BRANCH}",
                numbers = d.numbers(0, nb - 1),
            ),
            format!("UPDATE counters SET value = {} WHERE name = 'alerts'", self.alerts()),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Door,
    Alarm,
    Camera,
    Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Alerts,
    Repairs,
    CameraFacts,
}

/// `'Vault'`, `'Cash office'`, `'Lobby'`, `'ATM room'` for zone number `z` (1–4).
fn zone_name(z: &str) -> String {
    format!("CASE {z} WHEN 1 THEN 'Vault' WHEN 2 THEN 'Cash office' WHEN 3 THEN 'Lobby' ELSE 'ATM room' END")
}

/// A linked camera as JSON: camera number `n`, live or not (`live`: SQL text `'true'`/`'false'`).
fn linked_camera(n: &str, live: &str) -> String {
    format!(
        "'{{\"id\":\"cam-' || CAST({n} AS TEXT) || '\",\"name\":\"Camera ' || CAST({n} AS TEXT) || \
         '\",\"online\":' || {live} || ',\"stream_alive\":' || {live} || \
         ',\"frozen\":false,\"stream_uri\":\"rtsp://10.20.0.' || CAST({n} AS TEXT) || ':554/stream1\"}}'"
    )
}

impl Kind {
    /// `a`: one kind's alerts from `s`, as columns b, k, raised, at0, at, kind, severity (0–3),
    /// device, device_type, device_name, zones (JSON array items), camera_down, message and
    /// details (JSON).
    fn select(self) -> String {
        // The time of this alert: the pair's raise, or its clear `dur` later.
        let at = |dur: &str| format!("at0 + CASE raised WHEN 1 THEN 0 ELSE {dur} END AS at");
        match self {
            Kind::Door => {
                let door = "CASE j % 2 WHEN 0 THEN 'main-door' ELSE 'vault-door' END";
                let name = "CASE j % 2 WHEN 0 THEN 'Main door' ELSE 'Vault door' END";
                let door_state =
                    "CASE WHEN raised = 0 THEN 'closed' WHEN j % 10 = 3 THEN 'forced-open' ELSE 'held-open' END";
                let said =
                    "CASE WHEN raised = 0 THEN ' closed' WHEN j % 10 = 3 THEN ' forced open' ELSE ' held open' END";
                format!(
                    "SELECT b, k, raised, at0, {at}, 'door-status' AS kind, \
                     CASE WHEN raised = 0 THEN 0 WHEN j % 10 = 3 THEN 3 ELSE 2 END AS severity, \
                     'door-' || CAST(j % 2 + 1 AS TEXT) AS device, 'access-controller' AS device_type, \
                     'Door controller ' || CAST(j % 2 + 1 AS TEXT) AS device_name, \
                     '\"' || {door} || '\"' AS zones, 0 AS camera_down, \
                     {name} || {said} AS message, \
                     '{{\"door\":\"' || {door} || '\",\"door_name\":\"' || {name} || '\",\"door_state\":\"' || \
                     {door_state} || '\",\"locked\":' || CASE raised WHEN 1 THEN 'false' ELSE 'true' END || \
                     ',\"cameras\":[' || {cam} || ']}}' AS details \
                     FROM s WHERE p IN (0, 1, 6, 7, 8, 9, 14, 15, 18, 19, 22, 23, 26, 27)",
                    at = at("60000 + h * 4000"),
                    cam = linked_camera("9 + j % 2", "'true'"),
                )
            }
            Kind::Alarm => {
                // The alarm zone lies in area z (1–4), watched by cameras 2z−1 and 2z; the first
                // of them is down for 12 of a branch's 300 alarms.
                let z = "((x + b) % 4 + 1)";
                let down = "CASE WHEN raised = 1 AND x % 25 = 7 THEN 1 ELSE 0 END";
                let live = format!("CASE {down} WHEN 1 THEN 'false' ELSE 'true' END");
                format!(
                    "SELECT b, k, raised, at0, {at}, 'alarm-link' AS kind, \
                     CASE raised WHEN 1 THEN 3 ELSE 0 END AS severity, \
                     'panel-1' AS device, 'alarm-panel' AS device_type, 'Intrusion panel' AS device_name, \
                     '\"z' || CAST({z} AS TEXT) || '-pir\"' AS zones, {down} AS camera_down, \
                     CASE raised WHEN 1 THEN 'Alarm: ' || {zname} || ' PIR' ELSE {zname} || ' PIR back to normal' END \
                     || CASE {down} WHEN 1 THEN ' (a linked camera is down)' ELSE '' END AS message, \
                     '{{\"zone\":\"z' || CAST({z} AS TEXT) || '-pir\",\"zone_name\":\"' || {zname} || \
                     ' PIR\",\"zone_state\":\"' || CASE raised WHEN 1 THEN 'alarm' ELSE 'normal' END || \
                     '\",\"partition\":\"1\",\"armed\":true,\"twenty_four_hour\":false,\"area\":\"z' || \
                     CAST({z} AS TEXT) || '\",\"cameras\":[' || {cam1} || ',' || {cam2} || ']}}' AS details \
                     FROM s WHERE p IN (2, 3, 12, 13, 20, 21)",
                    at = at("120000 + h * 8000"),
                    zname = zone_name(z),
                    cam1 = linked_camera(&format!("2 * {z} - 1"), &live),
                    cam2 = linked_camera(&format!("2 * {z}"), "'true'"),
                )
            }
            Kind::Camera => {
                let n = "((x + b) % 20 + 1)";
                format!(
                    "SELECT b, k, raised, at0, {at}, 'camera-offline' AS kind, \
                     CASE raised WHEN 1 THEN 2 ELSE 0 END AS severity, \
                     'cam-' || CAST({n} AS TEXT) AS device, 'camera' AS device_type, \
                     'Camera ' || CAST({n} AS TEXT) AS device_name, '' AS zones, 0 AS camera_down, \
                     'Camera ' || CAST({n} AS TEXT) || \
                     CASE raised WHEN 1 THEN ' offline: unreachable' ELSE ' back online' END AS message, \
                     CASE raised \
                     WHEN 1 THEN '{{\"status\":\"unreachable\",\"reason\":\"connect: connection refused\",\
                     \"consecutive_failures\":3,\"armed\":false,\"uncovered_zones\":[]}}' \
                     ELSE '{{\"status\":\"online\",\"reason\":\"back\",\"consecutive_failures\":0,\"armed\":false,\
                     \"uncovered_zones\":[]}}' END AS details \
                     FROM s WHERE p IN (4, 5, 16, 17, 24, 25)",
                    at = at("2400000 + h * 40000"),
                )
            }
            Kind::Fault => {
                // Cycle by cycle: the panel's mains, a door controller's tamper switch, the other
                // one's battery, a camera's storage.
                let cam = "'cam-' || CAST((c + b) % 20 + 1 AS TEXT)";
                let device = format!(
                    "CASE c % 4 WHEN 0 THEN 'panel-1' WHEN 1 THEN 'door-1' WHEN 2 THEN 'door-2' ELSE {cam} END"
                );
                let fault = "CASE c % 4 WHEN 0 THEN 'ac-loss' WHEN 1 THEN 'tamper' WHEN 2 THEN 'battery-low' \
                             ELSE 'storage-failure' END";
                let reason = "CASE c % 4 WHEN 0 THEN 'mains power lost' WHEN 1 THEN 'enclosure opened' \
                              WHEN 2 THEN 'backup battery low' ELSE 'SD card not writable' END";
                format!(
                    "SELECT b, k, raised, at0, {at}, 'device-fault' AS kind, \
                     CASE raised WHEN 1 THEN 2 ELSE 0 END AS severity, \
                     {device} AS device, \
                     CASE c % 4 WHEN 0 THEN 'alarm-panel' WHEN 3 THEN 'camera' ELSE 'access-controller' END AS device_type, \
                     CASE c % 4 WHEN 0 THEN 'Intrusion panel' WHEN 1 THEN 'Door controller 1' \
                     WHEN 2 THEN 'Door controller 2' ELSE 'Camera ' || CAST((c + b) % 20 + 1 AS TEXT) END AS device_name, \
                     '' AS zones, 0 AS camera_down, \
                     {device} || ': ' || {reason} || CASE raised WHEN 1 THEN '' ELSE ' (cleared)' END AS message, \
                     '{{\"fault\":\"' || {fault} || '\",\"reason\":\"' || {reason} || '\"}}' AS details \
                     FROM s WHERE p IN (10, 11)",
                    at = at("1800000 + h * 60000"),
                )
            }
        }
    }
}

/// A UUID-shaped id (like the gateways' UUID v7: the time in the first 48 bits), unique per
/// (branch, seq).
fn uuid_like(d: Dialect, ms: &str, k: &str, b: &str) -> String {
    let t = d.hex12(ms);
    format!(
        "substr({t}, 1, 8) || '-' || substr({t}, 9, 4) || '-7' || substr({hk}, 10, 3) || '-8' || \
         substr({hb}, 10, 3) || '-' || {hbk}",
        hk = d.hex12(k),
        hb = d.hex12(b),
        hbk = d.hex12(&format!("{b} * 10000 + {k}")),
    )
}

/// The `branch-alert/1` payload of a row of `v`, fields in the order the gateway writes them.
fn payload(d: Dialect) -> String {
    format!(
        "'{{\"schema\":\"{ALERT_SCHEMA}\",\"id\":\"' || id || '\",\"seq\":' || CAST(k AS TEXT) || \
         ',\"branch\":\"' || branch || '\",\"state\":\"' || state || '\",\"severity\":\"' || \
         CASE severity WHEN 0 THEN 'info' WHEN 1 THEN 'warning' WHEN 2 THEN 'major' ELSE 'critical' END || \
         '\",\"device\":{{\"id\":\"' || device || '\",\"type\":\"' || device_type || '\",\"name\":\"' || \
         device_name || '\",\"zones\":[' || zones || ']}},\"occurred_at\":\"' || {occurred} || \
         '\",\"detected_at\":\"' || {detected} || '\",\"message\":\"' || message || '\",\"kind\":\"' || \
         kind || '\",\"details\":' || details || '}}'",
        occurred = d.rfc3339("at"),
        detected = d.rfc3339("at + 200"),
    )
}
