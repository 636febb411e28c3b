-- Head office's schema, version 4 (sqlite): notifications. Keep in step with ../postgres/0004_notify.sql.

-- Whether an alert / an order event has been taken by the notifier. What is stored before
-- this version counts as taken (the default, 1: no rewrite of a bank's alerts table), and
-- hq stores new rows with 0.
ALTER TABLE alerts ADD COLUMN notified BIGINT NOT NULL DEFAULT 1;
CREATE INDEX alerts_unnotified ON alerts (received_at) WHERE notified = 0;
ALTER TABLE order_events ADD COLUMN notified BIGINT NOT NULL DEFAULT 1;
CREATE INDEX order_events_unnotified ON order_events (at) WHERE notified = 0;

-- Every message to send, until it is sent or given up: one per (what it is about, channel,
-- recipient), so nothing is sent twice.
CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY,
    dedup         TEXT   NOT NULL,
    channel       TEXT   NOT NULL,
    recipient     TEXT   NOT NULL,
    branch        TEXT   NOT NULL,
    kind          TEXT   NOT NULL,
    lang          TEXT   NOT NULL,
    subject       TEXT   NOT NULL,
    body          TEXT   NOT NULL,
    payload       TEXT   NOT NULL, -- the JSON a webhook receives
    state         TEXT   NOT NULL, -- pending | sent | expired
    attempts      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    next_at       BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL, -- a sender holds it until then
    expires_at    BIGINT NOT NULL,
    sent_at       BIGINT,
    answer        TEXT,
    last_error    TEXT,
    UNIQUE (dedup, channel, recipient)
);
CREATE INDEX notifications_due ON notifications (state, next_at);

-- Alarms escalated, per rule: each once.
CREATE TABLE escalated (
    branch   TEXT   NOT NULL,
    alert_id TEXT   NOT NULL,
    rule     TEXT   NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (branch, alert_id, rule)
);
