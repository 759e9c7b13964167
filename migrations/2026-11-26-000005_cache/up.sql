-- Cache invalidation at the source. Every change to something the storefront shows
-- notifies the gateways (channel `cache_invalidation`, payload: space-separated tags),
-- whatever made it: the API, a CSV import from the CLI, a job, or SQL by hand. NOTIFY is
-- transactional: gateways hear of a change only once it is committed, and never of one
-- that was rolled back. Tags:
--   product:ID    the product, its options, images, variants and prices
--   stock:ID      the availability of the product's variants
--   collection:ID the collection and its products' membership and order
--   products, collections, pages   listings and handle lookups of that kind
--   sales         best-selling order (total_sales), categories, menus
--   page:ID
-- A payload too long for NOTIFY becomes '*' (drop everything).

CREATE FUNCTION cache_notify(tags TEXT[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT := array_to_string(tags, ' ');
BEGIN
    IF length(payload) > 7900 THEN
        payload := '*';
    END IF;
    PERFORM pg_notify('cache_invalidation', payload);
END $$;

CREATE FUNCTION cache_product_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF to_jsonb(OLD) - 'total_sales' = to_jsonb(NEW) - 'total_sales' THEN
            IF OLD.total_sales <> NEW.total_sales THEN
                PERFORM cache_notify(ARRAY['sales']);
            END IF;
            RETURN NULL;
        END IF;
        PERFORM cache_notify(ARRAY['product:' || NEW.id, 'products', 'sales']);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM cache_notify(ARRAY['product:' || NEW.id, 'products']);
    ELSE
        PERFORM cache_notify(ARRAY['product:' || OLD.id, 'products']);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER cache_products AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION cache_product_changed();

-- Options and images belong to one product (and may move between products).
CREATE FUNCTION cache_product_part_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM cache_notify(ARRAY['product:' || OLD.product_id]);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND (TG_OP = 'INSERT' OR NEW.product_id <> OLD.product_id) THEN
        PERFORM cache_notify(ARRAY['product:' || NEW.product_id]);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER cache_product_options AFTER INSERT OR UPDATE OR DELETE ON product_options
    FOR EACH ROW EXECUTE FUNCTION cache_product_part_changed();
CREATE TRIGGER cache_product_images AFTER INSERT OR UPDATE OR DELETE ON product_images
    FOR EACH ROW EXECUTE FUNCTION cache_product_part_changed();

-- A change of `available` alone (reservations, sales, restocks) touches only the
-- product's stock tag, so pages that do not show availability stay cached during a sale.
CREATE FUNCTION cache_variant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF to_jsonb(OLD) - 'available' = to_jsonb(NEW) - 'available' THEN
            IF OLD.available <> NEW.available THEN
                PERFORM cache_notify(ARRAY['stock:' || NEW.product_id]);
            END IF;
            RETURN NULL;
        END IF;
        PERFORM cache_notify(ARRAY['product:' || OLD.product_id, 'stock:' || OLD.product_id,
                                   'product:' || NEW.product_id, 'stock:' || NEW.product_id, 'products']);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM cache_notify(ARRAY['product:' || NEW.product_id, 'stock:' || NEW.product_id, 'products']);
    ELSE
        PERFORM cache_notify(ARRAY['product:' || OLD.product_id, 'stock:' || OLD.product_id, 'products']);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER cache_product_variants AFTER INSERT OR UPDATE OR DELETE ON product_variants
    FOR EACH ROW EXECUTE FUNCTION cache_variant_changed();

CREATE FUNCTION cache_price_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
        RETURN NULL;
    END IF;
    PERFORM cache_notify(array_agg('product:' || product_id) || ARRAY['products'])
    FROM product_variants
    WHERE id IN (CASE WHEN TG_OP = 'DELETE' THEN OLD.variant_id ELSE NEW.variant_id END,
                 CASE WHEN TG_OP = 'INSERT' THEN NEW.variant_id ELSE OLD.variant_id END);
    RETURN NULL;
END $$;
CREATE TRIGGER cache_variant_prices AFTER INSERT OR UPDATE OR DELETE ON variant_prices
    FOR EACH ROW EXECUTE FUNCTION cache_price_changed();

CREATE FUNCTION cache_collection_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
        RETURN NULL;
    END IF;
    PERFORM cache_notify(ARRAY['collection:' || CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
                               'collections']);
    RETURN NULL;
END $$;
CREATE TRIGGER cache_collections AFTER INSERT OR UPDATE OR DELETE ON collections
    FOR EACH ROW EXECUTE FUNCTION cache_collection_changed();

CREATE FUNCTION cache_membership_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM cache_notify(ARRAY['collection:' || OLD.collection_id, 'product:' || OLD.product_id]);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM cache_notify(ARRAY['collection:' || NEW.collection_id, 'product:' || NEW.product_id]);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER cache_collection_products AFTER INSERT OR UPDATE OR DELETE ON collection_products
    FOR EACH ROW EXECUTE FUNCTION cache_membership_changed();

CREATE FUNCTION cache_page_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
        RETURN NULL;
    END IF;
    PERFORM cache_notify(ARRAY['page:' || CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END, 'pages']);
    RETURN NULL;
END $$;
CREATE TRIGGER cache_pages AFTER INSERT OR UPDATE OR DELETE ON pages
    FOR EACH ROW EXECUTE FUNCTION cache_page_changed();

-- Small tables read whole: one tag each, one notification per statement.
CREATE FUNCTION cache_table_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cache_notify(ARRAY[TG_ARGV[0]]);
    RETURN NULL;
END $$;
CREATE TRIGGER cache_categories AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON categories
    FOR EACH STATEMENT EXECUTE FUNCTION cache_table_changed('categories');
CREATE TRIGGER cache_menus AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON menus
    FOR EACH STATEMENT EXECUTE FUNCTION cache_table_changed('menus');
CREATE TRIGGER cache_menu_items AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON menu_items
    FOR EACH STATEMENT EXECUTE FUNCTION cache_table_changed('menus');
-- Truncating a row-level table drops everything.
CREATE TRIGGER cache_products_truncated AFTER TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION cache_table_changed('*');
CREATE TRIGGER cache_collections_truncated AFTER TRUNCATE ON collections
    FOR EACH STATEMENT EXECUTE FUNCTION cache_table_changed('*');

-- Operations registered for the persisted-query allow-list (a manifest or
-- `commerce-gateway persisted-queries register`). Automatic persisted queries live in Redis.
CREATE TABLE persisted_queries (
    hash          TEXT PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
    document      TEXT NOT NULL,
    name          TEXT,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The namespace of the shared (Redis) tier. A gateway that could not write an
-- invalidation to Redis moves every gateway to a new namespace (`cache_bump_epoch()`), so
-- an entry that missed its invalidation is never read again, by any gateway, including
-- ones started later.
CREATE TABLE cache_epoch (
    id    INT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO cache_epoch (epoch) VALUES (1);

CREATE FUNCTION cache_bump_epoch() RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    new_epoch BIGINT;
BEGIN
    UPDATE cache_epoch SET epoch = epoch + 1 RETURNING epoch INTO new_epoch;
    PERFORM pg_notify('cache_invalidation', 'epoch:' || new_epoch);
    RETURN new_epoch;
END $$;
