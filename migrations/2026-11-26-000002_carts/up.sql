-- Carts are personal: read and written on the primary only.
CREATE TABLE carts (
    id            BIGSERIAL PRIMARY KEY,
    -- The unguessable part of the cart's global ID.
    token         TEXT NOT NULL UNIQUE,
    currency      TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    country       TEXT CHECK (country ~ '^[A-Z]{2}$'),
    note          TEXT,
    completed_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX carts_updated_at_idx ON carts (updated_at);

CREATE TABLE cart_lines (
    id          BIGSERIAL PRIMARY KEY,
    cart_id     BIGINT NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    variant_id  BIGINT NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    quantity    INT NOT NULL CHECK (quantity > 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (cart_id, variant_id)
);
CREATE INDEX cart_lines_variant_idx ON cart_lines (variant_id);
