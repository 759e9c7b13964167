//! Imports Shopify's product CSV format (`commerce-gateway import products.csv`).
//!
//! Rows with the same Handle are one product: the first carries the product columns, the
//! following ones only variant or image columns. Unknown columns are ignored. A bad row is
//! reported with its line number and reason and skipped; the rest of the file imports.
//! Re-importing a file updates products by handle and variants by SKU (by option values
//! where there is no SKU), so it never duplicates anything.

use std::collections::HashMap;
use std::io::Read;

use diesel_async::AsyncPgConnection;

use super::writer::{
    ImageDraft, ProductDraft, UpsertCounts, VariantDraft, upsert_product, valid_handle,
};
use crate::money;

/// The outcome of an import.
#[derive(Debug, Default, Clone)]
pub struct ImportReport {
    pub counts: UpsertCounts,
    /// `(line, reason)` of every row that was not imported.
    pub rejected: Vec<(u64, String)>,
}

impl ImportReport {
    /// The report as stored with a background import.
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.counts;
        serde_json::json!({
            "productsCreated": c.products_created,
            "productsUpdated": c.products_updated,
            "variantsCreated": c.variants_created,
            "variantsUpdated": c.variants_updated,
            "imagesCreated": c.images_created,
            "imagesUpdated": c.images_updated,
            "rejected": self.rejected.iter().map(|(line, reason)| serde_json::json!({ "line": line, "reason": reason })).collect::<Vec<_>>(),
        })
    }
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "products: {} created, {} updated; variants: {} created, {} updated; images: {} created, {} updated; rows rejected: {}",
            c.products_created,
            c.products_updated,
            c.variants_created,
            c.variants_updated,
            c.images_created,
            c.images_updated,
            self.rejected.len()
        )?;
        for (line, reason) in &self.rejected {
            writeln!(f, "  line {line}: {reason}")?;
        }
        Ok(())
    }
}

/// Column positions by header name.
struct Columns(HashMap<String, usize>);

impl Columns {
    fn get<'r>(&self, record: &'r csv::StringRecord, name: &str) -> &'r str {
        self.0
            .get(name)
            .and_then(|&i| record.get(i))
            .map(str::trim)
            .unwrap_or("")
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn parse_bool(s: &str, default: bool) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "" => Ok(default),
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

fn weight_unit(s: &str) -> Result<&'static str, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "" | "kg" => "KILOGRAMS",
        "g" => "GRAMS",
        "lb" | "lbs" => "POUNDS",
        "oz" => "OUNCES",
        other => {
            return Err(format!(
                "Variant Weight Unit {other:?} is not g, kg, lb or oz"
            ));
        }
    })
}

struct Pending {
    line: u64,
    draft: ProductDraft,
}

/// Parses the CSV into product drafts; bad rows land in `rejected`.
pub fn parse(
    reader: impl Read,
    shop_currency: &str,
    rejected: &mut Vec<(u64, String)>,
) -> anyhow::Result<Vec<(u64, ProductDraft)>> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = csv.headers()?.clone();
    let columns = Columns(
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().trim_start_matches('\u{feff}').to_string(), i))
            .collect(),
    );
    if !columns.0.contains_key("Handle") {
        anyhow::bail!("not a Shopify product CSV: there is no Handle column");
    }
    let mut order: Vec<String> = Vec::new();
    let mut products: HashMap<String, Pending> = HashMap::new();
    let mut failed_handles: Vec<String> = Vec::new();
    let mut skus: HashMap<String, String> = HashMap::new();

    for record in csv.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                rejected.push((line, format!("unreadable row: {e}")));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let col = |name: &str| columns.get(&record, name);
        let handle = col("Handle").to_string();
        if handle.is_empty() {
            rejected.push((line, "missing Handle".into()));
            continue;
        }
        if !valid_handle(&handle) {
            rejected.push((
                line,
                format!("Handle {handle:?} may only contain a-z, 0-9, - and _"),
            ));
            continue;
        }
        if failed_handles.contains(&handle) {
            rejected.push((
                line,
                format!("the first row of product {handle:?} was rejected"),
            ));
            continue;
        }
        let first_row = !products.contains_key(&handle);
        let result = (|| -> Result<(), String> {
            if !products.contains_key(&handle) {
                let title = col("Title");
                if title.is_empty() {
                    return Err("the first row of a product needs a Title".into());
                }
                let option_names: Vec<String> = ["Option1 Name", "Option2 Name", "Option3 Name"]
                    .iter()
                    .map(|n| col(n).to_string())
                    .take_while(|n| !n.is_empty())
                    .collect();
                let status = match col("Status").to_ascii_lowercase().as_str() {
                    "" | "active" => "ACTIVE",
                    "draft" => "DRAFT",
                    "archived" => "ARCHIVED",
                    other => {
                        return Err(format!("Status {other:?} is not active, draft or archived"));
                    }
                };
                let draft = ProductDraft {
                    handle: handle.clone(),
                    title: title.to_string(),
                    description_html: col("Body (HTML)").to_string(),
                    vendor: col("Vendor").to_string(),
                    product_type: col("Type").to_string(),
                    tags: col("Tags")
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect(),
                    published: parse_bool(col("Published"), true)
                        .map_err(|e| format!("Published: {e}"))?,
                    status: status.to_string(),
                    seo_title: opt(col("SEO Title")),
                    seo_description: opt(col("SEO Description")),
                    option_names,
                    variants: Vec::new(),
                    images: Vec::new(),
                };
                order.push(handle.clone());
                products.insert(handle.clone(), Pending { line, draft });
            }
            let pending = products.get_mut(&handle).expect("inserted above");
            let draft = &mut pending.draft;

            let image_src = col("Image Src");
            if !image_src.is_empty() {
                if url::Url::parse(image_src).is_err() {
                    return Err(format!("Image Src {image_src:?} is not a URL"));
                }
                let position = match col("Image Position") {
                    "" => draft.images.len() as i32 + 1,
                    p => p
                        .parse()
                        .map_err(|_| format!("Image Position {p:?} is not a whole number"))?,
                };
                if !draft.images.iter().any(|i| i.url == image_src) {
                    draft.images.push(ImageDraft {
                        url: image_src.to_string(),
                        alt: opt(col("Image Alt Text")),
                        position,
                    });
                }
            }

            let options = [
                opt(col("Option1 Value")),
                opt(col("Option2 Value")),
                opt(col("Option3 Value")),
            ];
            let sku = opt(col("Variant SKU"));
            let price = col("Variant Price");
            let has_variant =
                options.iter().any(Option::is_some) || sku.is_some() || !price.is_empty();
            if has_variant {
                let price_minor = money::parse_minor(price, shop_currency)
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| {
                        format!("Variant Price {price:?} is not an amount in {shop_currency}")
                    })?;
                let compare_at_minor = match col("Variant Compare At Price") {
                    "" => None,
                    c => Some(
                        money::parse_minor(c, shop_currency)
                            .filter(|p| *p >= 0)
                            .ok_or_else(|| {
                                format!("Variant Compare At Price {c:?} is not an amount")
                            })?,
                    ),
                };
                let grams = match col("Variant Grams") {
                    "" => 0,
                    g => g
                        .parse::<f64>()
                        .ok()
                        .filter(|g| g.is_finite() && *g >= 0.0 && *g < 1e9)
                        .map(|g| g.round() as i32)
                        .ok_or_else(|| format!("Variant Grams {g:?} is not a weight"))?,
                };
                let inventory = match col("Variant Inventory Qty") {
                    "" => None,
                    q => Some(q.parse::<i32>().map_err(|_| {
                        format!("Variant Inventory Qty {q:?} is not a whole number")
                    })?),
                };
                let policy = match col("Variant Inventory Policy")
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "" | "deny" => "DENY",
                    "continue" => "CONTINUE",
                    other => {
                        return Err(format!(
                            "Variant Inventory Policy {other:?} is not deny or continue"
                        ));
                    }
                };
                if let Some(sku) = &sku {
                    if let Some(owner) = skus.get(sku)
                        && owner != &handle
                    {
                        return Err(format!(
                            "Variant SKU {sku:?} is already used by product {owner:?}"
                        ));
                    }
                    if draft.variants.iter().any(|v| v.sku.as_ref() == Some(sku)) {
                        return Err(format!(
                            "Variant SKU {sku:?} appears twice in product {handle:?}"
                        ));
                    }
                }
                if draft
                    .variants
                    .iter()
                    .any(|v| v.options == options && v.sku.is_none() && sku.is_none())
                {
                    return Err("a variant with the same option values already exists".into());
                }
                if draft.variants.len() >= 100 {
                    return Err("a product has at most 100 variants".into());
                }
                let weight_unit = weight_unit(col("Variant Weight Unit"))?.to_string();
                let requires_shipping = parse_bool(col("Variant Requires Shipping"), true)
                    .map_err(|e| format!("Variant Requires Shipping: {e}"))?;
                let taxable = parse_bool(col("Variant Taxable"), true)
                    .map_err(|e| format!("Variant Taxable: {e}"))?;
                if let Some(sku) = &sku {
                    skus.insert(sku.clone(), handle.clone());
                }
                draft.variants.push(VariantDraft {
                    sku,
                    options,
                    grams,
                    weight_unit,
                    requires_shipping,
                    taxable,
                    inventory_policy: policy.to_string(),
                    barcode: opt(col("Variant Barcode")),
                    price_minor,
                    compare_at_minor,
                    inventory,
                    image_url: opt(col("Variant Image")),
                });
            }
            Ok(())
        })();
        if let Err(reason) = result {
            // A product whose first row is bad is rejected whole, with its later rows.
            if first_row {
                products.remove(&handle);
                order.retain(|h| h != &handle);
                failed_handles.push(handle.clone());
            }
            rejected.push((line, reason));
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|h| products.remove(&h))
        .map(|p| (p.line, p.draft))
        .collect())
}

/// Imports a CSV file into the catalog, calling `progress(done, total)` after each
/// product (total = products in the file).
pub async fn import(
    conn: &mut AsyncPgConnection,
    reader: impl Read,
    shop_currency: &str,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    let drafts = parse(reader, shop_currency, &mut report.rejected)?;
    let location = crate::inventory::default_location(conn).await?;
    let total = drafts.len() as u64;
    progress(0, total);
    for (done, (line, mut draft)) in drafts.into_iter().enumerate() {
        draft.ensure_default_variant();
        match upsert_product(conn, &draft, shop_currency, location).await {
            Ok(counts) => report.counts += counts,
            Err(e) => report
                .rejected
                .push((line, format!("product {:?} not saved: {e}", draft.handle))),
        }
        progress(done as u64 + 1, total);
    }
    report.rejected.sort_by_key(|(line, _)| *line);
    Ok(report)
}
