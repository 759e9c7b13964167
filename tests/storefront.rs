//! The storefront API as Next.js Commerce and other Storefront API clients use it.

mod common;

use common::*;
use serde_json::{Value, json};

async fn first_product(server: &TestServer) -> Value {
    let data = server
        .data("{ products(first: 1, sortKey: TITLE) { nodes { id handle title variants(first: 5) { nodes { id } } } } }", json!({}))
        .await;
    data["products"]["nodes"][0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn nextjs_commerce_catalog_operations_work_verbatim() {
    let db = TestDb::new(60).await;
    let server = TestServer::start(config(&db)).await;

    let products = server
        .data(
            &nextjs("getProducts"),
            json!({ "sortKey": "PRICE", "reverse": true }),
        )
        .await;
    let edges = products["products"]["edges"].as_array().unwrap();
    let published = db
        .count(
            "SELECT count(*) AS n FROM products WHERE status = 'ACTIVE' AND published_at <= now()",
        )
        .await;
    assert_eq!(edges.len() as i64, published.min(100));
    // Sorted by price, dearest first.
    let prices: Vec<f64> = edges
        .iter()
        .map(|e| {
            e["node"]["priceRange"]["minVariantPrice"]["amount"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        prices.windows(2).all(|w| w[0] >= w[1]),
        "not sorted by price: {prices:?}"
    );
    let node = &edges[0]["node"];
    assert!(!node["variants"]["edges"].as_array().unwrap().is_empty());
    assert!(!node["images"]["edges"].as_array().unwrap().is_empty());
    assert_eq!(
        node["featuredImage"]["url"],
        node["images"]["edges"][0]["node"]["url"]
    );
    assert_eq!(node["priceRange"]["minVariantPrice"]["currencyCode"], "USD");

    // Search term, as the search page sends it, and the sitemap's call without variables.
    let shirts = server
        .data(
            &nextjs("getProducts"),
            json!({ "query": "shirt", "sortKey": "RELEVANCE", "reverse": false }),
        )
        .await;
    for e in shirts["products"]["edges"].as_array().unwrap() {
        assert!(
            e["node"]["title"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("shirt")
        );
    }
    server.data(&nextjs("getProducts"), json!({})).await;

    let handle = node["handle"].as_str().unwrap();
    let product = server
        .data(&nextjs("getProduct"), json!({ "handle": handle }))
        .await;
    assert_eq!(product["product"]["id"], node["id"]);
    assert!(product["product"]["seo"]["title"].as_str().is_some());
    let none = server
        .data(
            &nextjs("getProduct"),
            json!({ "handle": "no-such-product" }),
        )
        .await;
    assert!(none["product"].is_null());

    let recs = server
        .data(
            &nextjs("getProductRecommendations"),
            json!({ "productId": node["id"] }),
        )
        .await;
    let recs = recs["productRecommendations"].as_array().unwrap();
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r["id"] != node["id"]));

    let collections = server.data(&nextjs("getCollections"), json!(null)).await;
    let titles: Vec<&str> = collections["collections"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap())
        .collect();
    let mut sorted = titles.clone();
    sorted.sort();
    assert_eq!(titles, sorted);
    assert!(titles.contains(&"Apparel"));

    let collection = server
        .data(&nextjs("getCollection"), json!({ "handle": "apparel" }))
        .await;
    assert_eq!(collection["collection"]["handle"], "apparel");
    let members = db
        .count("SELECT count(*) AS n FROM collection_products cp JOIN collections c ON c.id = cp.collection_id JOIN products p ON p.id = cp.product_id WHERE c.handle = 'apparel' AND p.status = 'ACTIVE'")
        .await;
    for sort in ["CREATED", "PRICE", "BEST_SELLING", "RELEVANCE"] {
        let page = server
            .data(
                &nextjs("getCollectionProducts"),
                json!({ "handle": "apparel", "sortKey": sort, "reverse": true }),
            )
            .await;
        assert_eq!(
            page["collection"]["products"]["edges"]
                .as_array()
                .unwrap()
                .len() as i64,
            members.min(100),
            "{sort}"
        );
    }
    // The home page carousel: only a handle.
    server
        .data(
            &nextjs("getCollectionProducts"),
            json!({ "handle": "frontpage" }),
        )
        .await;

    let menu = server
        .data(&nextjs("getMenu"), json!({ "handle": "main-menu" }))
        .await;
    let items = menu["menu"]["items"].as_array().unwrap();
    assert_eq!(items[1]["url"], "http://shop.test/collections/apparel");
    assert!(
        server
            .data(&nextjs("getMenu"), json!({ "handle": "nope" }))
            .await["menu"]
            .is_null()
    );

    let page = server
        .data(&nextjs("getPage"), json!({ "handle": "about" }))
        .await;
    assert_eq!(page["pageByHandle"]["title"], "About us");
    let pages = server.data(&nextjs("getPages"), json!(null)).await;
    assert_eq!(pages["pages"]["edges"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn nextjs_commerce_cart_operations_price_on_the_server() {
    let db = TestDb::new(20).await;
    let server = TestServer::start(config(&db)).await;
    let product = first_product(&server).await;
    let variant = product["variants"]["nodes"][0]["id"].clone();
    let variant_id: i64 = variant
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let price = db.count(&format!("SELECT amount_minor AS n FROM variant_prices WHERE variant_id = {variant_id} AND currency = 'USD'")).await;

    let created = server.data(&nextjs("createCart"), json!(null)).await;
    let cart_id = created["cartCreate"]["cart"]["id"].clone();
    assert_eq!(created["cartCreate"]["cart"]["totalQuantity"], 0);
    assert!(
        created["cartCreate"]["cart"]["checkoutUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://shop.test/checkouts/")
    );

    let added = server
        .data(
            &nextjs("addToCart"),
            json!({ "cartId": cart_id, "lines": [{ "merchandiseId": variant, "quantity": 2 }] }),
        )
        .await;
    let cart = &added["cartLinesAdd"]["cart"];
    assert_eq!(cart["totalQuantity"], 2);
    let expected = commerce_gateway::money::format_minor(price * 2, "USD");
    assert_eq!(cart["cost"]["totalAmount"]["amount"], expected.as_str());
    let line = &cart["lines"]["edges"][0]["node"];
    assert_eq!(line["merchandise"]["id"], variant);
    assert_eq!(line["merchandise"]["product"]["handle"], product["handle"]);

    // Adding the same merchandise again merges into one line.
    let again = server
        .data(
            &nextjs("addToCart"),
            json!({ "cartId": cart_id, "lines": [{ "merchandiseId": variant, "quantity": 1 }] }),
        )
        .await;
    assert_eq!(
        again["cartLinesAdd"]["cart"]["lines"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(again["cartLinesAdd"]["cart"]["totalQuantity"], 3);

    // The price changes: the cart follows current prices.
    db.run_sql(&format!("UPDATE variant_prices SET amount_minor = amount_minor + 100 WHERE variant_id = {variant_id}")).await;
    let line_id = line["id"].clone();
    let edited = server
        .data(&nextjs("editCartItems"), json!({ "cartId": cart_id, "lines": [{ "id": line_id, "merchandiseId": variant, "quantity": 4 }] }))
        .await;
    let cart = &edited["cartLinesUpdate"]["cart"];
    assert_eq!(cart["totalQuantity"], 4);
    assert_eq!(
        cart["cost"]["subtotalAmount"]["amount"],
        commerce_gateway::money::format_minor((price + 100) * 4, "USD").as_str()
    );

    let fetched = server
        .data(&nextjs("getCart"), json!({ "cartId": cart_id }))
        .await;
    assert_eq!(fetched["cart"]["totalQuantity"], 4);

    let removed = server
        .data(
            &nextjs("removeFromCart"),
            json!({ "cartId": cart_id, "lineIds": [line_id] }),
        )
        .await;
    assert_eq!(removed["cartLinesRemove"]["cart"]["totalQuantity"], 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM cart_lines").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn not_enough_stock_is_a_warning_and_unknown_merchandise_a_user_error() {
    let db = TestDb::new(5).await;
    let server = TestServer::start(config(&db)).await;
    let variant_id = db.count("SELECT min(id) AS n FROM product_variants").await;
    db.run_sql(&format!(
        "UPDATE inventory_levels SET on_hand = 1 WHERE variant_id = {variant_id}"
    ))
    .await;
    db.run_sql(&format!(
        "UPDATE product_variants SET inventory_policy = 'DENY' WHERE id = {variant_id}"
    ))
    .await;
    let stock = db
        .count(&format!(
            "SELECT sum(on_hand)::int8 AS n FROM inventory_levels WHERE variant_id = {variant_id}"
        ))
        .await;
    let create = "mutation($lines: [CartLineInput!]) { cartCreate(input: { lines: $lines }) { cart { id totalQuantity } userErrors { code field message } warnings { code target message } } }";
    let body = server
        .data(create, json!({ "lines": [{ "merchandiseId": format!("gid://shopify/ProductVariant/{variant_id}"), "quantity": stock + 5 }] }))
        .await;
    let payload = &body["cartCreate"];
    assert_eq!(payload["userErrors"], json!([]));
    assert_eq!(payload["cart"]["totalQuantity"], stock + 5);
    assert_eq!(
        payload["warnings"][0]["code"],
        "MERCHANDISE_NOT_ENOUGH_STOCK"
    );
    assert_eq!(
        payload["warnings"][0]["target"],
        format!("gid://shopify/ProductVariant/{variant_id}")
    );

    let before = db.count("SELECT count(*) AS n FROM carts").await;
    let body = server.data(create, json!({ "lines": [{ "merchandiseId": "gid://shopify/ProductVariant/999999999", "quantity": 1 }] })).await;
    assert!(body["cartCreate"]["cart"].is_null());
    assert_eq!(
        body["cartCreate"]["userErrors"][0]["code"],
        "MERCHANDISE_NOT_FOUND"
    );
    assert_eq!(
        body["cartCreate"]["userErrors"][0]["field"],
        json!(["lines", "0", "merchandiseId"])
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM carts").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn keyset_pagination_walks_every_product_once_in_both_directions() {
    let db = TestDb::new(45).await;
    let server = TestServer::start(config(&db)).await;
    let total = db
        .count("SELECT count(*) AS n FROM products WHERE status = 'ACTIVE'")
        .await as usize;
    let page_query = "query($after: String, $before: String, $first: Int, $last: Int, $sort: ProductSortKeys, $reverse: Boolean) {
        products(first: $first, after: $after, last: $last, before: $before, sortKey: $sort, reverse: $reverse) {
          edges { cursor node { id title } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
    for sort in [
        "TITLE",
        "PRICE",
        "CREATED_AT",
        "UPDATED_AT",
        "BEST_SELLING",
        "ID",
        "VENDOR",
    ] {
        for reverse in [false, true] {
            let mut seen = Vec::new();
            let mut after = Value::Null;
            loop {
                let data = server
                    .data(
                        page_query,
                        // 13 and 14 (below) fall between the LIMIT steps: the statement
                        // fetches more rows than the page, and the page is cut from them.
                        json!({ "first": 13, "after": after, "sort": sort, "reverse": reverse }),
                    )
                    .await;
                let conn = &data["products"];
                for e in conn["edges"].as_array().unwrap() {
                    seen.push(e["node"]["id"].as_str().unwrap().to_string());
                }
                if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                    break;
                }
                after = conn["pageInfo"]["endCursor"].clone();
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                seen.len(),
                "{sort} reverse={reverse}: a product came twice"
            );
            assert_eq!(
                seen.len(),
                total,
                "{sort} reverse={reverse}: products were skipped"
            );

            // Backwards from the end gives the same order.
            let mut back = Vec::new();
            let mut before = Value::Null;
            loop {
                let data = server
                    .data(
                        page_query,
                        json!({ "last": 14, "before": before, "sort": sort, "reverse": reverse }),
                    )
                    .await;
                let conn = &data["products"];
                let ids: Vec<String> = conn["edges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["node"]["id"].as_str().unwrap().to_string())
                    .collect();
                back.splice(0..0, ids);
                if !conn["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
                    break;
                }
                before = conn["pageInfo"]["startCursor"].clone();
            }
            assert_eq!(
                back, seen,
                "{sort} reverse={reverse}: backward pages differ"
            );
        }
    }
    // A cursor from another sort key is rejected.
    let data = server
        .data(page_query, json!({ "first": 2, "sort": "TITLE" }))
        .await;
    let cursor = data["products"]["pageInfo"]["endCursor"].clone();
    let body = server
        .gql(
            page_query,
            json!({ "first": 2, "after": cursor, "sort": "PRICE" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_syntax_filters_products() {
    let db = TestDb::new(80).await;
    let server = TestServer::start(config(&db)).await;
    let ids = |data: &Value| -> Vec<i64> {
        let mut v: Vec<i64> = data["products"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                n["id"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        v.sort();
        v
    };
    let q = "query($q: String) { products(first: 250, query: $q) { nodes { id } } }";
    let sql_ids = |cond: &str| {
        format!(
            "SELECT COALESCE(array_agg(id ORDER BY id), '{{}}') AS ids FROM products p WHERE p.status = 'ACTIVE' AND {cond}"
        )
    };
    let cases = [
        ("tag:sale", "'sale' = ANY(p.tags)"),
        ("-tag:sale", "NOT 'sale' = ANY(p.tags)"),
        ("vendor:\"Harbor & Pine\"", "p.vendor = 'Harbor & Pine'"),
        (
            "product_type:Mug OR product_type:Lamp",
            "p.product_type IN ('Mug', 'Lamp')",
        ),
        ("title:classic", "p.title ILIKE '%classic%'"),
        ("price:>100", "p.max_price_minor > 10000"),
        (
            "price:<=20 tag:apparel",
            "p.min_price_minor <= 2000 AND 'apparel' = ANY(p.tags)",
        ),
        (
            "available_for_sale:true",
            "EXISTS (SELECT 1 FROM product_variants v WHERE v.product_id = p.id AND (v.inventory_policy = 'CONTINUE' OR (SELECT sum(on_hand - reserved) FROM inventory_levels i WHERE i.variant_id = v.id) > 0))",
        ),
    ];
    let mut conn = db.conn().await;
    for (query, cond) in cases {
        #[derive(diesel::QueryableByName)]
        struct Ids {
            #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::BigInt>)]
            ids: Vec<i64>,
        }
        use diesel_async::RunQueryDsl;
        let expected: Ids = diesel::sql_query(sql_ids(cond))
            .get_result(&mut conn)
            .await
            .unwrap();
        let got = server.data(q, json!({ "q": query })).await;
        assert_eq!(ids(&got), expected.ids, "query {query:?}");
    }
    for bad in [
        "(title:a",
        "nosuchfield:x",
        "price:abc",
        "available_for_sale:maybe",
    ] {
        let body = server.gql(q, json!({ "q": bad })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_context_country_selects_the_currency() {
    let db = TestDb::new(5).await;
    let server = TestServer::start(config(&db)).await;
    let q = "query($c: CountryCode) @inContext(country: $c) { products(first: 1, sortKey: ID) { nodes { id priceRange { minVariantPrice { amount currencyCode } } variants(first: 1) { nodes { price { amount currencyCode } } } } } }";
    let usd = server.data(q, json!({ "c": "US" })).await;
    let eur = server.data(q, json!({ "c": "DE" })).await;
    let jpy = server.data("query @inContext(country: JP) { products(first: 1, sortKey: ID) { nodes { variants(first: 1) { nodes { id price { amount currencyCode } } } } } }", json!({})).await;
    assert_eq!(
        usd["products"]["nodes"][0]["variants"]["nodes"][0]["price"]["currencyCode"],
        "USD"
    );
    assert_eq!(
        eur["products"]["nodes"][0]["variants"]["nodes"][0]["price"]["currencyCode"],
        "EUR"
    );
    assert_eq!(
        eur["products"]["nodes"][0]["priceRange"]["minVariantPrice"]["currencyCode"],
        "EUR"
    );
    let yen = &jpy["products"]["nodes"][0]["variants"]["nodes"][0];
    assert_eq!(yen["price"]["currencyCode"], "JPY");
    let vid: i64 = yen["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let amount = db.count(&format!("SELECT amount_minor AS n FROM variant_prices WHERE variant_id = {vid} AND currency = 'JPY'")).await;
    assert_eq!(yen["price"]["amount"], amount.to_string());
    // A country whose currency the catalog lacks falls back to the shop currency.
    let br = server.data(q, json!({ "c": "BR" })).await;
    assert_eq!(
        br["products"]["nodes"][0]["variants"]["nodes"][0]["price"]["currencyCode"],
        "USD"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_images_and_the_shopify_path() {
    let db = TestDb::new(5).await;
    let mut cfg = config(&db);
    cfg.shop.image_url_template = "https://img.test/w={width},f={format}/{url}".into();
    let server = TestServer::start(cfg).await;
    let product = first_product(&server).await;
    let variant = product["variants"]["nodes"][0]["id"].clone();
    let q = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Product { handle } ... on ProductVariant { product { id } } } }";
    let data = server
        .data(
            q,
            json!({ "ids": [product["id"], variant, "gid://shopify/Product/99999999"] }),
        )
        .await;
    assert_eq!(data["nodes"][0]["__typename"], "Product");
    assert_eq!(data["nodes"][0]["handle"], product["handle"]);
    assert_eq!(data["nodes"][1]["product"]["id"], product["id"]);
    assert!(data["nodes"][2].is_null());
    let menu = server
        .data("{ menu(handle: \"main-menu\") { id title } }", json!({}))
        .await;
    let by_node = server
        .data(
            "query($id: ID!) { node(id: $id) { ... on Menu { title } } }",
            json!({ "id": menu["menu"]["id"] }),
        )
        .await;
    assert_eq!(by_node["node"]["title"], menu["menu"]["title"]);

    let q = "query($h: String!) { product(handle: $h) { featuredImage { url original: url transform: url(transform: { maxWidth: 300, scale: 2, preferredContentType: WEBP }) } } }";
    let data = server.data(q, json!({ "h": product["handle"] })).await;
    let image = &data["product"]["featuredImage"];
    assert_eq!(
        image["transform"],
        format!(
            "https://img.test/w=600,f=webp/{}",
            image["original"].as_str().unwrap()
        )
    );

    // The path Shopify Storefront API clients call, with their token header; GET works too.
    let response = server
        .client
        .post(server.url("/api/2025-01/graphql.json"))
        .header("X-Shopify-Storefront-Access-Token", "public-token")
        .json(&json!({ "query": "{ products(first: 1, sortKey: TITLE) { nodes { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["products"]["nodes"][0]["id"], product["id"]);
    let get: Value = server
        .client
        .get(server.url("/graphql"))
        .query(&[(
            "query",
            "{ products(first: 1, sortKey: TITLE) { nodes { id } } }",
        )])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(get["data"]["products"]["nodes"][0]["id"], product["id"]);
    let html = server
        .client
        .get(server.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.to_lowercase().contains("graphiql"));
}

#[test]
fn schema_graphql_matches_the_served_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let committed = std::fs::read_to_string(path).expect("schema.graphql");
    assert!(
        committed == commerce_gateway::graphql::sdl(),
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn variants_and_images_keep_their_merchant_order_across_a_batch() {
    let db = TestDb::new(40).await;
    // Scramble the positions so that position order differs from id order.
    db.run_sql("UPDATE product_variants SET position = (id * 7919) % 101")
        .await;
    db.run_sql("UPDATE product_images SET position = (id * 104729) % 97")
        .await;
    let server = TestServer::start(config(&db)).await;
    let data = server
        .data(
            "{ products(first: 40, sortKey: TITLE) { nodes { id featuredImage { url } images(first: 20) { nodes { url } } variants(first: 250) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    let mut conn = db.conn().await;
    #[derive(diesel::QueryableByName)]
    struct Ordered {
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
        items: Vec<String>,
    }
    use diesel_async::RunQueryDsl;
    for product in data["products"]["nodes"].as_array().unwrap() {
        let id: i64 = product["id"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let variants: Ordered = diesel::sql_query(format!(
            "SELECT COALESCE(array_agg('gid://shopify/ProductVariant/' || id ORDER BY position, id), '{{}}') AS items FROM product_variants WHERE product_id = {id}"
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        let images: Ordered = diesel::sql_query(format!(
            "SELECT COALESCE(array_agg(url ORDER BY position, id), '{{}}') AS items FROM product_images WHERE product_id = {id}"
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        let got_variants: Vec<&str> = product["variants"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        let got_images: Vec<&str> = product["images"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["url"].as_str().unwrap())
            .collect();
        assert_eq!(
            got_variants, variants.items,
            "variant order of product {id}"
        );
        assert_eq!(got_images, images.items, "image order of product {id}");
        assert_eq!(
            product["featuredImage"]["url"],
            images.items[0].as_str(),
            "featured image of product {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn price_ranges_follow_every_price_and_variant_change() {
    let db = TestDb::new(3).await;
    let server = TestServer::start(config(&db)).await;
    let product = db
        .count("SELECT min(id) AS n FROM products WHERE status = 'ACTIVE'")
        .await;
    let q = "query($id: ID!) { product(id: $id) { priceRange { minVariantPrice { amount } maxVariantPrice { amount } } } }";
    let range = |data: Value| {
        let r = &data["product"]["priceRange"];
        (
            r["minVariantPrice"]["amount"].as_str().unwrap().to_string(),
            r["maxVariantPrice"]["amount"].as_str().unwrap().to_string(),
        )
    };
    let gid = format!("gid://shopify/Product/{product}");
    let new_variant = db
        .count(&format!("INSERT INTO product_variants (product_id, title, sku, position) VALUES ({product}, 'Extra', 'EXTRA-1', 99) RETURNING id AS n"))
        .await;
    db.run_sql(&format!("INSERT INTO variant_prices (variant_id, currency, amount_minor) VALUES ({new_variant}, 'USD', 1)")).await;
    assert_eq!(range(server.data(q, json!({ "id": gid })).await).0, "0.01");
    db.run_sql(&format!("UPDATE variant_prices SET amount_minor = 99999999 WHERE variant_id = {new_variant} AND currency = 'USD'")).await;
    assert_eq!(
        range(server.data(q, json!({ "id": gid })).await).1,
        "999999.99"
    );
    db.run_sql(&format!(
        "DELETE FROM product_variants WHERE id = {new_variant}"
    ))
    .await;
    let (lo, hi) = range(server.data(q, json!({ "id": gid })).await);
    let expected_lo = db.count(&format!("SELECT min(amount_minor) AS n FROM variant_prices p JOIN product_variants v ON v.id = p.variant_id WHERE v.product_id = {product} AND currency = 'USD'")).await;
    let expected_hi = db.count(&format!("SELECT max(amount_minor) AS n FROM variant_prices p JOIN product_variants v ON v.id = p.variant_id WHERE v.product_id = {product} AND currency = 'USD'")).await;
    assert_eq!(
        lo,
        commerce_gateway::money::format_minor(expected_lo, "USD")
    );
    assert_eq!(
        hi,
        commerce_gateway::money::format_minor(expected_hi, "USD")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_price_range_never_mixes_currencies_and_unpriced_variants_are_not_for_sale() {
    let db = TestDb::new(3).await;
    let server = TestServer::start(config(&db)).await;
    let product = db.count("SELECT min(product_id) AS n FROM product_variants v JOIN products p ON p.id = v.product_id WHERE p.status = 'ACTIVE' GROUP BY product_id HAVING count(*) > 1 ORDER BY 1 LIMIT 1").await;
    let variant = db
        .count(&format!(
            "SELECT max(id) AS n FROM product_variants WHERE product_id = {product}"
        ))
        .await;
    // One variant loses its euro price: the whole range falls back to dollars.
    db.run_sql(&format!(
        "DELETE FROM variant_prices WHERE variant_id = {variant} AND currency = 'EUR'"
    ))
    .await;
    let q = "query($id: ID!) @inContext(country: DE) { product(id: $id) { priceRange { minVariantPrice { amount currencyCode } maxVariantPrice { amount currencyCode } } } }";
    let data = server
        .data(
            q,
            json!({ "id": format!("gid://shopify/Product/{product}") }),
        )
        .await;
    let range = &data["product"]["priceRange"];
    assert_eq!(range["minVariantPrice"]["currencyCode"], "USD", "{range}");
    assert_eq!(range["maxVariantPrice"]["currencyCode"], "USD", "{range}");

    // A variant with no price at all is not for sale and cannot go in a cart.
    db.run_sql(&format!(
        "DELETE FROM variant_prices WHERE variant_id = {variant}"
    ))
    .await;
    db.run_sql(&format!(
        "UPDATE product_variants SET inventory_policy = 'CONTINUE' WHERE id = {variant}"
    ))
    .await;
    let data = server
        .data(
            "query($id: ID!) { node(id: $id) { ... on ProductVariant { availableForSale } } }",
            json!({ "id": format!("gid://shopify/ProductVariant/{variant}") }),
        )
        .await;
    assert_eq!(data["node"]["availableForSale"], false);
    let body = server
        .data(
            "mutation($l: [CartLineInput!]) { cartCreate(input: { lines: $l }) { cart { id } userErrors { code } } }",
            json!({ "l": [{ "merchandiseId": format!("gid://shopify/ProductVariant/{variant}"), "quantity": 1 }] }),
        )
        .await;
    assert_eq!(
        body["cartCreate"]["userErrors"][0]["code"],
        "MERCHANDISE_NOT_FOUND"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_sessions_keep_generic_plans() {
    use diesel::QueryableByName;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        plan_cache_mode: String,
    }
    let db = TestDb::new(5).await;
    // One connection, so the search below and the check after it share a session.
    let mut cfg = config(&db);
    cfg.db.pool_size = 1;
    let server = TestServer::start(cfg).await;
    let title = first_product(&server).await["title"]
        .as_str()
        .unwrap()
        .to_string();
    let word = title.split_whitespace().next().unwrap();
    // A search is planned for its values, then the session goes back to generic plans.
    let data = server
        .data(
            "query($q: String) { products(first: 5, query: $q) { nodes { title } } }",
            json!({ "q": word }),
        )
        .await;
    assert!(
        data["products"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["title"] == title.as_str()),
        "{data}"
    );
    let mut conn = server.app.db.primary(&Default::default()).await.unwrap();
    let setting: Setting = diesel::sql_query("SHOW plan_cache_mode")
        .get_result(&mut *conn)
        .await
        .unwrap();
    assert_eq!(setting.plan_cache_mode, "force_generic_plan");
}
