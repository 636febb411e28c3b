-- Head office's schema, version 3 (postgres): rectification orders (整改). Keep in step with
-- ../sqlite/0003_orders.sql.

CREATE TABLE orders (
    id          BIGSERIAL PRIMARY KEY,
    branch       TEXT   NOT NULL,
    condition    TEXT   NOT NULL, -- camera-offline | zone-uncovered | device-fault | gateway-offline | manual
    subject      TEXT   NOT NULL, -- the device, device/fault or zone; '' for the gateway; manual: a key
    subject_name TEXT   NOT NULL,
    severity     TEXT   NOT NULL, -- critical | major | minor
    state        TEXT   NOT NULL, -- open | in-progress | fixed | verified | closed
    requirement  TEXT   NOT NULL, -- English
    requirement_zh TEXT NOT NULL, -- 中文
    assignee     TEXT   NOT NULL,
    taken_by     TEXT,
    since        BIGINT NOT NULL, -- when the condition began
    opened_at    BIGINT NOT NULL,
    deadline     BIGINT NOT NULL,
    fixed_at     BIGINT,
    verified_at  BIGINT,
    closed_at    BIGINT,
    overdue_at   BIGINT,          -- when it was found past its deadline (and escalated)
    reopened     BIGINT NOT NULL, -- how often the condition came back during verification
    -- 1 while open, in progress or fixed: one active order per condition.
    active       BIGINT NOT NULL
);
CREATE UNIQUE INDEX orders_one_active ON orders (branch, condition, subject) WHERE active = 1;
CREATE INDEX orders_branch ON orders (branch, opened_at);
CREATE INDEX orders_opened ON orders (opened_at);

-- Every transition of every order: who (a user, or hq), what, when, and the note.
CREATE TABLE order_events (
    pk       BIGSERIAL PRIMARY KEY,
    order_id BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    actor    TEXT   NOT NULL,
    action   TEXT   NOT NULL, -- opened | taken | note | fixed | verified | reopened | overdue | closed
    note     TEXT   NOT NULL
);
CREATE INDEX order_events_order ON order_events (order_id, pk);
