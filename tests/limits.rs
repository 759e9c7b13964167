//! Abusive documents are rejected before they run, each with the code of its limit, while
//! every Next.js Commerce operation gets through; the cost is reported on every response.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn every_nextjs_commerce_operation_passes_the_default_limits() {
    let db = TestDb::new(3).await;
    let server = TestServer::start(config(&db)).await;
    for op in [
        "getProduct",
        "getProducts",
        "getProductRecommendations",
        "getCollection",
        "getCollections",
        "getCollectionProducts",
        "getMenu",
        "getPage",
        "getPages",
        "getCart",
        "createCart",
        "addToCart",
        "editCartItems",
        "removeFromCart",
    ] {
        let body = server.gql(&nextjs(op), json!({})).await;
        let code = error_code(&body);
        assert!(
            !code.starts_with("MAX_") && code != "FRAGMENT_CYCLE",
            "{op} hit a limit: {body}"
        );
        assert!(
            body["extensions"]["cost"]["requestedQueryCost"]
                .as_u64()
                .unwrap()
                > 0,
            "{op}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn abusive_documents_are_rejected_with_the_limit_named() {
    let db = TestDb::new(3).await;
    let server = TestServer::start(config(&db)).await;

    // Deep nesting: product → variants → product → variants ...
    let mut deep = String::from("{ products(first: 1) { nodes { id } } p: product(handle: \"x\") ");
    let mut tail = String::new();
    for _ in 0..10 {
        deep.push_str("{ variants(first: 1) { nodes { product ");
        tail.push_str("} } }");
    }
    deep.push_str("{ id }");
    deep.push_str(&tail);
    deep.push('}');
    let body = server.gql(&deep, json!({})).await;
    assert_eq!(error_code(&body), "MAX_DEPTH_EXCEEDED", "{body}");

    let aliases: String = (0..40)
        .map(|i| format!("a{i}: products(first: 1) {{ nodes {{ id }} }} "))
        .collect();
    let body = server.gql(&format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(error_code(&body), "MAX_ALIASES_EXCEEDED", "{body}");

    let body = server
        .gql("{ products(first: 250) { nodes { collections(first: 250) { nodes { products(first: 250) { nodes { id } } } } } } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "MAX_COST_EXCEEDED", "{body}");

    let cyclic = "query { products(first: 1) { nodes { ...A } } } fragment A on Product { variants(first: 1) { nodes { product { ...B } } } } fragment B on Product { ...A }";
    let body = server.gql(cyclic, json!({})).await;
    assert_eq!(error_code(&body), "FRAGMENT_CYCLE", "{body}");

    let huge = format!(
        "{{ products(first: 1) {{ nodes {{ {} }} }} }}",
        "id ".repeat(20_000)
    );
    let body = server.gql(&huge, json!({})).await;
    assert_eq!(error_code(&body), "MAX_TOKENS_EXCEEDED", "{body}");

    let many_roots = format!(
        "{{ {} }}",
        (0..25).map(|_| "__typename").collect::<Vec<_>>().join(" ")
    );
    let body = server.gql(&many_roots, json!({})).await;
    assert_eq!(error_code(&body), "MAX_ROOT_FIELDS_EXCEEDED", "{body}");

    let body = server
        .gql("{ products(first: 251) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "MAX_PAGE_SIZE_EXCEEDED", "{body}");
    let body = server
        .gql(
            "query($n: Int) { products(first: 1) { nodes { variants(last: $n) { nodes { id } } } } }",
            json!({ "n": 1000 }),
        )
        .await;
    assert_eq!(error_code(&body), "MAX_PAGE_SIZE_EXCEEDED", "{body}");
    let body = server.gql("{ products { nodes { id } } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");

    // Fragments that double at each level: refused quickly, not expanded 2^40 times.
    let mut doubling = String::from("query { ...F0 }");
    for i in 0..40 {
        doubling.push_str(&format!(
            " fragment F{i} on QueryRoot {{ ...F{} ...F{} }}",
            i + 1,
            i + 1
        ));
    }
    doubling.push_str(" fragment F40 on QueryRoot { __typename }");
    let started = std::time::Instant::now();
    let body = server.gql(&doubling, json!({})).await;
    assert!(error_code(&body).starts_with("MAX_"), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // nodes(ids:) is priced per ID, and aliases inside a connection are each priced.
    let ids: Vec<String> = (1..=250)
        .map(|i| format!("gid://shopify/Collection/{i}"))
        .collect();
    let body = server
        .gql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Collection { products(first: 250) { nodes { variants(first: 250) { nodes { id } } } } } } }",
            json!({ "ids": ids }),
        )
        .await;
    assert_eq!(error_code(&body), "MAX_COST_EXCEEDED", "{body}");
    let aliased: String = (0..10)
        .map(|i| format!("n{i}: nodes {{ variants(first: 250) {{ nodes {{ id }} }} }} "))
        .collect();
    let body = server
        .gql(
            &format!("{{ products(first: 100) {{ {aliased} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "MAX_COST_EXCEEDED", "{body}");

    // A body over MAX_BODY_BYTES never reaches the parser.
    let (status, body) = server
        .post_json(
            "/graphql",
            &json!({ "query": format!("# {}\n{{ __typename }}", "x".repeat(300_000)) }),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test(flavor = "multi_thread")]
async fn requested_and_actual_cost_are_reported() {
    let db = TestDb::new(4).await;
    let server = TestServer::start(config(&db)).await;
    let body = server
        .gql(
            "{ products(first: 10) { nodes { id title variants(first: 5) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    let cost = &body["extensions"]["cost"];
    // 2 + 10 × (1 + (2 + 5 × 1)) = 82 requested; the store has fewer products than asked for.
    assert_eq!(cost["requestedQueryCost"], 82);
    let products = body["data"]["products"]["nodes"].as_array().unwrap();
    let variants: usize = products
        .iter()
        .map(|p| p["variants"]["nodes"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        cost["actualQueryCost"].as_u64().unwrap() as usize,
        2 + products.len() * 3 + variants
    );
    assert!(cost["actualQueryCost"].as_u64().unwrap() < 82);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_and_introspection_follow_the_configuration() {
    let db = TestDb::new(2).await;
    let mut cfg = config(&db);
    cfg.limits.max_depth = 3;
    cfg.server.introspection = false;
    let server = TestServer::start(cfg).await;
    let body = server
        .gql(
            "{ products(first: 1) { nodes { featuredImage { url } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "MAX_DEPTH_EXCEEDED");
    let body = server
        .gql("{ __schema { types { name } } }", json!({}))
        .await;
    assert!(
        body["data"]["__schema"].is_null(),
        "introspection must be off: {body}"
    );
    let on = TestServer::start(config(&db)).await;
    let body = on
        .gql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "QueryRoot");
}

#[tokio::test(flavor = "multi_thread")]
async fn fragments_that_double_at_every_level_are_refused_before_they_run() {
    let db = TestDb::new(1).await;
    let server = TestServer::start(config(&db)).await;
    // 40 fragments, each spreading the next twice: under a kilobyte, 2^40 fields to
    // execute. Priced once per fragment, it is cheap; expanded, it is refused.
    let mut doc = String::from("{ products(first: 1) { nodes { ...F0 } } }\n");
    for i in 0..40 {
        doc.push_str(&format!(
            "fragment F{i} on Product {{ ...F{n} ...F{n} }}\n",
            n = i + 1
        ));
    }
    doc.push_str("fragment F40 on Product { id }\n");
    let started = std::time::Instant::now();
    let body = server.gql(&doc, serde_json::json!({})).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(common::error_code(&body), "MAX_FIELDS_EXCEEDED", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("MAX_QUERY_FIELDS")
    );
}
