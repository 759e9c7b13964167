//! Documents about an order: the confirmation email and the invoice.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{Order, OrderLine};
use crate::db::schema::orders;
use crate::mail::{Email, Mailer};
use crate::money::format_minor;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn money(amount_minor: i64, currency: &str) -> String {
    format!("{} {currency}", format_minor(amount_minor, currency))
}

fn line_label(line: &OrderLine) -> String {
    if line.variant_title.is_empty() || line.variant_title == "Default Title" {
        line.product_title.clone()
    } else {
        format!("{} – {}", line.product_title, line.variant_title)
    }
}

/// The URL where the buyer sees the order.
pub fn order_url(shop_url: &str, order: &Order) -> String {
    format!("{shop_url}/orders/{}", order.access_token)
}

/// An HTML table of the lines and totals (shared by the email, the invoice and the
/// confirmation page).
pub fn lines_table(order: &Order, lines: &[OrderLine]) -> String {
    let c = &order.currency;
    let mut html = String::from(
        "<table><thead><tr><th scope=\"col\">Item</th><th scope=\"col\">Qty</th>\
         <th scope=\"col\">Price</th><th scope=\"col\">Total</th></tr></thead><tbody>",
    );
    for line in lines {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&line_label(line)),
            line.quantity,
            money(line.unit_price_minor, c),
            money(line.total_minor, c)
        ));
    }
    html.push_str("</tbody><tfoot>");
    for (label, amount) in [
        ("Subtotal", order.subtotal_minor),
        ("Shipping", order.shipping_minor),
        ("Tax", order.tax_minor),
        ("Total", order.total_minor),
    ] {
        html.push_str(&format!(
            "<tr><th scope=\"row\" colspan=\"3\">{label}</th><td>{}</td></tr>",
            money(amount, c)
        ));
    }
    html.push_str("</tfoot></table>");
    html
}

/// Subject, plain text and HTML of the order confirmation email.
pub fn confirmation_email(
    order: &Order,
    lines: &[OrderLine],
    shop_url: &str,
) -> (String, String, String) {
    let subject = format!("Order #{} confirmed", order.number);
    let url = order_url(shop_url, order);
    let mut text = format!("Thank you for your order #{}.\n\n", order.number);
    for line in lines {
        text.push_str(&format!(
            "{} × {}  {}\n",
            line.quantity,
            line_label(line),
            money(line.total_minor, &order.currency)
        ));
    }
    text.push_str(&format!(
        "\nTotal: {}\n\nSee your order: {url}\n",
        money(order.total_minor, &order.currency)
    ));
    let html = format!(
        "<!doctype html><html lang=\"en\"><body><h1>Thank you for your order #{}</h1>{}\
         <p><a href=\"{}\">See your order</a></p></body></html>",
        order.number,
        lines_table(order, lines),
        escape(&url)
    );
    (subject, text, html)
}

/// The invoice of a paid order, as a standalone HTML document.
pub fn invoice_html(order: &Order, lines: &[OrderLine]) -> String {
    let address = &order.shipping_address;
    let field = |name: &str| {
        address
            .get(name)
            .and_then(|v| v.as_str())
            .map(escape)
            .unwrap_or_default()
    };
    let paid = order
        .paid_at
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Invoice {number}</title></head><body><h1>Invoice {number}</h1>\
         <p>Order #{number}, paid {paid}</p>\
         <address>{first} {last}<br>{a1} {a2}<br>{zip} {city}<br>{country}</address>\
         {table}</body></html>",
        number = order.number,
        first = field("firstName"),
        last = field("lastName"),
        a1 = field("address1"),
        a2 = field("address2"),
        zip = field("zip"),
        city = field("city"),
        country = field("countryCode"),
        table = lines_table(order, lines),
    )
}

/// Renders and stores the invoice of a paid order, once (the `invoice` job).
pub async fn store_invoice(conn: &mut AsyncPgConnection, order_id: i64) -> QueryResult<()> {
    let Some(order) = super::by_id(conn, order_id).await? else {
        return Ok(());
    };
    let lines = super::lines_of(conn, order_id).await?;
    diesel::update(orders::table.find(order_id))
        .filter(orders::invoice_html.is_null())
        .set(orders::invoice_html.eq(invoice_html(&order, &lines)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Why a confirmation was not sent.
#[derive(Debug)]
pub enum SendError {
    Db(diesel::result::Error),
    Smtp(String),
}

impl From<diesel::result::Error> for SendError {
    fn from(e: diesel::result::Error) -> Self {
        SendError::Db(e)
    }
}

/// Sends the confirmation once: an order whose `confirmation_sent_at` is set is skipped.
/// The mark is written after the SMTP server accepted the message, so a worker killed
/// between the two sends it again on retry (with the same Message-ID).
pub async fn send_confirmation(
    conn: &mut AsyncPgConnection,
    mailer: Option<&Mailer>,
    shop_url: &str,
    order_id: i64,
) -> Result<(), SendError> {
    let Some(order) = super::by_id(conn, order_id).await? else {
        return Ok(());
    };
    if order.confirmation_sent_at.is_some() {
        return Ok(());
    }
    let Some(mailer) = mailer else {
        tracing::warn!(
            order = order.number,
            "SMTP_URL is not set; order confirmation not sent"
        );
        return Ok(());
    };
    let lines = super::lines_of(conn, order_id).await?;
    let (subject, text, html) = confirmation_email(&order, &lines, shop_url);
    let host = url::Url::parse(shop_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    mailer
        .send(Email {
            to: &order.email,
            subject: &subject,
            text,
            html,
            message_id: format!("<order-{}-confirmation@{host}>", order.number),
        })
        .await
        .map_err(|e| SendError::Smtp(e.to_string()))?;
    diesel::update(orders::table.find(order_id))
        .set(orders::confirmation_sent_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    tracing::info!(order = order.number, "order confirmation sent");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
