-- Each variant's stock available to sell (sum over locations of on hand − reserved), kept
-- in the variant row so that storefront reads (`availableForSale`, `quantityAvailable`)
-- cost no aggregate per variant. Triggers apply the change of every write to
-- inventory_levels as a delta (statement-level for bulk inserts and deletes, row-level for
-- updates): `available = available + d` re-reads the row under its lock, so concurrent
-- reservations of the same variant never lose an update.
ALTER TABLE product_variants ADD COLUMN available BIGINT NOT NULL DEFAULT 0;

UPDATE product_variants v SET available = s.available
FROM (SELECT variant_id, sum(on_hand - reserved) AS available
      FROM inventory_levels GROUP BY variant_id) s
WHERE v.id = s.variant_id;

CREATE FUNCTION apply_variant_stock_delta(deltas BIGINT[], variant_ids BIGINT[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE product_variants v SET available = v.available + d.delta
    FROM unnest(variant_ids, deltas) AS d (variant_id, delta)
    WHERE v.id = d.variant_id AND d.delta <> 0;
$$;

CREATE FUNCTION inventory_levels_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM apply_variant_stock_delta(array_agg(delta), array_agg(variant_id))
    FROM (SELECT variant_id, sum(on_hand - reserved)::int8 AS delta
          FROM new_rows GROUP BY variant_id) s;
    RETURN NULL;
END $$;

CREATE FUNCTION inventory_levels_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM apply_variant_stock_delta(array_agg(delta), array_agg(variant_id))
    FROM (SELECT variant_id, -sum(on_hand - reserved)::int8 AS delta
          FROM old_rows GROUP BY variant_id) s;
    RETURN NULL;
END $$;

-- Updates are row-level: a checkout changes a few rows, and a row trigger with a WHEN
-- clause costs far less than transition tables (measured with bench/checkout.sh).
CREATE FUNCTION inventory_level_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.variant_id = NEW.variant_id THEN
        UPDATE product_variants
        SET available = available + ((NEW.on_hand - NEW.reserved) - (OLD.on_hand - OLD.reserved))
        WHERE id = NEW.variant_id;
    ELSE
        UPDATE product_variants SET available = available - (OLD.on_hand - OLD.reserved) WHERE id = OLD.variant_id;
        UPDATE product_variants SET available = available + (NEW.on_hand - NEW.reserved) WHERE id = NEW.variant_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER inventory_levels_inserted AFTER INSERT ON inventory_levels
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_levels_inserted();
CREATE TRIGGER inventory_levels_deleted AFTER DELETE ON inventory_levels
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_levels_deleted();
CREATE TRIGGER inventory_level_updated AFTER UPDATE ON inventory_levels
    FOR EACH ROW
    WHEN (OLD.variant_id <> NEW.variant_id OR OLD.on_hand - OLD.reserved <> NEW.on_hand - NEW.reserved)
    EXECUTE FUNCTION inventory_level_updated();

-- The price bounds depend on a variant's product only: recompute them when a variant moves
-- to another product, not on every variant update (stock changes update variants often).
-- Row-level with a WHEN clause, so other updates pay nothing.
DROP TRIGGER product_variants_moved_from ON product_variants;
DROP TRIGGER product_variants_moved_to ON product_variants;

CREATE FUNCTION product_variant_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_product_price_bounds(ARRAY[OLD.product_id, NEW.product_id]);
    RETURN NULL;
END $$;

CREATE TRIGGER product_variant_moved AFTER UPDATE OF product_id ON product_variants
    FOR EACH ROW WHEN (OLD.product_id IS DISTINCT FROM NEW.product_id)
    EXECUTE FUNCTION product_variant_moved();
