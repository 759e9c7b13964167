DROP TRIGGER product_variant_moved ON product_variants;
DROP FUNCTION product_variant_moved();
CREATE TRIGGER product_variants_moved_from AFTER UPDATE ON product_variants
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION product_variants_changed();
CREATE TRIGGER product_variants_moved_to AFTER UPDATE ON product_variants
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION product_variants_changed();

DROP TRIGGER inventory_levels_inserted ON inventory_levels;
DROP TRIGGER inventory_levels_deleted ON inventory_levels;
DROP TRIGGER inventory_level_updated ON inventory_levels;
DROP FUNCTION inventory_levels_inserted(), inventory_levels_deleted(), inventory_level_updated(),
    apply_variant_stock_delta(BIGINT[], BIGINT[]);
ALTER TABLE product_variants DROP COLUMN available;
