//! Outgoing email over SMTP (lettre), to the server `SMTP_URL` names.
//!
//! `smtp://[user:password@]host[:port]` speaks plain SMTP (a local relay or MTA on the
//! same network, which then handles TLS to the world). Every send has a timeout.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Where order emails go (`SMTP_URL`, `MAIL_FROM`, `SMTP_TIMEOUT_MS`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `SMTP_URL`: `smtp://host:port`; unset = no email is sent.
    pub smtp_url: Option<String>,
    /// `MAIL_FROM`: the sender of order emails.
    pub from: String,
    /// `SMTP_TIMEOUT_MS`: how long one send may take.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Shop <shop@localhost>".into(),
            timeout: Duration::from_millis(10_000),
        }
    }
}

/// One message to send.
pub struct Email<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: String,
    pub html: String,
    /// A stable Message-ID, so a receiver can recognise a resent message.
    pub message_id: String,
}

impl Mailer {
    /// Builds a mailer for `url` (`SMTP_URL`) sending as `from` (`MAIL_FROM`).
    pub fn new(url: &str, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?;
        if parsed.scheme() != "smtp" {
            anyhow::bail!("SMTP_URL must start with smtp:// (plain SMTP to a relay)");
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("SMTP_URL has no host"))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(parsed.port().unwrap_or(25))
            .timeout(Some(timeout));
        if !parsed.username().is_empty() {
            let password = parsed.password().unwrap_or_default();
            builder = builder.credentials(Credentials::new(
                percent_decode(parsed.username()),
                percent_decode(password),
            ));
        }
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("MAIL_FROM={from:?}: {e}"))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send(&self, email: Email<'_>) -> anyhow::Result<()> {
        let to: Mailbox = email.to.parse()?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject)
            .message_id(Some(email.message_id))
            .multipart(MultiPart::alternative_plain_html(email.text, email.html))?;
        self.transport.send(message).await?;
        Ok(())
    }
}

/// Decodes the `%XX` escapes a URL's user info may hold.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_info_is_percent_decoded() {
        assert_eq!(super::percent_decode("p%40ss+w%2Fd%"), "p@ss+w/d%");
    }
}
