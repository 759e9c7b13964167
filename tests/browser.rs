//! The hosted checkout in a real headless browser: Debian's Chromium, driven through
//! ChromeDriver's W3C WebDriver protocol (plain JSON over HTTP, spoken here with reqwest).
//! `.ci/run` installs the `chromium` and `chromium-driver` packages.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::shop::{cart_with, free_port, stocked_variant};
use common::{TestDb, TestServer, config, eventually};
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start() -> Self {
        let port = free_port();
        let driver = tokio::process::Command::new(
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver (Debian package chromium-driver) must be installed");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let ready = eventually(Duration::from_secs(20), || async {
            http.get(format!("{base}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(ready, "chromedriver did not start");
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
                }
            } } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        let browser = Self {
            http,
            session,
            base,
            _driver: driver,
        };
        // A click that submits a form may return before the next page is there: element
        // look-ups wait for it (up to 10 s) instead of failing at once.
        browser
            .command(
                reqwest::Method::POST,
                "/timeouts",
                Some(json!({ "implicit": 10_000, "pageLoad": 30_000 })),
            )
            .await;
        browser
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(reply["value"].get("error").is_none(), "{path}: {reply}");
        reply["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT].as_str().unwrap().to_string()
    }

    async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap()
        .to_string()
    }

    async fn quit(self) {
        self.http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await
            .ok();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buyer_completes_the_hosted_checkout_in_a_real_browser() {
    let db = TestDb::new(0).await;
    let lamp = stocked_variant(&db, "lamp", 4500, "DENY", &[2]).await;
    let server = TestServer::start(config(&db)).await;
    let cart = cart_with(&server.client, &server.url(""), &[(&lamp.gid, 2)]).await;
    let shown = server
        .data(
            "query($id: ID!) { cart(id: $id) { checkoutUrl } }",
            json!({ "id": cart }),
        )
        .await;
    let checkout_url = shown["cart"]["checkoutUrl"].as_str().unwrap();
    let path = checkout_url
        .strip_prefix("http://shop.test")
        .expect("checkoutUrl on SHOP_URL");

    let browser = Browser::start().await;
    browser.goto(&server.url(path)).await;
    assert_eq!(browser.text("h1").await, "Checkout");

    // First attempt with a mistake: the page says what is wrong, in an alert region.
    browser.fill("#email", "ada-at-example.com").await;
    browser.fill("#firstName", "Ada").await;
    browser.fill("#lastName", "Lovelace").await;
    browser.fill("#address1", "12 Rue de la Paix").await;
    browser.fill("#city", "Paris").await;
    browser.fill("#zip", "75002").await;
    browser.click("#countryCode option[value='FR']").await;
    browser
        .click("input[name='shippingMethod'][value='express']")
        .await;
    browser.click("button[type='submit']").await;
    let alert = browser.text("[role='alert']").await;
    assert!(alert.contains("valid email"), "{alert}");
    assert_eq!(db.count("SELECT count(*) AS n FROM orders").await, 0);

    // Corrected: the other fields kept their values.
    browser.fill("#email", "ada@example.com").await;
    browser.click("button[type='submit']").await;
    let number = browser.text("#order-number").await;
    assert_eq!(number, "#1001");
    assert!(browser.url().await.contains("/orders/"));
    assert_eq!(
        browser.text("#order-status").await,
        "Awaiting payment confirmation"
    );
    browser.quit().await;

    assert_eq!(db.count("SELECT count(*) AS n FROM orders WHERE email = 'ada@example.com' AND shipping_method = 'express' AND shipping_address->>'countryCode' = 'FR' AND total_minor = 9000 + 1500").await, 1);
    assert_eq!(
        db.count("SELECT sum(reserved)::int8 AS n FROM inventory_levels")
            .await,
        2
    );
}
