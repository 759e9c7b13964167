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
    -- Cheapest and dearest variant price in the shop currency, kept by the triggers
    -- below so PRICE sorting, price filters and price ranges need no join.
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
    -- TEXT, not CHAR(3): a bpchar column compared with a text parameter cannot use the
    -- primary key for the currency part.
    currency             TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
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

-- The shop's own currency: products.min_price_minor/max_price_minor are kept in it.
-- One row; the gateway writes SHOP_CURRENCY here at start.
CREATE TABLE shop_settings (
    singleton  BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    currency   TEXT NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$')
);
INSERT INTO shop_settings DEFAULT VALUES;

-- Keeps products.min_price_minor/max_price_minor equal to the cheapest and dearest
-- variant price in the shop currency, whichever code path writes prices or variants.
-- Statement-level triggers: a bulk insert of a thousand products recomputes once.
CREATE FUNCTION refresh_product_price_bounds(product_ids BIGINT[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE products p
    SET min_price_minor = COALESCE(b.lo, 0), max_price_minor = COALESCE(b.hi, 0)
    FROM (
        SELECT pp.id, min(vp.amount_minor) AS lo, max(vp.amount_minor) AS hi
        FROM products pp
        LEFT JOIN product_variants v ON v.product_id = pp.id
        LEFT JOIN variant_prices vp
               ON vp.variant_id = v.id AND vp.currency = (SELECT currency FROM shop_settings)
        WHERE pp.id = ANY (product_ids)
        GROUP BY pp.id
    ) b
    WHERE p.id = b.id
      AND (p.min_price_minor, p.max_price_minor) IS DISTINCT FROM (COALESCE(b.lo, 0), COALESCE(b.hi, 0));
$$;

CREATE FUNCTION variant_prices_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_product_price_bounds(ARRAY(
        SELECT DISTINCT v.product_id FROM changed_rows c JOIN product_variants v ON v.id = c.variant_id));
    RETURN NULL;
END $$;

CREATE FUNCTION product_variants_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_product_price_bounds(ARRAY(SELECT DISTINCT product_id FROM changed_rows));
    RETURN NULL;
END $$;

CREATE TRIGGER variant_prices_inserted AFTER INSERT ON variant_prices
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION variant_prices_changed();
CREATE TRIGGER variant_prices_updated AFTER UPDATE ON variant_prices
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION variant_prices_changed();
CREATE TRIGGER variant_prices_deleted AFTER DELETE ON variant_prices
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION variant_prices_changed();
-- A deleted variant's prices go with it (the rows above no longer find its product), and a
-- variant moved to another product changes both products' bounds.
CREATE TRIGGER product_variants_deleted AFTER DELETE ON product_variants
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION product_variants_changed();
CREATE TRIGGER product_variants_moved_from AFTER UPDATE ON product_variants
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION product_variants_changed();
CREATE TRIGGER product_variants_moved_to AFTER UPDATE ON product_variants
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION product_variants_changed();
