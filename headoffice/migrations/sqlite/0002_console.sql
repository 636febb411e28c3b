-- Head office's schema, version 2 (sqlite): the web console (hq serve). Keep in step with
-- ../postgres/0002_console.sql.

-- Local users of the console. Never deleted (the audit log names them), only disabled.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT   NOT NULL, -- argon2id, PHC string
    role          TEXT   NOT NULL, -- viewer | operator | admin
    lang          TEXT,            -- zh-CN | en; NULL: the browser's Accept-Language
    disabled      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Signed-in browsers. Only a hash of the cookie's token is stored.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name  TEXT   NOT NULL,
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);

-- Alarms (a raised alarm-link, a forced door) that no operator has acknowledged yet.
CREATE TABLE open_alarms (
    branch      TEXT   NOT NULL,
    alert_id    TEXT   NOT NULL,
    occurred_at BIGINT NOT NULL,
    PRIMARY KEY (branch, alert_id)
);

-- Who acknowledged which alarm, when, and what they wrote.
CREATE TABLE alarm_acks (
    branch   TEXT   NOT NULL,
    alert_id TEXT   NOT NULL,
    acked_by TEXT   NOT NULL,
    acked_at BIGINT NOT NULL,
    comment  TEXT   NOT NULL,
    PRIMARY KEY (branch, alert_id)
);

-- Every acknowledgement, sign-in and user change.
CREATE TABLE audit_log (
    pk INTEGER PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    target TEXT   NOT NULL,
    detail TEXT   NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- The console's live view asks "has anything changed since I last looked?" every half second.
CREATE INDEX latest_devices_received ON latest_devices (received_at);
