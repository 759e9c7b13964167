// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Int8,
        name -> Text,
        prefix -> Text,
        secret_hash -> Bytea,
        scopes -> Array<Text>,
        plan -> Text,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        created_by -> Nullable<Int8>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        api_key_id -> Nullable<Int8>,
        actor -> Text,
        action -> Text,
        resource_type -> Text,
        resource_id -> Nullable<Text>,
        changes -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    cache_epoch (id) {
        id -> Int4,
        epoch -> Int8,
    }
}

diesel::table! {
    cart_lines (id) {
        id -> Int8,
        cart_id -> Int8,
        variant_id -> Int8,
        quantity -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    carts (id) {
        id -> Int8,
        token -> Text,
        currency -> Text,
        country -> Nullable<Text>,
        note -> Nullable<Text>,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    categories (id) {
        id -> Int8,
        parent_id -> Nullable<Int8>,
        handle -> Text,
        name -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    collection_products (collection_id, product_id) {
        collection_id -> Int8,
        product_id -> Int8,
        position -> Int4,
    }
}

diesel::table! {
    collections (id) {
        id -> Int8,
        handle -> Text,
        title -> Text,
        description -> Text,
        description_html -> Text,
        seo_title -> Nullable<Text>,
        seo_description -> Nullable<Text>,
        image_url -> Nullable<Text>,
        image_alt -> Nullable<Text>,
        image_width -> Nullable<Int4>,
        image_height -> Nullable<Int4>,
        published -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    exports (id) {
        id -> Int8,
        status -> Text,
        query -> Nullable<Text>,
        rows_done -> Int8,
        content -> Nullable<Text>,
        error -> Nullable<Text>,
        api_key_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    imports (id) {
        id -> Int8,
        filename -> Text,
        content -> Text,
        status -> Text,
        rows_done -> Int8,
        rows_total -> Nullable<Int8>,
        report -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    inventory_levels (variant_id, location_id) {
        variant_id -> Int8,
        location_id -> Int8,
        on_hand -> Int4,
        reserved -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Int8,
        queue -> Text,
        kind -> Text,
        payload -> Jsonb,
        state -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        run_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
        locked_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        progress -> Nullable<Jsonb>,
        traceparent -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        trace_context -> Nullable<Jsonb>,
    }
}

diesel::table! {
    locations (id) {
        id -> Int8,
        name -> Text,
    }
}

diesel::table! {
    menu_items (id) {
        id -> Int8,
        menu_id -> Int8,
        parent_id -> Nullable<Int8>,
        position -> Int4,
        title -> Text,
        item_type -> Text,
        url -> Nullable<Text>,
        resource_id -> Nullable<Text>,
        tags -> Array<Text>,
    }
}

diesel::table! {
    menus (id) {
        id -> Int8,
        handle -> Text,
        title -> Text,
    }
}

diesel::table! {
    order_allocations (order_id, variant_id, location_id) {
        order_id -> Int8,
        variant_id -> Int8,
        location_id -> Int8,
        quantity -> Int4,
    }
}

diesel::table! {
    order_lines (id) {
        id -> Int8,
        order_id -> Int8,
        position -> Int4,
        variant_id -> Nullable<Int8>,
        product_title -> Text,
        variant_title -> Text,
        sku -> Nullable<Text>,
        quantity -> Int4,
        unit_price_minor -> Int8,
        total_minor -> Int8,
        taxable -> Bool,
        requires_shipping -> Bool,
    }
}

diesel::table! {
    orders (id) {
        id -> Int8,
        number -> Int8,
        access_token -> Text,
        idempotency_key -> Text,
        cart_id -> Nullable<Int8>,
        status -> Text,
        email -> Text,
        currency -> Text,
        subtotal_minor -> Int8,
        shipping_minor -> Int8,
        tax_minor -> Int8,
        total_minor -> Int8,
        shipping_method -> Text,
        shipping_address -> Jsonb,
        payment_provider -> Text,
        payment_reference -> Text,
        cancel_reason -> Nullable<Text>,
        reserved_until -> Timestamptz,
        confirmation_sent_at -> Nullable<Timestamptz>,
        invoice_html -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        paid_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        fulfilled_at -> Nullable<Timestamptz>,
        tracking_number -> Nullable<Text>,
        tracking_url -> Nullable<Text>,
        refunded_minor -> Int8,
        refunded_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    pages (id) {
        id -> Int8,
        handle -> Text,
        title -> Text,
        body -> Text,
        body_summary -> Text,
        seo_title -> Nullable<Text>,
        seo_description -> Nullable<Text>,
        published -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    payment_events (provider, event_id) {
        provider -> Text,
        event_id -> Text,
        event_type -> Text,
        reference -> Text,
        payload -> Jsonb,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    persisted_queries (hash) {
        hash -> Text,
        document -> Text,
        name -> Nullable<Text>,
        registered_at -> Timestamptz,
    }
}

diesel::table! {
    product_images (id) {
        id -> Int8,
        product_id -> Int8,
        url -> Text,
        alt_text -> Nullable<Text>,
        width -> Nullable<Int4>,
        height -> Nullable<Int4>,
        position -> Int4,
    }
}

diesel::table! {
    product_options (id) {
        id -> Int8,
        product_id -> Int8,
        name -> Text,
        position -> Int4,
        values -> Array<Text>,
    }
}

diesel::table! {
    product_variants (id) {
        id -> Int8,
        product_id -> Int8,
        title -> Text,
        sku -> Nullable<Text>,
        barcode -> Nullable<Text>,
        position -> Int4,
        option1 -> Nullable<Text>,
        option2 -> Nullable<Text>,
        option3 -> Nullable<Text>,
        grams -> Int4,
        weight_unit -> Text,
        requires_shipping -> Bool,
        taxable -> Bool,
        inventory_policy -> Text,
        image_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        available -> Int8,
    }
}

diesel::table! {
    products (id) {
        id -> Int8,
        handle -> Text,
        title -> Text,
        description -> Text,
        description_html -> Text,
        vendor -> Text,
        product_type -> Text,
        tags -> Array<Text>,
        status -> Text,
        published_at -> Nullable<Timestamptz>,
        seo_title -> Nullable<Text>,
        seo_description -> Nullable<Text>,
        category_id -> Nullable<Int8>,
        total_sales -> Int8,
        min_price_minor -> Int8,
        max_price_minor -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    shop_settings (singleton) {
        singleton -> Bool,
        currency -> Text,
    }
}

diesel::table! {
    variant_prices (variant_id, currency) {
        variant_id -> Int8,
        currency -> Text,
        amount_minor -> Int8,
        compare_at_minor -> Nullable<Int8>,
    }
}

diesel::table! {
    webhook_subscriptions (id) {
        id -> Int8,
        topic -> Text,
        url -> Text,
        secret -> Text,
        api_key_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(audit_log -> api_keys (api_key_id));
diesel::joinable!(cart_lines -> carts (cart_id));
diesel::joinable!(cart_lines -> product_variants (variant_id));
diesel::joinable!(collection_products -> collections (collection_id));
diesel::joinable!(collection_products -> products (product_id));
diesel::joinable!(exports -> api_keys (api_key_id));
diesel::joinable!(inventory_levels -> locations (location_id));
diesel::joinable!(inventory_levels -> product_variants (variant_id));
diesel::joinable!(menu_items -> menus (menu_id));
diesel::joinable!(order_allocations -> orders (order_id));
diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(order_lines -> product_variants (variant_id));
diesel::joinable!(orders -> carts (cart_id));
diesel::joinable!(product_images -> products (product_id));
diesel::joinable!(product_options -> products (product_id));
diesel::joinable!(product_variants -> product_images (image_id));
diesel::joinable!(product_variants -> products (product_id));
diesel::joinable!(products -> categories (category_id));
diesel::joinable!(variant_prices -> product_variants (variant_id));
diesel::joinable!(webhook_subscriptions -> api_keys (api_key_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    audit_log,
    cache_epoch,
    cart_lines,
    carts,
    categories,
    collection_products,
    collections,
    exports,
    imports,
    inventory_levels,
    jobs,
    locations,
    menu_items,
    menus,
    order_allocations,
    order_lines,
    orders,
    pages,
    payment_events,
    persisted_queries,
    product_images,
    product_options,
    product_variants,
    products,
    shop_settings,
    variant_prices,
    webhook_subscriptions,
);
