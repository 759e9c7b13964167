-- Orders, their reservations, payment events and the durable job queue.

CREATE SEQUENCE order_numbers START 1001;

CREATE TABLE orders (
    id                BIGSERIAL PRIMARY KEY,
    number            BIGINT NOT NULL UNIQUE DEFAULT nextval('order_numbers'),
    -- The buyer's key to the order (confirmation page, `order(accessToken:)`).
    access_token      TEXT NOT NULL UNIQUE,
    -- A retry of a checkout with the same key returns this order.
    idempotency_key   TEXT NOT NULL UNIQUE,
    cart_id           BIGINT REFERENCES carts (id) ON DELETE SET NULL,
    status            TEXT NOT NULL DEFAULT 'PENDING_PAYMENT'
                      CHECK (status IN ('PENDING_PAYMENT', 'PAID', 'FULFILLED', 'CANCELLED', 'REFUNDED')),
    email             TEXT NOT NULL,
    currency          TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    subtotal_minor    BIGINT NOT NULL CHECK (subtotal_minor >= 0),
    shipping_minor    BIGINT NOT NULL CHECK (shipping_minor >= 0),
    tax_minor         BIGINT NOT NULL CHECK (tax_minor >= 0),
    total_minor       BIGINT NOT NULL CHECK (total_minor >= 0),
    shipping_method   TEXT NOT NULL,
    shipping_address  JSONB NOT NULL,
    payment_provider  TEXT NOT NULL,
    -- The provider's reference of the payment; payment events name it.
    payment_reference TEXT NOT NULL,
    cancel_reason     TEXT,
    -- Unpaid orders give their reservation back at this time.
    reserved_until    TIMESTAMPTZ NOT NULL,
    confirmation_sent_at TIMESTAMPTZ,
    invoice_html      TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    paid_at           TIMESTAMPTZ,
    cancelled_at      TIMESTAMPTZ,
    UNIQUE (payment_provider, payment_reference)
);
CREATE INDEX orders_email_idx ON orders (email, created_at);
CREATE INDEX orders_created_at_idx ON orders (created_at, id);
CREATE INDEX orders_updated_at_idx ON orders (updated_at, id);
CREATE INDEX orders_status_idx ON orders (status, created_at);
CREATE INDEX orders_cart_idx ON orders (cart_id);

CREATE TABLE order_lines (
    id                BIGSERIAL PRIMARY KEY,
    order_id          BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position          INT NOT NULL,
    -- Kept when the variant is deleted later: the line's snapshot below stays.
    variant_id        BIGINT REFERENCES product_variants (id) ON DELETE SET NULL,
    product_title     TEXT NOT NULL,
    variant_title     TEXT NOT NULL,
    sku               TEXT,
    quantity          INT NOT NULL CHECK (quantity > 0),
    unit_price_minor  BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    total_minor       BIGINT NOT NULL CHECK (total_minor >= 0),
    taxable           BOOLEAN NOT NULL,
    requires_shipping BOOLEAN NOT NULL
);
CREATE INDEX order_lines_order_idx ON order_lines (order_id, position);
CREATE INDEX order_lines_variant_idx ON order_lines (variant_id);

-- Where an order's units are held: reserved while the order is unpaid, sold when it is
-- paid, released when it is cancelled. No foreign key to inventory_levels: the history
-- stays when a variant or location is deleted later (settling then touches no row).
CREATE TABLE order_allocations (
    order_id     BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    variant_id   BIGINT NOT NULL,
    location_id  BIGINT NOT NULL,
    quantity     INT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, variant_id, location_id)
);
CREATE INDEX order_allocations_level_idx ON order_allocations (variant_id, location_id);

-- Payment provider events, deduplicated by the provider's event id.
CREATE TABLE payment_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    reference    TEXT NOT NULL,
    payload      JSONB NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at TIMESTAMPTZ,
    outcome      TEXT,
    PRIMARY KEY (provider, event_id)
);

-- The durable job queue. A job is claimed with FOR UPDATE SKIP LOCKED, leased until
-- `locked_until`, deleted when it succeeds, retried with backoff when it fails, and kept
-- as 'dead' after its last attempt.
CREATE TABLE jobs (
    id            BIGSERIAL PRIMARY KEY,
    queue         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    payload       JSONB NOT NULL,
    state         TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'dead')),
    attempts      INT NOT NULL DEFAULT 0,
    max_attempts  INT NOT NULL CHECK (max_attempts > 0),
    run_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until  TIMESTAMPTZ,
    locked_by     TEXT,
    last_error    TEXT,
    progress      JSONB,
    -- W3C trace context of the request that enqueued the job.
    traceparent   TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX jobs_ready_idx ON jobs (queue, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (locked_until) WHERE state = 'running';
CREATE INDEX jobs_dead_idx ON jobs (updated_at) WHERE state = 'dead';

-- CSV imports run as jobs: the file is stored here so any worker can read it, and the
-- import's progress and report stay visible after its job is gone.
CREATE TABLE imports (
    id           BIGSERIAL PRIMARY KEY,
    filename     TEXT NOT NULL,
    content      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'QUEUED' CHECK (status IN ('QUEUED', 'RUNNING', 'DONE', 'FAILED')),
    rows_done    BIGINT NOT NULL DEFAULT 0,
    rows_total   BIGINT,
    report       JSONB,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
