DROP TABLE pages, menu_items, menus, collection_products, collections, inventory_levels,
    locations, variant_prices, product_variants, product_images, product_options, products,
    categories, shop_settings;
DROP FUNCTION variant_prices_changed(), product_variants_changed(), refresh_product_price_bounds(BIGINT[]);
