-- Head office's schema, version 1 (PostgreSQL). Keep in step with ../sqlite/0001_init.sql: the
-- two differ only where the dialects do (BIGSERIAL vs INTEGER PRIMARY KEY).
-- Times are milliseconds since the Unix epoch (UTC) in BIGINT: one representation for both
-- backends, indexable, and exact at the contract's millisecond precision.

-- Every alert once, as published (deduplicated on (branch, id)), with the columns the
-- questions filter and aggregate on.
CREATE TABLE alerts (
    branch      TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    -- A gateway whose data directory was wiped starts again at seq 1: each restart of a
    -- branch's sequence is a new epoch, so gaps are looked for within one epoch.
    epoch       BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    severity    BIGINT NOT NULL, -- 0 info, 1 warning, 2 major, 3 critical
    device      TEXT   NOT NULL,
    device_type TEXT   NOT NULL,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    -- A raised alarm-link (not a follow-up) whose linked cameras were not all live.
    camera_down BIGINT NOT NULL,
    follow_up   BIGINT NOT NULL,
    payload     TEXT   NOT NULL,
    PRIMARY KEY (branch, id)
);
CREATE INDEX alerts_branch_time ON alerts (branch, occurred_at);
-- By kind and time, covering what the assessment counts (raised alarms per branch, alarms
-- with a camera down) so that those are index-only scans, not a walk through the payloads.
CREATE INDEX alerts_kind_time ON alerts (kind, occurred_at, state, follow_up, camera_down, branch);
CREATE INDEX alerts_time ON alerts (occurred_at);
CREATE INDEX alerts_seq ON alerts (branch, epoch, seq);

-- Per-branch sequence bookkeeping, shared by every listener.
CREATE TABLE branch_seq (
    branch    TEXT PRIMARY KEY,
    epoch     BIGINT NOT NULL,
    max_seq   BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);

-- Everything that has a timeline in the report: cameras, zones, gateways.
CREATE TABLE subjects (
    branch       TEXT   NOT NULL,
    subject_kind TEXT   NOT NULL, -- camera | zone | gateway
    subject      TEXT   NOT NULL, -- device or zone id; '' for the gateway
    name         TEXT   NOT NULL,
    required     BIGINT NOT NULL,
    PRIMARY KEY (branch, subject_kind, subject)
);

-- Facts on those timelines: from `at`, bad (with a reason) or good. Idempotent: the same fact
-- re-sent (a retained value after a reconnect, a redelivered alert) is stored once.
CREATE TABLE timeline (
    pk           BIGSERIAL PRIMARY KEY,
    branch       TEXT   NOT NULL,
    subject_kind TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    at           BIGINT NOT NULL,
    bad          BIGINT NOT NULL,
    reason       TEXT,
    source       TEXT   NOT NULL, -- alert | health | coverage | status
    received_at  BIGINT NOT NULL,
    UNIQUE (branch, subject_kind, subject, at, source, bad)
);
CREATE INDEX timeline_time ON timeline (at);

-- Raised camera-offline and device-fault conditions not yet cleared, and the repairs (raise →
-- clear) that closed them: mean time to repair is an aggregate over `repairs`.
CREATE TABLE open_faults (
    branch      TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    device      TEXT   NOT NULL,
    fault       TEXT   NOT NULL,
    device_type TEXT   NOT NULL,
    raised_at   BIGINT NOT NULL,
    PRIMARY KEY (branch, kind, device, fault)
);
CREATE TABLE repairs (
    branch      TEXT   NOT NULL,
    alert_id    TEXT   NOT NULL, -- the clearing alert
    device_type TEXT   NOT NULL,
    raised_at   BIGINT NOT NULL,
    cleared_at  BIGINT NOT NULL,
    PRIMARY KEY (branch, alert_id)
);
CREATE INDEX repairs_cleared ON repairs (cleared_at);

-- The latest retained value of every state topic.
CREATE TABLE latest_gateways (
    branch      TEXT PRIMARY KEY,
    status      TEXT   NOT NULL,
    since       BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    payload     TEXT   NOT NULL
);
CREATE TABLE latest_devices (
    branch      TEXT   NOT NULL,
    device      TEXT   NOT NULL,
    device_type TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    payload     TEXT   NOT NULL,
    PRIMARY KEY (branch, device)
);
CREATE TABLE latest_coverage (
    branch      TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    payload     TEXT   NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES
    ('alerts', 0), ('duplicates', 0), ('malformed', 0),
    ('gateway_changes', 0), ('device_changes', 0), ('zone_changes', 0), ('pruned', 0);
