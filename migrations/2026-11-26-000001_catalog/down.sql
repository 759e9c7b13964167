DROP TABLE pages, menu_items, menus, collection_products, collections, inventory_levels,
    locations, variant_prices, product_variants, product_images, product_options, products,
    categories;
