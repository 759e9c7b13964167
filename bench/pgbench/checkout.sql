-- The database ceiling for bench/checkout.sh: the statements the gateway sends for one
-- buyer's cartCreate → cartLinesAdd → cartComplete (captured with RUST_LOG=sql=trace), in
-- the same order and transactions, against the same data. :v1 and :v2 come from
-- bench_pairs, which bench/checkout.sh fills with the same variant pairs the load
-- generator uses. Run with pgbench -M prepared (the gateway prepares its statements).
-- Where the gateway binds arrays computed in Rust (allocations), the same values come
-- from a subquery here. \aset keeps the last row of statements that return one per line.
\set n random(1, :pairs)
SELECT v1, v2 FROM bench_pairs WHERE n = :n \gset

-- cartCreate: the variants, then the cart with its line (one statement, no BEGIN)
SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, v.grams,
  v.weight_unit, v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, v.created_at, v.updated_at,
  COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, 'USD'::text AS currency, pc.amount_minor
  IS NOT NULL AS priced, v.available AS quantity_available, ARRAY(SELECT o.name FROM product_options o WHERE
  o.product_id = v.product_id ORDER BY o.position) AS option_names, p.title AS product_title,
  COALESCE(p.status = 'ACTIVE' AND p.published_at IS NOT NULL AND p.published_at <= now() AND pc.amount_minor
  IS NOT NULL, false) AS sellable FROM product_variants v JOIN products p ON p.id = v.product_id LEFT JOIN
  variant_prices pc ON pc.variant_id = v.id AND pc.currency = 'USD' WHERE v.id = ANY(ARRAY[:v1]::int8[]);
WITH c AS (INSERT INTO carts (token, currency, country, note) VALUES (md5(random()::text), 'USD', NULL, NULL)
  RETURNING id, token, currency, country, note, completed_at, created_at, updated_at, xmin::text AS version),
  l AS (INSERT INTO cart_lines (cart_id, variant_id, quantity) SELECT c.id, t.v, t.q FROM c,
  unnest(ARRAY[:v1]::int8[], ARRAY[1]::int4[]) WITH ORDINALITY AS t (v, q, n) ORDER BY t.n RETURNING id,
  variant_id, quantity, created_at, updated_at) SELECT c.id AS cart_id, c.token AS cart_token, c.currency,
  c.country, c.note, c.completed_at, c.created_at, c.updated_at, c.version, l.id AS line_id, l.variant_id AS
  line_variant_id, l.quantity AS line_quantity, l.created_at AS line_created_at, l.updated_at AS
  line_updated_at, NULL::int8 AS key_order_id FROM c LEFT JOIN l ON true \aset

-- cartLinesAdd: the cart with its lines, the variants, the conditional write
SELECT c.id AS cart_id, c.token AS cart_token, c.currency, c.country, c.note, c.completed_at, c.created_at,
  c.updated_at, c.version, l.id AS line_id, l.variant_id AS line_variant_id, l.quantity AS line_quantity,
  l.created_at AS line_created_at, l.updated_at AS line_updated_at, (SELECT o.id FROM orders o WHERE
  o.idempotency_key = NULLIF(:cart_token, :cart_token)) AS key_order_id FROM (SELECT carts.*, carts.xmin::text AS version FROM carts WHERE
  token = :cart_token) c LEFT JOIN cart_lines l ON l.cart_id = c.id \aset
SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, v.grams,
  v.weight_unit, v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, v.created_at, v.updated_at,
  COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, 'USD'::text AS currency, pc.amount_minor
  IS NOT NULL AS priced, v.available AS quantity_available, ARRAY(SELECT o.name FROM product_options o WHERE
  o.product_id = v.product_id ORDER BY o.position) AS option_names, p.title AS product_title,
  COALESCE(p.status = 'ACTIVE' AND p.published_at IS NOT NULL AND p.published_at <= now() AND pc.amount_minor
  IS NOT NULL, false) AS sellable FROM product_variants v JOIN products p ON p.id = v.product_id LEFT JOIN
  variant_prices pc ON pc.variant_id = v.id AND pc.currency = 'USD' WHERE v.id = ANY(ARRAY[:v1, :v2]::int8[]);
WITH c AS (UPDATE carts SET updated_at = CURRENT_TIMESTAMP WHERE id = :cart_id AND xmin::text = :version AND
  completed_at IS NULL RETURNING id, token, currency, country, note, completed_at, created_at, updated_at,
  xmin::text AS version), l AS (INSERT INTO cart_lines (cart_id, variant_id, quantity) SELECT c.id, t.v, t.q
  FROM c, unnest(ARRAY[:v2]::int8[], ARRAY[1]::int4[]) WITH ORDINALITY AS t (v, q, n) ORDER BY t.n ON CONFLICT
  (cart_id, variant_id) DO UPDATE SET quantity = cart_lines.quantity + excluded.quantity, updated_at =
  CURRENT_TIMESTAMP RETURNING id, variant_id, quantity, created_at, updated_at) SELECT c.id AS cart_id,
  c.token AS cart_token, c.currency, c.country, c.note, c.completed_at, c.created_at, c.updated_at, c.version,
  l.id AS line_id, l.variant_id AS line_variant_id, l.quantity AS line_quantity, l.created_at AS
  line_created_at, l.updated_at AS line_updated_at, NULL::int8 AS key_order_id FROM c LEFT JOIN l ON true \aset

-- cartComplete: before the payment authorization, the cart (and the key's order) and the variants
SELECT c.id AS cart_id, c.token AS cart_token, c.currency, c.country, c.note, c.completed_at, c.created_at,
  c.updated_at, c.version, l.id AS line_id, l.variant_id AS line_variant_id, l.quantity AS line_quantity,
  l.created_at AS line_created_at, l.updated_at AS line_updated_at, (SELECT o.id FROM orders o WHERE
  o.idempotency_key = 'pgbench-' || :cart_id) AS key_order_id FROM (SELECT carts.*, carts.xmin::text AS
  version FROM carts WHERE token = :cart_token) c LEFT JOIN cart_lines l ON l.cart_id = c.id \aset
SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, v.grams,
  v.weight_unit, v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, v.created_at, v.updated_at,
  COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, 'USD'::text AS currency, pc.amount_minor
  IS NOT NULL AS priced, v.available AS quantity_available, ARRAY(SELECT o.name FROM product_options o WHERE
  o.product_id = v.product_id ORDER BY o.position) AS option_names, p.title AS product_title,
  COALESCE(p.status = 'ACTIVE' AND p.published_at IS NOT NULL AND p.published_at <= now() AND pc.amount_minor
  IS NOT NULL, false) AS sellable FROM product_variants v JOIN products p ON p.id = v.product_id LEFT JOIN
  variant_prices pc ON pc.variant_id = v.id AND pc.currency = 'USD' WHERE v.id = ANY(ARRAY[:v1, :v2]::int8[]);
-- cartComplete: the transaction
BEGIN;
SELECT v.id, v.product_id, v.title, v.sku, v.barcode, v.position, v.option1, v.option2, v.option3, v.grams,
  v.weight_unit, v.requires_shipping, v.taxable, v.inventory_policy, v.image_id, v.created_at, v.updated_at,
  COALESCE(pc.amount_minor, 0) AS price_minor, pc.compare_at_minor, 'USD'::text AS currency, pc.amount_minor
  IS NOT NULL AS priced, v.available AS quantity_available, ARRAY(SELECT o.name FROM product_options o WHERE
  o.product_id = v.product_id ORDER BY o.position) AS option_names, p.title AS product_title,
  COALESCE(p.status = 'ACTIVE' AND p.published_at IS NOT NULL AND p.published_at <= now() AND pc.amount_minor
  IS NOT NULL, false) AS sellable FROM product_variants v JOIN products p ON p.id = v.product_id LEFT JOIN
  variant_prices pc ON pc.variant_id = v.id AND pc.currency = 'USD' WHERE v.id = ANY(ARRAY[:v1, :v2]::int8[]);
INSERT INTO "orders" ("access_token", "idempotency_key", "cart_id", "email", "currency", "subtotal_minor",
  "shipping_minor", "tax_minor", "total_minor", "shipping_method", "shipping_address", "payment_provider",
  "payment_reference", "reserved_until") VALUES (md5(random()::text) || 'abcdefgh', 'pgbench-' || :cart_id,
  :cart_id, 'bench@example.com', 'USD', 2000, 500, 0, 2500, 'standard', '{"lastName": "Bench", "address1": "1 Load St", "city": "Berlin", "zip": "10115", "countryCode": "DE"}', 'test', 'pay_pgbench_' || :cart_id, now()
  + interval '15 minutes') RETURNING "orders"."id" AS order_id, "orders"."number", "orders"."access_token",
  "orders"."idempotency_key", "orders"."cart_id", "orders"."status", "orders"."email", "orders"."currency",
  "orders"."subtotal_minor", "orders"."shipping_minor", "orders"."tax_minor", "orders"."total_minor",
  "orders"."shipping_method", "orders"."shipping_address", "orders"."payment_provider",
  "orders"."payment_reference", "orders"."cancel_reason", "orders"."reserved_until",
  "orders"."confirmation_sent_at", "orders"."created_at", "orders"."updated_at", "orders"."paid_at",
  "orders"."cancelled_at", "orders"."fulfilled_at", "orders"."tracking_number", "orders"."tracking_url",
  "orders"."refunded_minor", "orders"."refunded_at" \gset
INSERT INTO order_lines (order_id, position, variant_id, product_title, variant_title, sku, quantity,
  unit_price_minor, total_minor, taxable, requires_shipping) SELECT :order_id, t.n, t.v, t.pt, t.vt, t.sku,
  t.q, t.up, t.tot, t.tax, t.ship FROM unnest(ARRAY[:v1, :v2]::int8[], ARRAY['Product', 'Product']::text[],
  ARRAY['Variant', 'Variant']::text[], ARRAY[NULL, NULL]::text[], ARRAY[1, 1]::int4[], ARRAY[1000,
  1000]::int8[], ARRAY[1000, 1000]::int8[], ARRAY[true, true]::bool[], ARRAY[true, true]::bool[]) WITH
  ORDINALITY AS t (v, pt, vt, sku, q, up, tot, tax, ship, n) ORDER BY t.n RETURNING id, order_id, position,
  variant_id, product_title, variant_title, sku, quantity, unit_price_minor, total_minor, taxable,
  requires_shipping;
SELECT variant_id, location_id, on_hand, reserved FROM inventory_levels WHERE variant_id = ANY(ARRAY[:v1,
  :v2]::int8[]) ORDER BY variant_id, location_id FOR UPDATE;
UPDATE inventory_levels il SET reserved = il.reserved + a.q, updated_at = now() FROM (SELECT f.variant_id AS
  v, f.location_id AS l, 1 AS q, true AS deny FROM (SELECT DISTINCT ON (variant_id) variant_id, location_id
  FROM inventory_levels WHERE variant_id IN (:v1, :v2) ORDER BY variant_id, location_id) f) AS a WHERE
  il.variant_id = a.v AND il.location_id = a.l AND (NOT a.deny OR il.on_hand - il.reserved >= a.q);
INSERT INTO order_allocations (order_id, variant_id, location_id, quantity) SELECT :order_id, v, l, q FROM
  (SELECT f.variant_id AS v, f.location_id AS l, 1 AS q FROM (SELECT DISTINCT ON (variant_id) variant_id,
  location_id FROM inventory_levels WHERE variant_id IN (:v1, :v2) ORDER BY variant_id, location_id) f) AS a
  (v, l, q);
UPDATE carts SET completed_at = CURRENT_TIMESTAMP, updated_at = CURRENT_TIMESTAMP WHERE id = (SELECT id FROM
  carts WHERE id = :cart_id AND xmin::text = :version AND completed_at IS NULL FOR NO KEY UPDATE SKIP LOCKED);
INSERT INTO jobs (queue, kind, payload, run_at, max_attempts, trace_context) SELECT t.queue, t.kind,
  t.payload, COALESCE(t.run_at, now()), t.max_attempts, NULL FROM unnest(ARRAY['email', 'orders']::text[],
  ARRAY['order_confirmation', 'expire_reservation']::text[], ARRAY[jsonb_build_object('order_id',
  (:order_id)::int8), jsonb_build_object('order_id', (:order_id)::int8)]::jsonb[], ARRAY[NULL, now() +
  interval '15 minutes']::timestamptz[], ARRAY[10, 10]::int4[]) WITH ORDINALITY AS t (queue, kind, payload,
  run_at, max_attempts, n) ORDER BY t.n RETURNING id;
COMMIT;
