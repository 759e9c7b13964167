//! Product CSV export in Shopify's format, as a job: the finished file is stored in
//! `exports` and downloaded from `/admin/exports/{id}.csv` with a key that may read
//! products. The importer reads what this writes (a round trip keeps the catalog).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use crate::db::schema::exports;
use crate::jobs::{self, Kind, NewJob};
use crate::money::format_minor;
use crate::partners::{Actor, audit};

pub const HEADER: &[&str] = &[
    "Handle",
    "Title",
    "Body (HTML)",
    "Vendor",
    "Type",
    "Tags",
    "Published",
    "Option1 Name",
    "Option1 Value",
    "Option2 Name",
    "Option2 Value",
    "Option3 Name",
    "Option3 Value",
    "Variant SKU",
    "Variant Grams",
    "Variant Inventory Qty",
    "Variant Inventory Policy",
    "Variant Price",
    "Variant Compare At Price",
    "Variant Requires Shipping",
    "Variant Taxable",
    "Variant Barcode",
    "Image Src",
    "Image Position",
    "Image Alt Text",
    "SEO Title",
    "SEO Description",
    "Variant Image",
    "Variant Weight Unit",
    "Status",
];

/// An export as its progress shows it (without the file).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = exports)]
pub struct Export {
    pub id: i64,
    pub status: String,
    pub rows_done: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Queues an export of the catalog; returns it.
pub async fn create(conn: &mut AsyncPgConnection, actor: &Actor) -> QueryResult<Export> {
    conn.transaction(async |conn| {
        let export: Export = diesel::insert_into(exports::table)
            .values(exports::api_key_id.eq(actor.key_id))
            .returning(Export::as_returning())
            .get_result(conn)
            .await?;
        let mut job = NewJob::new(
            Kind::ExportCsv,
            serde_json::json!({ "export_id": export.id }),
        );
        job.max_attempts = 3;
        jobs::enqueue(conn, &[job]).await?;
        audit::record(
            conn,
            actor,
            "productExportCreate",
            "ProductExport",
            Some(export.id.to_string()),
            serde_json::json!({}),
        )
        .await?;
        Ok(export)
    })
    .await
}

pub async fn get(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Export>> {
    exports::table
        .find(id)
        .select(Export::as_select())
        .first(conn)
        .await
        .optional()
}

/// The finished file (`None` until the export is done).
pub async fn content(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<String>> {
    Ok(exports::table
        .find(id)
        .filter(exports::status.eq("DONE"))
        .select(exports::content)
        .first::<Option<String>>(conn)
        .await
        .optional()?
        .flatten())
}

const BATCH: i64 = 200;

/// Runs an export (the job's handler): writes every product, a batch at a time, and
/// stores the file. Rerunning a finished export changes nothing.
pub async fn run(conn: &mut AsyncPgConnection, id: i64, shop_currency: &str) -> anyhow::Result<()> {
    let Some(export) = get(conn, id).await? else {
        return Ok(());
    };
    if export.status == "DONE" {
        return Ok(());
    }
    diesel::sql_query("UPDATE exports SET status = 'RUNNING', rows_done = 0 WHERE id = $1")
        .bind::<BigInt, _>(id)
        .execute(conn)
        .await?;
    let result = write_csv(conn, id, shop_currency).await;
    match result {
        Ok(csv) => {
            diesel::sql_query(
                "UPDATE exports SET status = 'DONE', content = $2, finished_at = now() WHERE id = $1",
            )
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(csv)
            .execute(conn)
            .await?;
            Ok(())
        }
        Err(e) => {
            diesel::sql_query(
                "UPDATE exports SET status = 'FAILED', error = $2, finished_at = now() WHERE id = $1",
            )
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(e.to_string())
            .execute(conn)
            .await?;
            Err(e)
        }
    }
}

#[derive(QueryableByName)]
struct Doc {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Jsonb)]
    doc: Value,
}

async fn write_csv(
    conn: &mut AsyncPgConnection,
    id: i64,
    currency: &str,
) -> anyhow::Result<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(HEADER)?;
    let mut after = 0i64;
    let mut done = 0i64;
    loop {
        let docs: Vec<Doc> = diesel::sql_query(
            "SELECT p.id, jsonb_build_object( \
               'handle', p.handle, 'title', p.title, 'body', p.description_html, 'vendor', p.vendor, \
               'type', p.product_type, 'tags', array_to_string(p.tags, ', '), \
               'published', p.published_at IS NOT NULL, 'status', lower(p.status), \
               'seo_title', p.seo_title, 'seo_description', p.seo_description, \
               'options', (SELECT coalesce(jsonb_agg(o.name ORDER BY o.position), '[]') FROM product_options o WHERE o.product_id = p.id), \
               'variants', (SELECT coalesce(jsonb_agg(jsonb_build_object( \
                   'sku', v.sku, 'o1', v.option1, 'o2', v.option2, 'o3', v.option3, 'grams', v.grams, \
                   'unit', v.weight_unit, 'shipping', v.requires_shipping, 'taxable', v.taxable, \
                   'policy', lower(v.inventory_policy), 'barcode', v.barcode, 'price', vp.amount_minor, \
                   'compare', vp.compare_at_minor, 'image', vi.url, \
                   'qty', (SELECT coalesce(sum(l.on_hand), 0) FROM inventory_levels l WHERE l.variant_id = v.id)) \
                   ORDER BY v.position, v.id), '[]') \
                 FROM product_variants v \
                 LEFT JOIN variant_prices vp ON vp.variant_id = v.id AND vp.currency = $2 \
                 LEFT JOIN product_images vi ON vi.id = v.image_id WHERE v.product_id = p.id), \
               'images', (SELECT coalesce(jsonb_agg(jsonb_build_object('src', i.url, 'position', i.position, 'alt', i.alt_text) \
                   ORDER BY i.position, i.id), '[]') FROM product_images i WHERE i.product_id = p.id) \
             ) AS doc FROM products p WHERE p.id > $1 ORDER BY p.id LIMIT $3",
        )
        .bind::<BigInt, _>(after)
        .bind::<Text, _>(currency)
        .bind::<BigInt, _>(BATCH)
        .load(conn)
        .await?;
        let Some(last) = docs.last() else {
            break;
        };
        after = last.id;
        for d in &docs {
            write_product(&mut out, &d.doc, currency)?;
        }
        done += docs.len() as i64;
        diesel::sql_query("UPDATE exports SET rows_done = $2 WHERE id = $1")
            .bind::<BigInt, _>(id)
            .bind::<BigInt, _>(done)
            .execute(conn)
            .await?;
        if (docs.len() as i64) < BATCH {
            break;
        }
    }
    Ok(String::from_utf8(out.into_inner()?)?)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => {
            if *b {
                "TRUE".into()
            } else {
                "FALSE".into()
            }
        }
        other => other.to_string(),
    }
}

fn unit(u: &str) -> &'static str {
    match u {
        "GRAMS" => "g",
        "POUNDS" => "lb",
        "OUNCES" => "oz",
        _ => "kg",
    }
}

/// One product: a row per variant (the first also carries the product's fields), then a
/// row per image beyond the variants' rows.
fn write_product(out: &mut csv::Writer<Vec<u8>>, p: &Value, currency: &str) -> anyhow::Result<()> {
    let empty = Vec::new();
    let variants = p["variants"].as_array().unwrap_or(&empty);
    let images = p["images"].as_array().unwrap_or(&empty);
    let options = p["options"].as_array().unwrap_or(&empty);
    let rows = variants.len().max(images.len()).max(1);
    for i in 0..rows {
        let mut r = vec![String::new(); HEADER.len()];
        let set = |r: &mut Vec<String>, col: &str, v: String| {
            if let Some(ix) = HEADER.iter().position(|h| *h == col) {
                r[ix] = v;
            }
        };
        set(&mut r, "Handle", text(&p["handle"]));
        if i == 0 {
            set(&mut r, "Title", text(&p["title"]));
            set(&mut r, "Body (HTML)", text(&p["body"]));
            set(&mut r, "Vendor", text(&p["vendor"]));
            set(&mut r, "Type", text(&p["type"]));
            set(&mut r, "Tags", text(&p["tags"]));
            set(&mut r, "Published", text(&p["published"]));
            set(&mut r, "SEO Title", text(&p["seo_title"]));
            set(&mut r, "SEO Description", text(&p["seo_description"]));
            set(&mut r, "Status", text(&p["status"]));
            for (k, name) in options.iter().enumerate().take(3) {
                set(&mut r, &format!("Option{} Name", k + 1), text(name));
            }
        }
        if let Some(v) = variants.get(i) {
            set(&mut r, "Option1 Value", text(&v["o1"]));
            set(&mut r, "Option2 Value", text(&v["o2"]));
            set(&mut r, "Option3 Value", text(&v["o3"]));
            set(&mut r, "Variant SKU", text(&v["sku"]));
            set(&mut r, "Variant Grams", text(&v["grams"]));
            set(&mut r, "Variant Inventory Qty", text(&v["qty"]));
            set(&mut r, "Variant Inventory Policy", text(&v["policy"]));
            if let Some(m) = v["price"].as_i64() {
                set(&mut r, "Variant Price", format_minor(m, currency));
            }
            if let Some(m) = v["compare"].as_i64() {
                set(
                    &mut r,
                    "Variant Compare At Price",
                    format_minor(m, currency),
                );
            }
            set(&mut r, "Variant Requires Shipping", text(&v["shipping"]));
            set(&mut r, "Variant Taxable", text(&v["taxable"]));
            set(&mut r, "Variant Barcode", text(&v["barcode"]));
            set(&mut r, "Variant Image", text(&v["image"]));
            set(
                &mut r,
                "Variant Weight Unit",
                unit(v["unit"].as_str().unwrap_or("")).to_string(),
            );
        }
        if let Some(img) = images.get(i) {
            set(&mut r, "Image Src", text(&img["src"]));
            set(&mut r, "Image Position", text(&img["position"]));
            set(&mut r, "Image Alt Text", text(&img["alt"]));
        }
        out.write_record(&r)?;
    }
    Ok(())
}
