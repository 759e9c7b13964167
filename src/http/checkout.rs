//! The hosted checkout (`cart.checkoutUrl`) and the order status page.
//!
//! Plain server-rendered HTML forms: they work without JavaScript, every input has a
//! label, errors are listed in an alert region at the top and linked to their fields.
//! The form carries an idempotency key generated when the page was rendered, so a
//! double submit (or a browser resubmitting after a timeout) creates one order.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::app::App;
use crate::cart::{self, CartRules, PricedCart};
use crate::checkout::{Address, CheckoutInput, CheckoutUserError};
use crate::db::{PgConn, StatementCounter};
use crate::orders;
use crate::orders::documents::{escape, lines_table, money};

/// Test payment methods offered by the hosted checkout (the built-in test provider).
const TEST_PAYMENT_METHODS: &[(&str, &str)] = &[
    ("tok_success", "Test card (approved)"),
    ("tok_decline", "Test card (declined)"),
];

fn valid_token(token: &str, len: usize) -> bool {
    token.len() == len && token.chars().all(|c| c.is_ascii_alphanumeric())
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>",
        title = escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    response
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f6f6f7;color:#1a1a1a}\
main{max-width:42rem;margin:2rem auto;background:#fff;padding:2rem;border-radius:8px}\
label{display:block;margin-top:.8rem;font-weight:600}\
input,select{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
fieldset{margin-top:1rem;border:1px solid #ccc;padding:1rem}\
fieldset label{font-weight:normal;display:flex;gap:.5rem;align-items:center}\
fieldset input{width:auto}\
button{margin-top:1.5rem;padding:.8rem 1.5rem;font-size:1.1rem;background:#1a1a1a;color:#fff;border:0;border-radius:4px}\
table{width:100%;border-collapse:collapse;margin:1rem 0}td,th{text-align:left;padding:.3rem;border-bottom:1px solid #eee}\
.errors{border:2px solid #b00020;padding:1rem;color:#b00020}";

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "<h1>Not found</h1><p>This checkout or order does not exist.</p>",
    )
}

fn unavailable(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "hosted checkout: database unavailable");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<h1>Please try again</h1><p>The store is busy right now. Your order was not placed.</p>",
    )
}

fn rules(app: &App) -> CartRules<'_> {
    app.cart_rules()
}

async fn connection(app: &App) -> Result<PgConn, Response> {
    app.db
        .primary(&StatementCounter::default())
        .await
        .map_err(|e| unavailable(&e))
}

fn random_key() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    format!("hosted-{}", hex::encode(bytes))
}

/// The values the form shows (what the buyer typed, or empty).
#[derive(Default)]
struct FormValues(HashMap<String, String>);

impl FormValues {
    fn get(&self, name: &str) -> String {
        escape(self.0.get(name).map(String::as_str).unwrap_or_default())
    }
}

fn text_input(
    values: &FormValues,
    name: &str,
    label: &str,
    kind: &str,
    autocomplete: &str,
    required: bool,
    errors: &[&CheckoutUserError],
) -> String {
    let invalid = errors
        .iter()
        .any(|e| e.field.last().is_some_and(|f| f == name));
    format!(
        "<label for=\"{name}\">{label}{req}</label>\
         <input id=\"{name}\" name=\"{name}\" type=\"{kind}\" autocomplete=\"{autocomplete}\" value=\"{value}\"{required}{invalid}>",
        req = if required { "" } else { " (optional)" },
        value = values.get(name),
        required = if required { " required" } else { "" },
        invalid = if invalid {
            " aria-invalid=\"true\" aria-describedby=\"errors\""
        } else {
            ""
        },
    )
}

fn form_page(
    app: &App,
    cart: &PricedCart,
    values: &FormValues,
    errors: &[CheckoutUserError],
    status: StatusCode,
) -> Response {
    let mut body = String::from("<h1>Checkout</h1>");
    if !errors.is_empty() {
        body.push_str(
            "<div class=\"errors\" id=\"errors\" role=\"alert\" tabindex=\"-1\"><h2>Please fix the following</h2><ul>",
        );
        for e in errors {
            body.push_str(&format!("<li>{}</li>", escape(&e.message)));
        }
        body.push_str("</ul></div>");
    }
    // The order summary.
    body.push_str("<h2>Your order</h2><table><thead><tr><th scope=\"col\">Item</th><th scope=\"col\">Qty</th><th scope=\"col\">Total</th></tr></thead><tbody>");
    for line in &cart.lines {
        let Some(v) = cart.variants.get(&line.variant_id) else {
            continue;
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&v.title),
            line.quantity,
            money(cart.line_total(line), &cart.currency)
        ));
    }
    body.push_str(&format!(
        "</tbody><tfoot><tr><th scope=\"row\" colspan=\"2\">Subtotal</th><td>{}</td></tr></tfoot></table>",
        money(cart.subtotal(), &cart.currency)
    ));
    let field_errors: Vec<&CheckoutUserError> = errors.iter().collect();
    let input = |name: &str, label: &str, kind: &str, autocomplete: &str, required: bool| {
        text_input(
            values,
            name,
            label,
            kind,
            autocomplete,
            required,
            &field_errors,
        )
    };
    body.push_str(&format!(
        "<form method=\"post\" action=\"/checkouts/c/{token}\" novalidate>\
         <input type=\"hidden\" name=\"idempotencyKey\" value=\"{key}\">\
         <h2>Contact</h2>{email}\
         <h2>Shipping address</h2>{first}{last}{address1}{address2}{city}{province}{zip}",
        token = escape(&cart.cart.token),
        key = escape(
            &values
                .0
                .get("idempotencyKey")
                .cloned()
                .unwrap_or_else(random_key)
        ),
        email = input("email", "Email", "email", "email", true),
        first = input("firstName", "First name", "text", "given-name", false),
        last = input("lastName", "Last name", "text", "family-name", true),
        address1 = input("address1", "Street address", "text", "address-line1", true),
        address2 = input(
            "address2",
            "Apartment, suite, etc.",
            "text",
            "address-line2",
            false
        ),
        city = input("city", "City", "text", "address-level2", true),
        province = input(
            "province",
            "State or province",
            "text",
            "address-level1",
            false
        ),
        zip = input("zip", "Postal code", "text", "postal-code", true),
    ));
    let chosen_country = values
        .0
        .get("countryCode")
        .cloned()
        .unwrap_or_else(|| "US".into());
    body.push_str("<label for=\"countryCode\">Country</label><select id=\"countryCode\" name=\"countryCode\" autocomplete=\"country\">");
    for code in crate::countries::CODES {
        body.push_str(&format!(
            "<option value=\"{code}\"{}>{code}</option>",
            if *code == chosen_country {
                " selected"
            } else {
                ""
            }
        ));
    }
    body.push_str("</select>");
    body.push_str("<fieldset><legend>Shipping method</legend>");
    let chosen_method = values.0.get("shippingMethod").cloned();
    for (i, m) in app.config.checkout.shipping_methods.iter().enumerate() {
        let checked = chosen_method.as_deref().map_or(i == 0, |c| c == m.handle);
        let price = crate::money::parse_minor(&m.price, &cart.currency)
            .map(|p| money(p, &cart.currency))
            .unwrap_or_default();
        body.push_str(&format!(
            "<label><input type=\"radio\" name=\"shippingMethod\" value=\"{h}\"{c}> {t} — {price}</label>",
            h = escape(&m.handle),
            c = if checked { " checked" } else { "" },
            t = escape(&m.title),
        ));
    }
    body.push_str("</fieldset><fieldset><legend>Payment</legend>");
    let chosen_payment = values.0.get("paymentToken").cloned();
    for (i, (token, label)) in TEST_PAYMENT_METHODS.iter().enumerate() {
        let checked = chosen_payment.as_deref().map_or(i == 0, |c| c == *token);
        body.push_str(&format!(
            "<label><input type=\"radio\" name=\"paymentToken\" value=\"{token}\"{}> {label}</label>",
            if checked { " checked" } else { "" }
        ));
    }
    body.push_str("</fieldset><button type=\"submit\">Place order</button></form>");
    page(status, "Checkout", &body)
}

pub async fn show(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    if !valid_token(&token, 32) {
        return not_found();
    }
    let mut conn = match connection(&app).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match cart::load(&mut conn, &token, &rules(&app)).await {
        Err(e) => unavailable(&e),
        Ok(None) => not_found(),
        Ok(Some(cart)) if cart.cart.completed_at.is_some() => {
            completed(&mut conn, cart.cart.id).await
        }
        Ok(Some(cart)) => form_page(&app, &cart, &FormValues::default(), &[], StatusCode::OK),
    }
}

/// A completed cart's checkout page sends the buyer to the order.
async fn completed(conn: &mut PgConn, cart_id: i64) -> Response {
    let token = crate::orders::access_token_of_cart(conn, cart_id)
        .await
        .unwrap_or(None);
    match token {
        Some(t) => Redirect::to(&format!("/orders/{t}")).into_response(),
        None => not_found(),
    }
}

pub async fn submit(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !valid_token(&token, 32) {
        return not_found();
    }
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let input = CheckoutInput {
        email: field("email").unwrap_or_default(),
        shipping_address: Address {
            first_name: field("firstName"),
            last_name: field("lastName"),
            company: None,
            address1: field("address1"),
            address2: field("address2"),
            city: field("city"),
            province: field("province"),
            zip: field("zip"),
            country_code: field("countryCode").map(|c| c.to_ascii_uppercase()),
            phone: None,
        },
        shipping_method: field("shippingMethod"),
        payment_token: field("paymentToken").unwrap_or_default(),
        idempotency_key: field("idempotencyKey").unwrap_or_else(random_key),
    };
    let conn = match connection(&app).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (outcome, mut conn) = match app.complete_checkout(conn, token.clone(), input).await {
        Ok(done) => done,
        Err(e) => return unavailable(&e),
    };
    if let Some(order) = outcome.order {
        return Redirect::to(&format!("/orders/{}", order.access_token)).into_response();
    }
    match cart::load(&mut conn, &token, &rules(&app)).await {
        Err(e) => unavailable(&e),
        Ok(None) => not_found(),
        Ok(Some(cart)) if cart.cart.completed_at.is_some() => {
            completed(&mut conn, cart.cart.id).await
        }
        Ok(Some(cart)) => {
            let mut values = FormValues(form);
            // A failed attempt gets a fresh key: the corrected form is a new attempt.
            values.0.insert("idempotencyKey".into(), random_key());
            form_page(
                &app,
                &cart,
                &values,
                &outcome.user_errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

pub async fn order_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    if !valid_token(&token, 40) {
        return not_found();
    }
    let mut conn = match connection(&app).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let order = match orders::by_access_token(&mut conn, &token).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    let lines = match orders::lines_of(&mut conn, order.id).await {
        Ok(l) => l,
        Err(e) => return unavailable(&e),
    };
    let status = match order.status.as_str() {
        "PENDING_PAYMENT" => "Awaiting payment confirmation",
        "PAID" => "Paid",
        "FULFILLED" => "Shipped",
        "CANCELLED" => "Cancelled",
        "REFUNDED" => "Refunded",
        other => other,
    };
    let invoice = if order.status == "PAID" || order.status == "FULFILLED" {
        format!(
            "<p><a href=\"/orders/{}/invoice\">Invoice</a></p>",
            escape(&order.access_token)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Thank you for your order</h1>\
         <p role=\"status\">Order number <strong id=\"order-number\">#{number}</strong></p>\
         <p>Status: <span id=\"order-status\">{status}</span></p>\
         <p>A confirmation is on its way to {email}.</p>{table}{invoice}",
        number = order.number,
        email = escape(&order.email),
        table = lines_table(&order, &lines),
    );
    page(StatusCode::OK, &format!("Order #{}", order.number), &body)
}

pub async fn invoice(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    if !valid_token(&token, 40) {
        return not_found();
    }
    let mut conn = match connection(&app).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match orders::invoice_of(&mut conn, &token).await {
        Ok(Some(html)) => {
            let mut r = Html(html).into_response();
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                "private, no-store".parse().expect("static header"),
            );
            r
        }
        Ok(None) => not_found(),
        Err(e) => unavailable(&e),
    }
}
