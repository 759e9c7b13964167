//! Shopify product CSV import: products, variants, options, images and stock land where
//! the storefront reads them; bad rows are reported by line; re-importing never duplicates.

mod common;

use common::*;
use serde_json::json;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/csv/products.csv"
);

async fn import(db: &TestDb) -> commerce_gateway::catalog::import::ImportReport {
    let mut conn = db.conn().await;
    let file = std::fs::File::open(FIXTURE).unwrap();
    commerce_gateway::catalog::import::import(&mut conn, file, "USD", &mut |_, _| {})
        .await
        .expect("import")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shopify_csv_imports_and_bad_rows_are_reported_by_line() {
    let db = TestDb::new(0).await;
    let report = import(&db).await;
    let c = report.counts;
    assert_eq!((c.products_created, c.products_updated), (3, 0), "{report}");
    assert_eq!((c.variants_created, c.variants_updated), (5, 0), "{report}");
    assert_eq!((c.images_created, c.images_updated), (3, 0), "{report}");
    let lines: Vec<u64> = report.rejected.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![6, 7, 9], "{report}");
    assert!(report.rejected[0].1.contains("Variant Price"), "{report}");
    assert!(report.rejected[1].1.contains("Handle"), "{report}");
    assert!(
        report.rejected[2].1.contains("Variant Inventory Policy"),
        "{report}"
    );

    let server = TestServer::start(config(&db)).await;
    let q = "query($h: String!) { product(handle: $h) { title description descriptionHtml vendor productType tags
        options { name values } seo { title description }
        priceRange { minVariantPrice { amount } maxVariantPrice { amount } }
        images(first: 5) { nodes { url altText } }
        variants(first: 5) { nodes { sku title price { amount } compareAtPrice { amount } availableForSale quantityAvailable weight weightUnit selectedOptions { name value } image { url } } } } }";
    let data = server.data(q, json!({ "h": "linen-camp-shirt" })).await;
    let p = &data["product"];
    assert_eq!(p["title"], "Linen Camp Shirt");
    assert_eq!(p["description"], "A relaxed linen shirt & a camp collar.");
    assert_eq!(p["vendor"], "Harbor & Pine");
    assert_eq!(p["tags"], json!(["summer", "linen", "sale"]));
    assert_eq!(
        p["options"],
        json!([{ "name": "Size", "values": ["S", "M", "L"] }, { "name": "Color", "values": ["Sand", "Olive"] }])
    );
    assert_eq!(p["seo"]["title"], "Linen Camp Shirt | Harbor & Pine");
    assert_eq!(p["priceRange"]["minVariantPrice"]["amount"], "58.00");
    assert_eq!(p["priceRange"]["maxVariantPrice"]["amount"], "61.50");
    assert_eq!(p["images"]["nodes"].as_array().unwrap().len(), 2);
    let v = p["variants"]["nodes"].as_array().unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["sku"], "LCS-S-SAND");
    assert_eq!(v[0]["title"], "S / Sand");
    assert_eq!(v[0]["compareAtPrice"]["amount"], "72.00");
    assert_eq!(v[0]["quantityAvailable"], 12);
    assert_eq!(v[0]["weight"], 220.0);
    assert_eq!(v[0]["weightUnit"], "GRAMS");
    assert_eq!(v[1]["availableForSale"], false, "0 in stock, deny");
    assert_eq!(v[2]["availableForSale"], true, "0 in stock, continue");
    assert_eq!(
        v[2]["selectedOptions"],
        json!([{ "name": "Size", "value": "L" }, { "name": "Color", "value": "Olive" }])
    );
    assert_eq!(
        v[2]["image"]["url"],
        "https://img.test/linen-camp-shirt-2.jpg"
    );

    // Unpublished (Published=false, Status=draft) products are not on the storefront.
    assert!(server.data(q, json!({ "h": "wool-beanie" })).await["product"].is_null());
    assert_eq!(
        db.count("SELECT count(*) AS n FROM product_variants WHERE sku = 'BEANIE-CH'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reimporting_updates_by_handle_and_sku_and_never_duplicates() {
    let db = TestDb::new(0).await;
    import(&db).await;
    db.run_sql("UPDATE variant_prices SET amount_minor = 1 WHERE variant_id = (SELECT id FROM product_variants WHERE sku = 'MUG-001')").await;
    let tables = [
        "products",
        "product_variants",
        "product_images",
        "product_options",
        "variant_prices",
        "inventory_levels",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(db.count(&format!("SELECT count(*) AS n FROM {t}")).await);
    }
    let report = import(&db).await;
    let c = report.counts;
    assert_eq!((c.products_created, c.products_updated), (0, 3), "{report}");
    assert_eq!((c.variants_created, c.variants_updated), (0, 5), "{report}");
    assert_eq!((c.images_created, c.images_updated), (0, 3), "{report}");
    for (t, n) in tables.iter().zip(before) {
        assert_eq!(
            db.count(&format!("SELECT count(*) AS n FROM {t}")).await,
            n,
            "{t} changed size"
        );
    }
    // The file's price is restored.
    assert_eq!(
        db.count("SELECT amount_minor AS n FROM variant_prices WHERE variant_id = (SELECT id FROM product_variants WHERE sku = 'MUG-001')").await,
        2400
    );
}

#[test]
fn the_import_command_prints_a_summary() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::new(0));
    let output = common::gateway_command()
        .args(["import", FIXTURE])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run import");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("products: 3 created, 0 updated"),
        "{stdout}"
    );
    assert!(stdout.contains("rows rejected: 3"), "{stdout}");
    assert!(
        stdout.contains("line 6: Variant Price \"twelve\""),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_background_import_runs_in_the_job_queue_and_reports_progress() {
    let db = TestDb::new(0).await;
    let run = |args: &[&str]| shop::cli(&db, args);
    let queued = run(&["import", "--background", FIXTURE]);
    assert!(queued.starts_with("queued import 1;"), "{queued}");
    assert!(run(&["import-status", "1"]).contains("QUEUED"));
    assert_eq!(db.count("SELECT count(*) AS n FROM products").await, 0);

    let mut worker =
        shop::Process::spawn(&db, "worker", &[("JOB_POLL_INTERVAL_MS", "50".into())]).await;
    assert!(
        eventually(std::time::Duration::from_secs(30), || async {
            db.count("SELECT count(*) AS n FROM imports WHERE status = 'DONE'")
                .await
                == 1
        })
        .await,
        "the import finished"
    );
    let status = run(&["import-status", "1"]);
    assert!(status.contains("DONE 3/3 products"), "{status}");
    assert!(status.contains("\"productsCreated\": 3"), "{status}");
    assert_eq!(db.count("SELECT count(*) AS n FROM products").await, 3);
    // The same rows are rejected as by the foreground import.
    let foreground = TestDb::new(0).await;
    let report = import(&foreground).await;
    assert_eq!(
        db.count("SELECT jsonb_array_length(report->'rejected')::int8 AS n FROM imports")
            .await,
        report.rejected.len() as i64
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM jobs").await, 0);
    assert!(worker.terminate().await.success());
}
