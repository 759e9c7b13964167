-- The database ceiling for bench/checkout.sh: the statements the gateway sends for one
-- buyer's cartCreate → cartLinesAdd → cartComplete (captured with RUST_LOG=sql=trace),
-- in the same three transactions plus the checkout's unlocked pre-check, against the same
-- data. :v1 and :v2 come from bench_pairs, which bench/checkout.sh fills with the same variant pairs the load
-- generator uses. Run with pgbench -M prepared (the gateway prepares its statements).
\set n random(1, :pairs)
SELECT v1, v2 FROM bench_pairs WHERE n = :n \gset

-- cartCreate
SELECT pv.id FROM product_variants pv JOIN products p ON pv.product_id = p.id JOIN variant_prices vp ON vp.variant_id = pv.id
  WHERE pv.id = ANY(ARRAY[:v1]::int8[]) AND p.status = 'ACTIVE' AND p.published_at <= CURRENT_TIMESTAMP AND vp.currency = 'USD';
BEGIN;
INSERT INTO carts (token, currency, country, note) VALUES (md5(random()::text), 'USD', NULL, NULL)
  RETURNING id AS cart_id, token, currency, country, note, completed_at, created_at, updated_at \gset
INSERT INTO cart_lines (cart_id, variant_id, quantity) VALUES (:cart_id, :v1, 1)
  ON CONFLICT (cart_id, variant_id) DO UPDATE SET quantity = cart_lines.quantity + excluded.quantity, updated_at = CURRENT_TIMESTAMP;
UPDATE carts SET updated_at = CURRENT_TIMESTAMP WHERE id = :cart_id RETURNING id, token, currency, country, note, completed_at, created_at, updated_at;
SELECT id, cart_id, variant_id, quantity, created_at, updated_at FROM cart_lines WHERE cart_id = :cart_id ORDER BY created_at, id;
SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, v.grams, v.weight_unit,
       v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, v.created_at, v.updated_at,
       COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, 'USD'::text AS currency, pc.amount_minor IS NOT NULL AS priced,
       v.available AS quantity_available,
       ARRAY(SELECT o.name FROM product_options o WHERE o.product_id = v.product_id ORDER BY o.position) AS option_names
  FROM product_variants v LEFT JOIN variant_prices pc ON pc.variant_id = v.id AND pc.currency = 'USD' WHERE v.id = ANY(ARRAY[:v1]::int8[]);
COMMIT;

-- cartLinesAdd
SELECT pv.id FROM product_variants pv JOIN products p ON pv.product_id = p.id JOIN variant_prices vp ON vp.variant_id = pv.id
  WHERE pv.id = ANY(ARRAY[:v2]::int8[]) AND p.status = 'ACTIVE' AND p.published_at <= CURRENT_TIMESTAMP AND vp.currency = 'USD';
BEGIN;
SELECT id, token, currency, country, note, completed_at, created_at, updated_at FROM carts WHERE id = :cart_id LIMIT 1 FOR UPDATE;
SELECT variant_id, quantity FROM cart_lines WHERE cart_id = :cart_id;
INSERT INTO cart_lines (cart_id, variant_id, quantity) VALUES (:cart_id, :v2, 1)
  ON CONFLICT (cart_id, variant_id) DO UPDATE SET quantity = cart_lines.quantity + excluded.quantity, updated_at = CURRENT_TIMESTAMP;
UPDATE carts SET updated_at = CURRENT_TIMESTAMP WHERE id = :cart_id RETURNING id, token, currency, country, note, completed_at, created_at, updated_at;
SELECT id, cart_id, variant_id, quantity, created_at, updated_at FROM cart_lines WHERE cart_id = :cart_id ORDER BY created_at, id;
SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, v.grams, v.weight_unit,
       v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, v.created_at, v.updated_at,
       COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, 'USD'::text AS currency, pc.amount_minor IS NOT NULL AS priced,
       v.available AS quantity_available,
       ARRAY(SELECT o.name FROM product_options o WHERE o.product_id = v.product_id ORDER BY o.position) AS option_names
  FROM product_variants v LEFT JOIN variant_prices pc ON pc.variant_id = v.id AND pc.currency = 'USD' WHERE v.id = ANY(ARRAY[:v1, :v2]::int8[]);
COMMIT;

-- cartComplete: the pre-check before the payment authorization (no locks)
SELECT id, token, currency, country, note, completed_at, created_at, updated_at FROM carts WHERE id = :cart_id LIMIT 1;
SELECT id, cart_id, variant_id, quantity, created_at, updated_at FROM cart_lines WHERE cart_id = :cart_id ORDER BY created_at, id;
SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, v.grams, v.weight_unit,
       v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, v.created_at, v.updated_at,
       COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, 'USD'::text AS currency, pc.amount_minor IS NOT NULL AS priced,
       v.available AS quantity_available,
       ARRAY(SELECT o.name FROM product_options o WHERE o.product_id = v.product_id ORDER BY o.position) AS option_names
  FROM product_variants v LEFT JOIN variant_prices pc ON pc.variant_id = v.id AND pc.currency = 'USD' WHERE v.id = ANY(ARRAY[:v1, :v2]::int8[]);
SELECT id, number, access_token, status FROM orders WHERE idempotency_key = 'pgbench-' || :cart_id LIMIT 1;
-- cartComplete: the transaction
BEGIN;
SELECT id, token, currency, country, note, completed_at, created_at, updated_at FROM carts WHERE id = :cart_id LIMIT 1 FOR UPDATE;
SELECT id, number, access_token, status FROM orders WHERE idempotency_key = 'pgbench-' || :cart_id LIMIT 1;
SELECT id, cart_id, variant_id, quantity, created_at, updated_at FROM cart_lines WHERE cart_id = :cart_id ORDER BY created_at, id;
SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, v.grams, v.weight_unit,
       v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, v.created_at, v.updated_at,
       COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, 'USD'::text AS currency, pc.amount_minor IS NOT NULL AS priced,
       v.available AS quantity_available,
       ARRAY(SELECT o.name FROM product_options o WHERE o.product_id = v.product_id ORDER BY o.position) AS option_names
  FROM product_variants v LEFT JOIN variant_prices pc ON pc.variant_id = v.id AND pc.currency = 'USD' WHERE v.id = ANY(ARRAY[:v1, :v2]::int8[]);
SELECT id, title FROM products WHERE id IN (SELECT product_id FROM product_variants WHERE id IN (:v1, :v2));
SELECT pv.id FROM product_variants pv JOIN products p ON pv.product_id = p.id JOIN variant_prices vp ON vp.variant_id = pv.id
  WHERE pv.id = ANY(ARRAY[:v1, :v2]::int8[]) AND p.status = 'ACTIVE' AND p.published_at <= CURRENT_TIMESTAMP AND vp.currency = 'USD';
INSERT INTO orders (access_token, idempotency_key, cart_id, email, currency, subtotal_minor, shipping_minor, tax_minor, total_minor,
                    shipping_method, shipping_address, payment_provider, payment_reference, reserved_until)
  VALUES (md5(random()::text) || 'abcdefgh', 'pgbench-' || :cart_id, :cart_id, 'bench@example.com', 'USD', 2000, 500, 0, 2500, 'standard',
          '{"lastName": "Bench", "address1": "1 Load St", "city": "Berlin", "zip": "10115", "countryCode": "DE"}', 'test',
          'pay_pgbench_' || :cart_id, now() + interval '15 minutes')
  RETURNING id AS order_id \gset
INSERT INTO order_lines (order_id, position, variant_id, product_title, variant_title, sku, quantity, unit_price_minor, total_minor, taxable, requires_shipping)
  VALUES (:order_id, 1, :v1, 'Product', 'Variant', NULL, 1, 1000, 1000, true, true),
         (:order_id, 2, :v2, 'Product', 'Variant', NULL, 1, 1000, 1000, true, true);
SELECT variant_id, location_id, on_hand, reserved FROM inventory_levels WHERE variant_id = ANY(ARRAY[:v1, :v2]::int8[])
  ORDER BY variant_id, location_id FOR UPDATE;
UPDATE inventory_levels il SET reserved = il.reserved + 1, updated_at = now()
  WHERE (il.variant_id, il.location_id) IN (SELECT DISTINCT ON (variant_id) variant_id, location_id FROM inventory_levels
                                            WHERE variant_id IN (:v1, :v2) ORDER BY variant_id, location_id)
    AND il.on_hand - il.reserved >= 1;
INSERT INTO order_allocations (order_id, variant_id, location_id, quantity)
  SELECT :order_id, variant_id, location_id, 1 FROM (SELECT DISTINCT ON (variant_id) variant_id, location_id FROM inventory_levels
                                                     WHERE variant_id IN (:v1, :v2) ORDER BY variant_id, location_id) f;
UPDATE carts SET completed_at = CURRENT_TIMESTAMP, updated_at = CURRENT_TIMESTAMP WHERE id = :cart_id;
INSERT INTO jobs (queue, kind, payload, run_at, max_attempts) VALUES ('email', 'order_confirmation', jsonb_build_object('order_id', (:order_id)::int8), now(), 10) RETURNING id;
INSERT INTO jobs (queue, kind, payload, run_at, max_attempts) VALUES ('orders', 'expire_reservation', jsonb_build_object('order_id', (:order_id)::int8), now() + interval '15 minutes', 10) RETURNING id;
COMMIT;
SELECT id, order_id, position, variant_id, product_title, variant_title, sku, quantity, unit_price_minor, total_minor, taxable, requires_shipping
  FROM order_lines WHERE order_id = :order_id ORDER BY position;
