//! The number of SQL statements a request sends does not grow with the page size.

mod common;

use common::*;
use serde_json::json;

/// The shape of Next.js Commerce's product listing, with the page size as a variable.
const LISTING: &str = "query($first: Int!) {
  products(first: $first, sortKey: TITLE) {
    edges { node {
      id handle title availableForSale
      options { id name values }
      priceRange { maxVariantPrice { amount currencyCode } minVariantPrice { amount currencyCode } }
      variants(first: 250) { edges { node { id title availableForSale selectedOptions { name value } price { amount currencyCode } } } }
      featuredImage { url altText width height }
      images(first: 20) { edges { node { url altText width height } } }
      seo { title description }
      tags updatedAt
    } }
  }
}";

async fn statements(server: &TestServer, first: i64) -> u64 {
    let body = server.gql(LISTING, json!({ "first": first })).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["products"]["edges"].as_array().unwrap().len() as i64,
        first
    );
    body["extensions"]["stats"]["sqlStatements"]
        .as_u64()
        .expect("stats reported")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_100_products_with_all_relations_takes_a_constant_number_of_statements() {
    let db = TestDb::new(150).await;
    let server = TestServer::start(config(&db)).await;
    // Repeat: batching must not depend on timing.
    for _ in 0..5 {
        let hundred = statements(&server, 100).await;
        let ten = statements(&server, 10).await;
        assert!(
            hundred <= 6,
            "products(first: 100) took {hundred} statements"
        );
        assert_eq!(
            ten, hundred,
            "first: 10 took {ten} statements, first: 100 took {hundred}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cart_of_many_lines_loads_products_in_one_batch() {
    let db = TestDb::new(40).await;
    let server = TestServer::start(config(&db)).await;
    let cart_query = nextjs("getCart");
    let mut counts = Vec::new();
    for lines in [2, 30] {
        let ids = db.count(&format!("SELECT count(*) AS n FROM (SELECT id FROM product_variants ORDER BY id LIMIT {lines}) v")).await;
        assert_eq!(ids, lines);
        let mut conn = db.conn().await;
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        use diesel_async::RunQueryDsl;
        let variants: Vec<Id> = diesel::sql_query(format!(
            "SELECT id FROM product_variants ORDER BY id LIMIT {lines}"
        ))
        .load(&mut conn)
        .await
        .unwrap();
        let lines: Vec<_> = variants.iter().map(|v| json!({ "merchandiseId": format!("gid://shopify/ProductVariant/{}", v.id), "quantity": 1 })).collect();
        let created = server
            .data("mutation($l: [CartLineInput!]) { cartCreate(input: { lines: $l }) { cart { id } userErrors { code } } }", json!({ "l": lines }))
            .await;
        let id = created["cartCreate"]["cart"]["id"].clone();
        let body = server.gql(&cart_query, json!({ "cartId": id })).await;
        assert!(body.get("errors").is_none(), "{body}");
        counts.push(
            body["extensions"]["stats"]["sqlStatements"]
                .as_u64()
                .unwrap(),
        );
    }
    assert_eq!(
        counts[0], counts[1],
        "statements for 2 lines vs 30 lines: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_product_pages_of_many_collections_share_one_statement() {
    let db = TestDb::new(60).await;
    let server = TestServer::start(config(&db)).await;
    let q = "query($n: Int!) { collections(first: $n, sortKey: TITLE) { nodes { handle products(first: 5, sortKey: TITLE) { nodes { id } pageInfo { hasNextPage } } } } }";
    let few = server.gql(q, json!({ "n": 2 })).await;
    let many = server.gql(q, json!({ "n": 8 })).await;
    assert!(many.get("errors").is_none(), "{many}");
    let count = |b: &serde_json::Value| b["extensions"]["stats"]["sqlStatements"].as_u64().unwrap();
    assert_eq!(
        count(&few),
        count(&many),
        "statements for 2 vs 8 collections"
    );
    // Each collection's page is what asking for that collection alone gives.
    for c in many["data"]["collections"]["nodes"].as_array().unwrap() {
        let alone = server
            .data(
                "query($h: String!) { collection(handle: $h) { products(first: 5, sortKey: TITLE) { nodes { id } pageInfo { hasNextPage } } } }",
                json!({ "h": c["handle"] }),
            )
            .await;
        assert_eq!(
            alone["collection"]["products"], c["products"],
            "collection {}",
            c["handle"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_collections_of_many_products_share_one_statement() {
    let db = TestDb::new(40).await;
    let server = TestServer::start(config(&db)).await;
    let q = "query($n: Int!) { products(first: $n, sortKey: ID) { nodes { id collections(first: 5) { nodes { handle } } } } }";
    let few = server.gql(q, json!({ "n": 3 })).await;
    let many = server.gql(q, json!({ "n": 30 })).await;
    assert!(many.get("errors").is_none(), "{many}");
    let count = |b: &serde_json::Value| b["extensions"]["stats"]["sqlStatements"].as_u64().unwrap();
    assert_eq!(count(&few), count(&many), "statements for 3 vs 30 products");
    let mut conn = db.conn().await;
    #[derive(diesel::QueryableByName)]
    struct Handles {
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
        handles: Vec<String>,
    }
    use diesel_async::RunQueryDsl;
    for p in many["data"]["products"]["nodes"].as_array().unwrap() {
        let id: i64 = p["id"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let expected: Handles = diesel::sql_query(format!(
            "SELECT COALESCE((SELECT array_agg(handle ORDER BY title, id) FROM (SELECT c.handle, c.title, c.id FROM collections c JOIN collection_products cp ON cp.collection_id = c.id WHERE cp.product_id = {id} AND c.published ORDER BY c.title, c.id LIMIT 5) x), '{{}}') AS handles"
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        let got: Vec<&str> = p["collections"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["handle"].as_str().unwrap())
            .collect();
        assert_eq!(got, expected.handles, "collections of product {id}");
    }
}
