//! A deterministic synthetic catalog: the demo store `serve` seeds on first start, and the
//! data set of the tests and benchmarks (`commerce-gateway seed --products N`).
//!
//! The same `N` always gives the same catalog (a fixed-seed ChaCha generator), with
//! realistic titles, option matrices (size, colour, material, storage), 1–10 variants,
//! prices in several currencies (some on sale), images, tags, vendors, a category tree,
//! collections with a manual order, stock in two locations, menus and pages.
//!
//! Rows go in with `INSERT ... SELECT FROM unnest(...)`: one statement per table per
//! thousand products, ids taken from the sequences up front so children need no lookups.

use chrono::{Duration, TimeZone, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Int4, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use indicatif::{ProgressBar, ProgressStyle};
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 1_000;

/// (code, exchange rate from USD in thousandths)
const CURRENCIES: &[(&str, i64)] = &[
    ("USD", 1000),
    ("EUR", 920),
    ("GBP", 790),
    ("CAD", 1360),
    ("JPY", 150_000),
];

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Everyday",
    "Essential",
    "Vintage",
    "Modern",
    "Relaxed",
    "Slim",
    "Heritage",
    "Urban",
    "Coastal",
    "Alpine",
    "Studio",
    "Weekend",
    "Signature",
    "Organic",
    "Featherweight",
    "Rugged",
    "Minimal",
    "Premium",
    "Soft",
];
const MATERIALS: &[&str] = &[
    "Cotton", "Linen", "Merino", "Denim", "Canvas", "Leather", "Bamboo", "Ceramic", "Oak",
    "Walnut", "Steel", "Cashmere", "Fleece", "Recycled", "Wool",
];
const COLOURS: &[&str] = &[
    "Black",
    "White",
    "Navy",
    "Olive",
    "Sand",
    "Charcoal",
    "Rust",
    "Sky Blue",
    "Forest Green",
    "Burgundy",
    "Cream",
    "Slate",
];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL"];
const VENDORS: &[&str] = &[
    "Northwind Supply",
    "Harbor & Pine",
    "Fieldhouse",
    "Lumen Goods",
    "Atlas Outfitters",
    "Kettle & Co",
    "Meridian",
    "Copperline",
    "Greyfield",
    "Tidewater",
    "Oakmont",
    "Bramble",
    "Foxglove Studio",
    "Ironwood",
    "Solstice",
    "Pioneer Works",
    "Blue Fern",
    "Cascade",
    "Driftwood",
    "Summit Gear",
];

struct Department {
    handle: &'static str,
    name: &'static str,
    types: &'static [&'static str],
    /// Which option matrix the department's products use.
    options: OptionKind,
}

#[derive(Clone, Copy)]
enum OptionKind {
    SizeColour,
    MaterialColour,
    ColourStorage,
}

const DEPARTMENTS: &[Department] = &[
    Department {
        handle: "apparel",
        name: "Apparel",
        types: &["T-Shirt", "Hoodie", "Jacket", "Shirt", "Sweater", "Shorts"],
        options: OptionKind::SizeColour,
    },
    Department {
        handle: "footwear",
        name: "Footwear",
        types: &["Sneakers", "Boots", "Sandals", "Loafers"],
        options: OptionKind::SizeColour,
    },
    Department {
        handle: "home-garden",
        name: "Home & Garden",
        types: &[
            "Mug",
            "Lamp",
            "Planter",
            "Throw Blanket",
            "Cutting Board",
            "Vase",
        ],
        options: OptionKind::MaterialColour,
    },
    Department {
        handle: "electronics",
        name: "Electronics",
        types: &[
            "Headphones",
            "Speaker",
            "Charger",
            "Phone Case",
            "Smartwatch",
        ],
        options: OptionKind::ColourStorage,
    },
    Department {
        handle: "sports",
        name: "Sports & Outdoors",
        types: &[
            "Backpack",
            "Water Bottle",
            "Yoga Mat",
            "Tent",
            "Sleeping Bag",
        ],
        options: OptionKind::MaterialColour,
    },
    Department {
        handle: "accessories",
        name: "Accessories",
        types: &["Cap", "Scarf", "Belt", "Wallet", "Sunglasses", "Beanie"],
        options: OptionKind::SizeColour,
    },
];

/// What a seed run created.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeedReport {
    pub products: usize,
    pub variants: usize,
    pub images: usize,
    pub collections: usize,
}

fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

async fn next_ids(
    conn: &mut AsyncPgConnection,
    sequence: &str,
    n: usize,
) -> anyhow::Result<Vec<i64>> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let rows: Vec<Id> = diesel::sql_query(format!(
        "SELECT nextval('{sequence}') AS id FROM generate_series(1, $1)"
    ))
    .bind::<BigInt, _>(n as i64)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[derive(Default)]
struct ProductBatch {
    id: Vec<i64>,
    handle: Vec<String>,
    title: Vec<String>,
    description: Vec<String>,
    description_html: Vec<String>,
    vendor: Vec<String>,
    product_type: Vec<String>,
    tags: Vec<String>,
    status: Vec<String>,
    published_at: Vec<Option<chrono::DateTime<Utc>>>,
    seo_title: Vec<Option<String>>,
    seo_description: Vec<Option<String>>,
    category_id: Vec<i64>,
    total_sales: Vec<i64>,
    created_at: Vec<chrono::DateTime<Utc>>,
    // children
    opt_product: Vec<i64>,
    opt_name: Vec<String>,
    opt_position: Vec<i32>,
    opt_values: Vec<String>,
    img_product: Vec<i64>,
    img_url: Vec<String>,
    img_alt: Vec<Option<String>>,
    img_position: Vec<i32>,
    var_product: Vec<i64>,
    var_title: Vec<String>,
    var_sku: Vec<String>,
    var_position: Vec<i32>,
    var_o1: Vec<Option<String>>,
    var_o2: Vec<Option<String>>,
    var_grams: Vec<i32>,
    var_policy: Vec<String>,
    var_barcode: Vec<String>,
    var_created: Vec<chrono::DateTime<Utc>>,
    price_variant_index: Vec<usize>,
    price_currency: Vec<String>,
    price_amount: Vec<i64>,
    price_compare: Vec<Option<i64>>,
    stock_variant_index: Vec<usize>,
    stock_location: Vec<i64>,
    stock_on_hand: Vec<i32>,
}

/// Seeds `count` products (plus categories, collections, menus and pages when the
/// catalog is empty). Deterministic for a given `count` and database state.
pub async fn seed(
    conn: &mut AsyncPgConnection,
    count: usize,
    shop_currency: &str,
    shop_url: &str,
) -> anyhow::Result<SeedReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_c0de);
    // Every product is priced in the shop currency too (at the USD figures if it is not
    // one of the demo currencies).
    let mut currencies: Vec<(&str, i64)> = CURRENCIES.to_vec();
    if !currencies.iter().any(|(c, _)| *c == shop_currency) {
        currencies.push((shop_currency, 1000));
    }
    let mut report = SeedReport::default();
    let base_time = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");

    let categories = seed_categories(conn).await?;
    let locations =
        crate::inventory::stock::add_locations(conn, &["Main warehouse", "Downtown store"]).await?;
    // Handles stay unique when seeding into a catalog that already has products.
    let offset = super::writer::product_count(conn).await?;

    let progress = ProgressBar::new(count as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} seeding [{bar:40}] {pos}/{len} products ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );

    let mut all_ids = Vec::with_capacity(count);
    let mut all_types = Vec::with_capacity(count);
    let mut remaining = count;
    let mut index = offset as usize;
    while remaining > 0 {
        let n = remaining.min(BATCH);
        let ids = next_ids(conn, "products_id_seq", n).await?;
        let mut b = ProductBatch::default();
        for &id in &ids {
            index += 1;
            let dept = &DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())];
            let ptype = dept.types[rng.random_range(0..dept.types.len())];
            let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
            let material = MATERIALS[rng.random_range(0..MATERIALS.len())];
            let title = format!("{adjective} {material} {ptype}");
            let handle = format!("{}-{index}", slug(&title));
            let vendor = VENDORS[rng.random_range(0..VENDORS.len())];
            let created = base_time + Duration::minutes(rng.random_range(0..(600 * 24 * 60)));
            let on_sale = rng.random_bool(0.2);
            let mut tags = vec![
                dept.handle.to_string(),
                slug(ptype),
                material.to_lowercase(),
            ];
            if on_sale {
                tags.push("sale".into());
            }
            if rng.random_bool(0.15) {
                tags.push("new".into());
            }
            let draft = rng.random_bool(0.03);
            let description = format!(
                "The {title} by {vendor}: {material} built for everyday wear, made to last and easy to care for."
            );
            b.id.push(id);
            b.handle.push(handle.clone());
            b.title.push(title.clone());
            b.description_html.push(format!(
                "<p>{description}</p><ul><li>Material: {material}</li><li>Type: {ptype}</li></ul>"
            ));
            b.description.push(description);
            b.vendor.push(vendor.into());
            b.product_type.push(ptype.into());
            b.tags.push(tags.join("\u{1f}"));
            b.status.push(if draft { "DRAFT" } else { "ACTIVE" }.into());
            b.published_at.push((!draft).then_some(created));
            b.seo_title.push(Some(format!("{title} | {vendor}")));
            b.seo_description
                .push(Some(format!("Shop the {title} from {vendor}.")));
            let subcats = &categories[dept_index(dept)];
            b.category_id
                .push(subcats[rng.random_range(0..subcats.len())]);
            b.total_sales.push(rng.random_range(0..5_000));
            b.created_at.push(created);
            all_ids.push(id);
            all_types.push(dept_index(dept));

            // Options and the variant matrix (at most 10 combinations).
            let (names, first, second): (&[&str; 2], Vec<&str>, Vec<&str>) = match dept.options {
                OptionKind::SizeColour => (
                    &["Size", "Color"],
                    pick(&mut rng, SIZES, 1, 5),
                    pick(&mut rng, COLOURS, 1, 2),
                ),
                OptionKind::MaterialColour => (
                    &["Material", "Color"],
                    pick(&mut rng, MATERIALS, 1, 2),
                    pick(&mut rng, COLOURS, 1, 4),
                ),
                OptionKind::ColourStorage => (
                    &["Color", "Storage"],
                    pick(&mut rng, COLOURS, 1, 3),
                    pick(&mut rng, &["64GB", "128GB", "256GB"], 1, 3),
                ),
            };
            for (pos, (name, values)) in names.iter().zip([&first, &second]).enumerate() {
                b.opt_product.push(id);
                b.opt_name.push((*name).into());
                b.opt_position.push(pos as i32 + 1);
                b.opt_values.push(values.join("\u{1f}"));
            }
            let images = rng.random_range(1..=5);
            for pos in 1..=images {
                b.img_product.push(id);
                b.img_url.push(format!(
                    "https://picsum.photos/seed/{handle}-{pos}/800/1000"
                ));
                b.img_alt.push(Some(format!("{title}, view {pos}")));
                b.img_position.push(pos);
            }
            report.images += images as usize;
            let base_cents: i64 =
                rng.random_range(5..300) * 100 + if rng.random_bool(0.7) { 99 } else { 0 };
            let policy = if rng.random_bool(0.05) {
                "CONTINUE"
            } else {
                "DENY"
            };
            let mut position = 0;
            for a in &first {
                for c in &second {
                    position += 1;
                    let vi = b.var_product.len();
                    b.var_product.push(id);
                    b.var_title.push(format!("{a} / {c}"));
                    b.var_sku.push(format!("SKU-{index:07}-{position:02}"));
                    b.var_position.push(position);
                    b.var_o1.push(Some((*a).into()));
                    b.var_o2.push(Some((*c).into()));
                    b.var_grams.push(rng.random_range(50..3_000));
                    b.var_policy.push(policy.into());
                    b.var_barcode.push(format!(
                        "{:013}",
                        4_000_000_000_000i64 + (index as i64) * 100 + position as i64
                    ));
                    b.var_created.push(created);
                    let variant_cents = base_cents
                        + if position > 1 && rng.random_bool(0.3) {
                            500
                        } else {
                            0
                        };
                    for (code, rate) in &currencies {
                        let mut amount = variant_cents * rate / 1000;
                        if *code == "JPY" {
                            // Yen have no minor unit: whole yen, rounded to tens.
                            amount = ((amount / 100) / 10 * 10).max(10);
                        }
                        b.price_variant_index.push(vi);
                        b.price_currency.push((*code).into());
                        b.price_amount.push(amount);
                        b.price_compare.push(on_sale.then_some(amount * 13 / 10));
                    }
                    for &location in &locations {
                        let stock = if rng.random_bool(0.1) {
                            0
                        } else {
                            rng.random_range(0..60)
                        };
                        b.stock_variant_index.push(vi);
                        b.stock_location.push(location);
                        b.stock_on_hand.push(stock);
                    }
                }
            }
        }
        report.products += n;
        report.variants += b.var_product.len();
        write_batch(conn, b).await?;
        remaining -= n;
        progress.inc(n as u64);
    }
    progress.finish_and_clear();
    report.collections = seed_collections(conn, &mut rng, &all_ids, &all_types).await?;
    seed_content(conn, shop_url).await?;
    diesel::sql_query("ANALYZE").execute(conn).await?;
    Ok(report)
}

fn dept_index(dept: &Department) -> usize {
    DEPARTMENTS
        .iter()
        .position(|d| d.handle == dept.handle)
        .unwrap_or(0)
}

fn pick<'a>(rng: &mut ChaCha8Rng, from: &[&'a str], min: usize, max: usize) -> Vec<&'a str> {
    let n = rng.random_range(min..=max.min(from.len()));
    let start = rng.random_range(0..from.len());
    (0..n).map(|i| from[(start + i) % from.len()]).collect()
}

async fn write_batch(conn: &mut AsyncPgConnection, b: ProductBatch) -> anyhow::Result<()> {
    let variant_ids = next_ids(conn, "product_variants_id_seq", b.var_product.len()).await?;
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        diesel::sql_query(
            "INSERT INTO products (id, handle, title, description, description_html, vendor, product_type, tags, \
             status, published_at, seo_title, seo_description, category_id, total_sales, created_at, updated_at) \
             SELECT id, handle, title, description, html, vendor, ptype, string_to_array(tags, E'\\x1f'), status, \
                    published, seo_t, seo_d, cat, sales, created, created \
             FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                         $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::text[], $13::int8[], \
                         $14::int8[], $15::timestamptz[]) \
                  AS t(id, handle, title, description, html, vendor, ptype, tags, status, published, seo_t, seo_d, cat, sales, created)",
        )
        .bind::<Array<BigInt>, _>(&b.id)
        .bind::<Array<Text>, _>(&b.handle)
        .bind::<Array<Text>, _>(&b.title)
        .bind::<Array<Text>, _>(&b.description)
        .bind::<Array<Text>, _>(&b.description_html)
        .bind::<Array<Text>, _>(&b.vendor)
        .bind::<Array<Text>, _>(&b.product_type)
        .bind::<Array<Text>, _>(&b.tags)
        .bind::<Array<Text>, _>(&b.status)
        .bind::<Array<Nullable<Timestamptz>>, _>(&b.published_at)
        .bind::<Array<Nullable<Text>>, _>(&b.seo_title)
        .bind::<Array<Nullable<Text>>, _>(&b.seo_description)
        .bind::<Array<BigInt>, _>(&b.category_id)
        .bind::<Array<BigInt>, _>(&b.total_sales)
        .bind::<Array<Timestamptz>, _>(&b.created_at)
        .execute(conn)
        .await?;
        diesel::sql_query(
            "INSERT INTO product_options (product_id, name, position, \"values\") \
             SELECT pid, name, pos, string_to_array(vals, E'\\x1f') \
             FROM unnest($1::int8[], $2::text[], $3::int4[], $4::text[]) AS t(pid, name, pos, vals)",
        )
        .bind::<Array<BigInt>, _>(&b.opt_product)
        .bind::<Array<Text>, _>(&b.opt_name)
        .bind::<Array<Int4>, _>(&b.opt_position)
        .bind::<Array<Text>, _>(&b.opt_values)
        .execute(conn)
        .await?;
        diesel::sql_query(
            "INSERT INTO product_images (product_id, url, alt_text, width, height, position) \
             SELECT pid, url, alt, 800, 1000, pos FROM unnest($1::int8[], $2::text[], $3::text[], $4::int4[]) AS t(pid, url, alt, pos)",
        )
        .bind::<Array<BigInt>, _>(&b.img_product)
        .bind::<Array<Text>, _>(&b.img_url)
        .bind::<Array<Nullable<Text>>, _>(&b.img_alt)
        .bind::<Array<Int4>, _>(&b.img_position)
        .execute(conn)
        .await?;
        diesel::sql_query(
            "INSERT INTO product_variants (id, product_id, title, sku, barcode, position, option1, option2, grams, \
             weight_unit, inventory_policy, created_at, updated_at) \
             SELECT id, pid, title, sku, barcode, pos, o1, o2, grams, 'GRAMS', policy, created, created \
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::text[], $8::text[], \
                         $9::int4[], $10::text[], $11::timestamptz[]) \
                  AS t(id, pid, title, sku, barcode, pos, o1, o2, grams, policy, created)",
        )
        .bind::<Array<BigInt>, _>(&variant_ids)
        .bind::<Array<BigInt>, _>(&b.var_product)
        .bind::<Array<Text>, _>(&b.var_title)
        .bind::<Array<Text>, _>(&b.var_sku)
        .bind::<Array<Text>, _>(&b.var_barcode)
        .bind::<Array<Int4>, _>(&b.var_position)
        .bind::<Array<Nullable<Text>>, _>(&b.var_o1)
        .bind::<Array<Nullable<Text>>, _>(&b.var_o2)
        .bind::<Array<Int4>, _>(&b.var_grams)
        .bind::<Array<Text>, _>(&b.var_policy)
        .bind::<Array<Timestamptz>, _>(&b.var_created)
        .execute(conn)
        .await?;
        let price_variants: Vec<i64> = b.price_variant_index.iter().map(|&i| variant_ids[i]).collect();
        diesel::sql_query(
            "INSERT INTO variant_prices (variant_id, currency, amount_minor, compare_at_minor) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[])",
        )
        .bind::<Array<BigInt>, _>(&price_variants)
        .bind::<Array<Text>, _>(&b.price_currency)
        .bind::<Array<BigInt>, _>(&b.price_amount)
        .bind::<Array<Nullable<BigInt>>, _>(&b.price_compare)
        .execute(conn)
        .await?;
        let stock_variants: Vec<i64> = b.stock_variant_index.iter().map(|&i| variant_ids[i]).collect();
        crate::inventory::stock::insert_levels(conn, &stock_variants, &b.stock_location, &b.stock_on_hand)
            .await?;
        Ok(())
    })
    .await
}

/// The category tree: one root per department with a few children. Returns the leaf ids
/// of each department, in `DEPARTMENTS` order.
async fn seed_categories(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<Vec<i64>>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let mut out = Vec::new();
    for dept in DEPARTMENTS {
        let root: Row = diesel::sql_query(
            "INSERT INTO categories (handle, name) VALUES ($1, $2) \
             ON CONFLICT (handle) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        )
        .bind::<Text, _>(dept.handle)
        .bind::<Text, _>(dept.name)
        .get_result(conn)
        .await?;
        let mut leaves = Vec::new();
        for ptype in dept.types {
            let leaf: Row = diesel::sql_query(
                "INSERT INTO categories (handle, name, parent_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (handle) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            )
            .bind::<Text, _>(format!("{}-{}", dept.handle, slug(ptype)))
            .bind::<Text, _>(format!("{ptype}s"))
            .bind::<BigInt, _>(root.id)
            .get_result(conn)
            .await?;
            leaves.push(leaf.id);
        }
        out.push(leaves);
    }
    Ok(out)
}

/// Department collections, a front page and a sale collection, each with a manual order.
async fn seed_collections(
    conn: &mut AsyncPgConnection,
    rng: &mut ChaCha8Rng,
    product_ids: &[i64],
    departments: &[usize],
) -> anyhow::Result<usize> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let mut specs: Vec<(String, String, Vec<i64>)> = DEPARTMENTS
        .iter()
        .enumerate()
        .map(|(d, dept)| {
            let members = product_ids
                .iter()
                .zip(departments)
                .filter(|(_, pd)| **pd == d)
                .map(|(id, _)| *id)
                .collect();
            (dept.handle.to_string(), dept.name.to_string(), members)
        })
        .collect();
    let frontpage: Vec<i64> = product_ids
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.05))
        .take(48)
        .collect();
    specs.push(("frontpage".into(), "Home page".into(), frontpage));
    let featured: Vec<i64> = product_ids
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.1))
        .take(500)
        .collect();
    specs.push(("featured".into(), "Featured".into(), featured));
    let mut created = 0;
    for (handle, title, mut members) in specs {
        members.shuffle(rng);
        let row: Row = diesel::sql_query(
            "INSERT INTO collections (handle, title, description, description_html, seo_title, seo_description, \
             image_url, image_alt, image_width, image_height) \
             VALUES ($1, $2, $3, '<p>' || $3 || '</p>', $2, $3, $4, $2, 1600, 900) \
             ON CONFLICT (handle) DO UPDATE SET updated_at = now() RETURNING id",
        )
        .bind::<Text, _>(&handle)
        .bind::<Text, _>(&title)
        .bind::<Text, _>(format!("Our pick of {}.", title.to_lowercase()))
        .bind::<Text, _>(format!("https://picsum.photos/seed/collection-{handle}/1600/900"))
        .get_result(conn)
        .await?;
        diesel::sql_query(
            "INSERT INTO collection_products (collection_id, product_id, position) \
             SELECT $1, pid, (SELECT COALESCE(max(position), 0) FROM collection_products WHERE collection_id = $1) + ord::int4 \
             FROM unnest($2::int8[]) WITH ORDINALITY AS t(pid, ord) \
             ON CONFLICT DO NOTHING",
        )
        .bind::<BigInt, _>(row.id)
        .bind::<Array<BigInt>, _>(&members)
        .execute(conn)
        .await?;
        created += 1;
    }
    Ok(created)
}

/// Menus and pages of the demo store (idempotent).
async fn seed_content(conn: &mut AsyncPgConnection, shop_url: &str) -> anyhow::Result<()> {
    let pages = [
        ("about", "About us", "We make everyday goods that last."),
        (
            "faq",
            "Frequently asked questions",
            "Orders ship within two business days.",
        ),
        (
            "shipping-returns",
            "Shipping & returns",
            "Free returns within 30 days.",
        ),
        (
            "privacy-policy",
            "Privacy policy",
            "We only keep what we need to ship your order.",
        ),
        (
            "terms-of-service",
            "Terms of service",
            "By using this store you agree to these terms.",
        ),
    ];
    for (handle, title, body) in pages {
        diesel::sql_query(
            "INSERT INTO pages (handle, title, body, body_summary, seo_title, seo_description) \
             VALUES ($1, $2, '<p>' || $3 || '</p>', $3, $2, $3) ON CONFLICT (handle) DO NOTHING",
        )
        .bind::<Text, _>(handle)
        .bind::<Text, _>(title)
        .bind::<Text, _>(body)
        .execute(conn)
        .await?;
    }
    let mut main: Vec<(String, String, String, Option<usize>)> = vec![(
        "All".into(),
        format!("{shop_url}/search"),
        "CATALOG".into(),
        None,
    )];
    for dept in DEPARTMENTS {
        main.push((
            dept.name.into(),
            format!("{shop_url}/collections/{}", dept.handle),
            "COLLECTION".into(),
            None,
        ));
    }
    // A nested entry: department links under "Shop by department".
    main.push((
        "Shop by department".into(),
        format!("{shop_url}/search"),
        "CATALOG".into(),
        None,
    ));
    let parent_index = main.len() - 1;
    for dept in DEPARTMENTS.iter().take(3) {
        main.push((
            dept.name.into(),
            format!("{shop_url}/collections/{}", dept.handle),
            "COLLECTION".into(),
            Some(parent_index),
        ));
    }
    let footer: Vec<(String, String, String, Option<usize>)> = pages
        .iter()
        .map(|(h, t, _)| {
            (
                (*t).to_string(),
                format!("{shop_url}/pages/{h}"),
                "PAGE".to_string(),
                None,
            )
        })
        .collect();
    for (handle, title, items) in [
        ("main-menu", "Main menu", main),
        ("footer", "Footer", footer),
    ] {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = Bool)]
            inserted: bool,
        }
        let menu: Row = diesel::sql_query(
            "INSERT INTO menus (handle, title) VALUES ($1, $2) \
             ON CONFLICT (handle) DO UPDATE SET title = EXCLUDED.title RETURNING id, (xmax = 0) AS inserted",
        )
        .bind::<Text, _>(handle)
        .bind::<Text, _>(title)
        .get_result(conn)
        .await?;
        if !menu.inserted {
            continue;
        }
        let mut ids: Vec<i64> = Vec::new();
        for (position, (title, url, kind, parent)) in items.into_iter().enumerate() {
            let row: Row = diesel::sql_query(
                "INSERT INTO menu_items (menu_id, parent_id, position, title, item_type, url) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, true AS inserted",
            )
            .bind::<BigInt, _>(menu.id)
            .bind::<Nullable<BigInt>, _>(parent.map(|p| ids[p]))
            .bind::<Int4, _>(position as i32 + 1)
            .bind::<Text, _>(title)
            .bind::<Text, _>(kind)
            .bind::<Text, _>(url)
            .get_result(conn)
            .await?;
            ids.push(row.id);
        }
    }
    Ok(())
}
