-- The catalog: products and everything a storefront shows about them.
-- Money is stored as integer minor units (cents) next to an ISO 4217 code.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE categories (
    id          BIGSERIAL PRIMARY KEY,
    parent_id   BIGINT REFERENCES categories (id) ON DELETE SET NULL,
    handle      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX categories_parent_id_idx ON categories (parent_id);

CREATE TABLE products (
    id                BIGSERIAL PRIMARY KEY,
    handle            TEXT NOT NULL UNIQUE,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    description_html  TEXT NOT NULL DEFAULT '',
    vendor            TEXT NOT NULL DEFAULT '',
    product_type      TEXT NOT NULL DEFAULT '',
    tags              TEXT[] NOT NULL DEFAULT '{}',
    status            TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DRAFT', 'ARCHIVED')),
    -- NULL means "not published to the storefront".
    published_at      TIMESTAMPTZ,
    seo_title         TEXT,
    seo_description   TEXT,
    category_id       BIGINT REFERENCES categories (id) ON DELETE SET NULL,
    -- Units sold, for the BEST_SELLING sort key.
    total_sales       BIGINT NOT NULL DEFAULT 0,
    -- Cheapest and dearest variant price in the shop currency, kept by the
    -- catalog writer so PRICE sorting and price filters need no join.
    min_price_minor   BIGINT NOT NULL DEFAULT 0,
    max_price_minor   BIGINT NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Keyset pagination: every sort key is paired with id to make it total.
CREATE INDEX products_title_idx ON products (title, id);
CREATE INDEX products_created_at_idx ON products (created_at, id);
CREATE INDEX products_updated_at_idx ON products (updated_at, id);
CREATE INDEX products_best_selling_idx ON products (total_sales, id);
CREATE INDEX products_price_idx ON products (min_price_minor, id);
CREATE INDEX products_category_idx ON products (category_id);
CREATE INDEX products_vendor_idx ON products (lower(vendor));
CREATE INDEX products_product_type_idx ON products (lower(product_type));
CREATE INDEX products_tags_idx ON products USING gin (tags);
CREATE INDEX products_title_trgm_idx ON products USING gin (title gin_trgm_ops);

CREATE TABLE product_options (
    id          BIGSERIAL PRIMARY KEY,
    product_id  BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    position    INT NOT NULL,
    "values"    TEXT[] NOT NULL DEFAULT '{}',
    UNIQUE (product_id, position)
);

CREATE TABLE product_images (
    id          BIGSERIAL PRIMARY KEY,
    product_id  BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    alt_text    TEXT,
    width       INT,
    height      INT,
    position    INT NOT NULL DEFAULT 1
);
CREATE INDEX product_images_product_idx ON product_images (product_id, position, id);
CREATE UNIQUE INDEX product_images_product_url_idx ON product_images (product_id, url);

CREATE TABLE product_variants (
    id                 BIGSERIAL PRIMARY KEY,
    product_id         BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    title              TEXT NOT NULL,
    sku                TEXT UNIQUE,
    barcode            TEXT,
    position           INT NOT NULL DEFAULT 1,
    option1            TEXT,
    option2            TEXT,
    option3            TEXT,
    grams              INT NOT NULL DEFAULT 0,
    weight_unit        TEXT NOT NULL DEFAULT 'KILOGRAMS' CHECK (weight_unit IN ('GRAMS', 'KILOGRAMS', 'OUNCES', 'POUNDS')),
    requires_shipping  BOOLEAN NOT NULL DEFAULT true,
    taxable            BOOLEAN NOT NULL DEFAULT true,
    inventory_policy   TEXT NOT NULL DEFAULT 'DENY' CHECK (inventory_policy IN ('DENY', 'CONTINUE')),
    image_id           BIGINT REFERENCES product_images (id) ON DELETE SET NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX product_variants_product_idx ON product_variants (product_id, position, id);

CREATE TABLE variant_prices (
    variant_id           BIGINT NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    currency             CHAR(3) NOT NULL,
    amount_minor         BIGINT NOT NULL CHECK (amount_minor >= 0),
    compare_at_minor     BIGINT CHECK (compare_at_minor >= 0),
    PRIMARY KEY (variant_id, currency)
);

CREATE TABLE locations (
    id    BIGSERIAL PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);

CREATE TABLE inventory_levels (
    variant_id   BIGINT NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    location_id  BIGINT NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    on_hand      INT NOT NULL DEFAULT 0,
    reserved     INT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (variant_id, location_id)
);

CREATE TABLE collections (
    id                BIGSERIAL PRIMARY KEY,
    handle            TEXT NOT NULL UNIQUE,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    description_html  TEXT NOT NULL DEFAULT '',
    seo_title         TEXT,
    seo_description   TEXT,
    image_url         TEXT,
    image_alt         TEXT,
    image_width       INT,
    image_height      INT,
    published         BOOLEAN NOT NULL DEFAULT true,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX collections_title_idx ON collections (title, id);
CREATE INDEX collections_updated_at_idx ON collections (updated_at, id);

CREATE TABLE collection_products (
    collection_id  BIGINT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    product_id     BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    -- Manual order chosen by the merchant (the MANUAL sort key).
    position       INT NOT NULL,
    PRIMARY KEY (collection_id, product_id)
);
CREATE INDEX collection_products_position_idx ON collection_products (collection_id, position, product_id);
CREATE INDEX collection_products_product_idx ON collection_products (product_id);

CREATE TABLE menus (
    id      BIGSERIAL PRIMARY KEY,
    handle  TEXT NOT NULL UNIQUE,
    title   TEXT NOT NULL
);

CREATE TABLE menu_items (
    id           BIGSERIAL PRIMARY KEY,
    menu_id      BIGINT NOT NULL REFERENCES menus (id) ON DELETE CASCADE,
    parent_id    BIGINT REFERENCES menu_items (id) ON DELETE CASCADE,
    position     INT NOT NULL,
    title        TEXT NOT NULL,
    item_type    TEXT NOT NULL DEFAULT 'HTTP',
    url          TEXT,
    resource_id  TEXT,
    tags         TEXT[] NOT NULL DEFAULT '{}'
);
CREATE INDEX menu_items_menu_idx ON menu_items (menu_id, position, id);

CREATE TABLE pages (
    id               BIGSERIAL PRIMARY KEY,
    handle           TEXT NOT NULL UNIQUE,
    title            TEXT NOT NULL,
    body             TEXT NOT NULL DEFAULT '',
    body_summary     TEXT NOT NULL DEFAULT '',
    seo_title        TEXT,
    seo_description  TEXT,
    published        BOOLEAN NOT NULL DEFAULT true,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX pages_updated_at_idx ON pages (updated_at, id);
CREATE INDEX pages_title_idx ON pages (title, id);
