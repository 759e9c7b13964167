//! Bad input gets a clear GraphQL error or `userErrors` entry: never a 500, a panic or a
//! changed row. One test per class of bad input.

mod common;

use common::*;
use serde_json::{Value, json};

async fn cart(server: &TestServer, db: &TestDb) -> (Value, i64) {
    let variant = db.count("SELECT min(id) AS n FROM product_variants").await;
    let data = server
        .data(
            "mutation($l: [CartLineInput!]) { cartCreate(input: { lines: $l }) { cart { id lines(first: 5) { nodes { id } } } } }",
            json!({ "l": [{ "merchandiseId": format!("gid://shopify/ProductVariant/{variant}"), "quantity": 1 }] }),
        )
        .await;
    (data["cartCreate"]["cart"].clone(), variant)
}

async fn snapshot(db: &TestDb) -> (i64, i64, i64) {
    (
        db.count("SELECT count(*) AS n FROM carts").await,
        db.count("SELECT COALESCE(sum(quantity), 0)::int8 AS n FROM cart_lines")
            .await,
        db.count("SELECT count(*) AS n FROM cart_lines").await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_a_bad_request_with_a_graphql_error() {
    let db = TestDb::new(1).await;
    let server = TestServer::start(config(&db)).await;
    for body in ["{\"query\": ", "not json", "[1, 2", "{\"query\": 42}"] {
        let response = server
            .client
            .post(server.url("/graphql"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(
            json["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{body}"
        );
    }
    let body = server
        .gql("{ products(first: 1) { nodes { id ", json!({}))
        .await;
    assert!(body["errors"][0]["message"].as_str().unwrap().len() > 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_fields_and_arguments_are_validation_errors() {
    let db = TestDb::new(1).await;
    let server = TestServer::start(config(&db)).await;
    let body = server
        .gql(
            "{ products(first: 1) { nodes { id secretField } } }",
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("secretField"),
        "{body}"
    );
    assert!(body["data"].is_null());
    let body = server
        .gql(
            "{ products(first: 1, bogus: 3) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bogus"),
        "{body}"
    );
    let body = server
        .gql(
            "mutation { cartCreate(input: { lines: [], hacker: true }) { cart { id } } }",
            json!({}),
        )
        .await;
    assert!(!body["errors"].as_array().unwrap().is_empty(), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_variable_types_are_rejected() {
    let db = TestDb::new(1).await;
    let server = TestServer::start(config(&db)).await;
    let before = snapshot(&db).await;
    let q = "query($n: Int!) { products(first: $n) { nodes { id } } }";
    for bad in [json!("ten"), json!(1.5), json!(null), json!(99999999999i64)] {
        let body = server.gql(q, json!({ "n": bad })).await;
        assert!(
            !body["errors"].as_array().unwrap().is_empty(),
            "{bad}: {body}"
        );
    }
    let m = "mutation($l: [CartLineInput!]) { cartCreate(input: { lines: $l }) { cart { id } } }";
    let body = server
        .gql(
            m,
            json!({ "l": [{ "merchandiseId": 12, "quantity": "two" }] }),
        )
        .await;
    assert!(!body["errors"].as_array().unwrap().is_empty(), "{body}");
    assert_eq!(snapshot(&db).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_and_foreign_ids_get_clear_errors() {
    let db = TestDb::new(2).await;
    let server = TestServer::start(config(&db)).await;
    let (cart, _) = cart(&server, &db).await;
    let before = snapshot(&db).await;
    for id in [
        "",
        "42",
        "gid://shopify/Collection/1",
        "gid://other/Product/1",
        "gid://shopify/Product/abc",
        "Z2lkOi8vc2hvcGlmeS9PcmRlci8x",
    ] {
        let body = server
            .gql(
                "query($id: ID!) { product(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{id}: {body}");
    }
    let body = server
        .gql(
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": "gid://shopify/Order/1" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = server
        .gql(
            "query($id: ID!) { cart(id: $id) { id } }",
            json!({ "id": "gid://shopify/Cart/../../etc" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // A well-formed cart ID that does not exist is simply not there.
    let body = server
        .data(
            "query($id: ID!) { cart(id: $id) { id } }",
            json!({ "id": format!("gid://shopify/Cart/{}", "a".repeat(32)) }),
        )
        .await;
    assert!(body["cart"].is_null());

    let add = "mutation($c: ID!, $l: [CartLineInput!]!) { cartLinesAdd(cartId: $c, lines: $l) { cart { id } userErrors { code field } } }";
    let body = server
        .data(add, json!({ "c": "gid://shopify/Product/1", "l": [] }))
        .await;
    assert_eq!(body["cartLinesAdd"]["userErrors"][0]["code"], "INVALID");
    let body = server.data(add, json!({ "c": cart["id"], "l": [{ "merchandiseId": "gid://shopify/Product/1", "quantity": 1 }] })).await;
    assert_eq!(
        body["cartLinesAdd"]["userErrors"][0]["code"],
        "MERCHANDISE_NOT_FOUND"
    );
    let rm = "mutation($c: ID!, $ids: [ID!]!) { cartLinesRemove(cartId: $c, lineIds: $ids) { userErrors { code field } } }";
    let body = server
        .data(
            rm,
            json!({ "c": cart["id"], "ids": ["gid://shopify/CartLine/999999"] }),
        )
        .await;
    assert_eq!(
        body["cartLinesRemove"]["userErrors"][0]["code"],
        "INVALID_MERCHANDISE_LINE"
    );
    assert_eq!(snapshot(&db).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn negative_zero_and_huge_quantities_are_user_errors_and_change_nothing() {
    let db = TestDb::new(2).await;
    let server = TestServer::start(config(&db)).await;
    let (cart, variant) = cart(&server, &db).await;
    let line = cart["lines"]["nodes"][0]["id"].clone();
    let before = snapshot(&db).await;
    let merch = format!("gid://shopify/ProductVariant/{variant}");
    let add = "mutation($c: ID!, $l: [CartLineInput!]!) { cartLinesAdd(cartId: $c, lines: $l) { cart { totalQuantity } userErrors { code field message } } }";
    for (q, code) in [
        (-1, "LESS_THAN"),
        (0, "LESS_THAN"),
        (10_001, "GREATER_THAN"),
        (2_147_483_647, "GREATER_THAN"),
    ] {
        let body = server
            .data(
                add,
                json!({ "c": cart["id"], "l": [{ "merchandiseId": merch, "quantity": q }] }),
            )
            .await;
        assert_eq!(
            body["cartLinesAdd"]["userErrors"][0]["code"], code,
            "{q}: {body}"
        );
        assert_eq!(
            body["cartLinesAdd"]["userErrors"][0]["field"],
            json!(["lines", "0", "quantity"])
        );
    }
    // Two adds that each fit but together exceed the limit on one line.
    let body = server
        .data(
            add,
            json!({ "c": cart["id"], "l": [{ "merchandiseId": merch, "quantity": 10_000 }] }),
        )
        .await;
    assert_eq!(
        body["cartLinesAdd"]["userErrors"][0]["code"], "GREATER_THAN",
        "{body}"
    );
    let update = "mutation($c: ID!, $l: [CartLineUpdateInput!]!) { cartLinesUpdate(cartId: $c, lines: $l) { userErrors { code } } }";
    let body = server
        .data(
            update,
            json!({ "c": cart["id"], "l": [{ "id": line, "quantity": -5 }] }),
        )
        .await;
    assert_eq!(
        body["cartLinesUpdate"]["userErrors"][0]["code"],
        "LESS_THAN"
    );
    let body = server.data(update, json!({ "c": cart["id"], "l": [{ "id": line, "quantity": 3 }, { "id": "gid://shopify/CartLine/1234567", "quantity": 1 }] })).await;
    assert_eq!(
        body["cartLinesUpdate"]["userErrors"][0]["code"],
        "INVALID_MERCHANDISE_LINE"
    );
    // Too many lines at once.
    let many: Vec<Value> = (0..300)
        .map(|_| json!({ "merchandiseId": merch, "quantity": 1 }))
        .collect();
    let body = server
        .data(add, json!({ "c": cart["id"], "l": many }))
        .await;
    assert_eq!(
        body["cartLinesAdd"]["userErrors"][0]["code"],
        "TOO_MANY_LINES"
    );
    assert_eq!(
        snapshot(&db).await,
        before,
        "a rejected mutation changed rows"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_and_forged_cursors_are_rejected_before_the_database() {
    let db = TestDb::new(3).await;
    let server = TestServer::start(config(&db)).await;
    let body = server
        .gql(
            "query($h: String!) { product(handle: $h) { id } }",
            json!({ "h": "a\u{0}b" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let body = server
        .gql("{ product(handle: \"a\\u0000b\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    use base64::Engine;
    let forge = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let q =
        "query($a: String) { products(first: 2, after: $a, sortKey: CREATED_AT) { nodes { id } } }";
    for cursor in [
        forge(r#"{"s":"CREATED_AT","v":9000000000000000000,"i":1}"#),
        forge(r#"{"s":"CREATED_AT","v":"x","i":1}"#),
    ] {
        let body = server.gql(q, json!({ "a": cursor })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    let q = "query($a: String) { products(first: 2, after: $a, sortKey: TITLE) { nodes { id } } }";
    let body = server
        .gql(
            q,
            json!({ "a": forge("{\"s\":\"TITLE\",\"v\":\"a\\u0000\",\"i\":1}") }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn line_updates_whose_outcome_depends_on_their_order_are_refused() {
    let db = TestDb::new(3).await;
    let server = TestServer::start(config(&db)).await;
    let v1 = db.count("SELECT min(id) AS n FROM product_variants").await;
    let v2 = db
        .count(&format!(
            "SELECT min(id) AS n FROM product_variants WHERE id > {v1}"
        ))
        .await;
    let v3 = db
        .count(&format!(
            "SELECT min(id) AS n FROM product_variants WHERE id > {v2}"
        ))
        .await;
    let gid = |v: i64| format!("gid://shopify/ProductVariant/{v}");
    let created = server
        .data(
            "mutation($l: [CartLineInput!]) { cartCreate(input: { lines: $l }) { cart { id lines(first: 5) { nodes { id merchandise { ... on ProductVariant { id } } } } } } }",
            json!({ "l": [{ "merchandiseId": gid(v1), "quantity": 1 }, { "merchandiseId": gid(v2), "quantity": 2 }] }),
        )
        .await;
    let cart = &created["cartCreate"]["cart"];
    let lines = cart["lines"]["nodes"].as_array().unwrap();
    let (a, b) = (lines[0]["id"].clone(), lines[1]["id"].clone());
    let before = snapshot(&db).await;
    let update = "mutation($c: ID!, $l: [CartLineUpdateInput!]!) { cartLinesUpdate(cartId: $c, lines: $l) { userErrors { code field } } }";
    for lines in [
        json!([{ "id": a, "merchandiseId": gid(v2) }, { "id": b, "merchandiseId": gid(v1) }]),
        json!([{ "id": a, "quantity": 3 }, { "id": a, "quantity": 4 }]),
        json!([{ "id": a, "merchandiseId": gid(v3) }, { "id": b, "merchandiseId": gid(v3) }]),
    ] {
        let body = server
            .data(update, json!({ "c": cart["id"], "l": lines }))
            .await;
        assert_eq!(
            body["cartLinesUpdate"]["userErrors"][0]["code"], "INVALID",
            "{lines}: {body}"
        );
        assert_eq!(snapshot(&db).await, before, "{lines} changed the cart");
    }
}
