-- The partner admin API: API keys, the audit log of every admin write, webhook
-- subscriptions, CSV exports, and the order fields fulfilment and refunds set.

-- A key is `cg_<prefix>_<secret>`. Only the SHA-256 of the whole key is stored; the
-- prefix (public, unique) finds the row, and the hash is compared in constant time.
CREATE TABLE api_keys (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix        TEXT NOT NULL UNIQUE,
    secret_hash   BYTEA NOT NULL CHECK (length(secret_hash) = 32),
    scopes        TEXT[] NOT NULL,
    plan          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    -- The key that created this one through the admin API (NULL: the CLI).
    created_by    BIGINT REFERENCES api_keys (id) ON DELETE SET NULL
);
CREATE INDEX api_keys_created_idx ON api_keys (created_at, id);

-- Who changed what, when. `api_key_id` NULL means the command line.
CREATE TABLE audit_log (
    id             BIGSERIAL PRIMARY KEY,
    api_key_id     BIGINT REFERENCES api_keys (id) ON DELETE SET NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT,
    changes        JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at, id);
CREATE INDEX audit_log_key_idx ON audit_log (api_key_id, created_at);
CREATE INDEX audit_log_resource_idx ON audit_log (resource_type, resource_id);

CREATE TABLE webhook_subscriptions (
    id          BIGSERIAL PRIMARY KEY,
    topic       TEXT NOT NULL CHECK (topic IN ('ORDERS_CREATE', 'ORDERS_PAID', 'ORDERS_CANCELLED', 'INVENTORY_LOW')),
    url         TEXT NOT NULL,
    -- Signs each delivery (HMAC-SHA256); shown once, when the subscription is created.
    secret      TEXT NOT NULL,
    api_key_id  BIGINT REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (topic, url)
);

-- CSV exports run as jobs; the finished file is kept here for download.
CREATE TABLE exports (
    id           BIGSERIAL PRIMARY KEY,
    status       TEXT NOT NULL DEFAULT 'QUEUED' CHECK (status IN ('QUEUED', 'RUNNING', 'DONE', 'FAILED')),
    query        TEXT,
    rows_done    BIGINT NOT NULL DEFAULT 0,
    content      TEXT,
    error        TEXT,
    api_key_id   BIGINT REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);

ALTER TABLE orders
    ADD COLUMN fulfilled_at     TIMESTAMPTZ,
    ADD COLUMN tracking_number  TEXT,
    ADD COLUMN tracking_url     TEXT,
    ADD COLUMN refunded_minor   BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    ADD COLUMN refunded_at      TIMESTAMPTZ;
-- The admin API's filter by email matches addresses case-insensitively (checkout keeps
-- them as typed).
CREATE INDEX orders_email_lower_idx ON orders (lower(email), id);
