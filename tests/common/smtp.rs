//! A real SMTP receiver on 127.0.0.1 for tests: it speaks enough of RFC 5321 for lettre
//! and keeps every message it acknowledged. It can be told to hold the next message
//! unanswered after its data arrived, as a slow server does, so a test can kill the
//! sender mid-transaction; a transaction that was never acknowledged is not delivered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct SmtpReceiver {
    pub addr: SocketAddr,
    delivered: Arc<Mutex<Vec<String>>>,
    hold_next: Arc<AtomicBool>,
    /// Notified when a held message's data has arrived.
    pub holding: Arc<Notify>,
}

impl SmtpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Self {
            addr: listener.local_addr().unwrap(),
            delivered: Arc::default(),
            hold_next: Arc::default(),
            holding: Arc::new(Notify::new()),
        };
        let r = receiver.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(r.clone().session(socket));
            }
        });
        receiver
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Holds the next message unanswered (the sender waits for the reply).
    pub fn hold_next(&self) {
        self.hold_next.store(true, Ordering::SeqCst);
    }

    /// Messages acknowledged with 250, in order.
    pub fn delivered(&self) -> Vec<String> {
        self.delivered.lock().unwrap().clone()
    }

    async fn session(self, socket: tokio::net::TcpStream) {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        if write.write_all(b"220 test.local ESMTP\r\n").await.is_err() {
            return;
        }
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-test.local\r\n250 8BITMIME\r\n",
                "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                }
                "DATA" => {
                    if write.write_all(b"354 end with .\r\n").await.is_err() {
                        return;
                    }
                    let mut message = String::new();
                    loop {
                        match lines.next_line().await {
                            Ok(Some(l)) if l == "." => break,
                            Ok(Some(l)) => {
                                message.push_str(l.strip_prefix('.').unwrap_or(&l));
                                message.push('\n');
                            }
                            _ => return,
                        }
                    }
                    if self.hold_next.swap(false, Ordering::SeqCst) {
                        self.holding.notify_one();
                        // Never answer: the sender is killed or times out; the message
                        // was not acknowledged and is dropped.
                        while let Ok(Some(_)) = lines.next_line().await {}
                        return;
                    }
                    self.delivered.lock().unwrap().push(message);
                    b"250 queued\r\n"
                }
                _ => b"502 not implemented\r\n",
            };
            if write.write_all(reply).await.is_err() {
                return;
            }
        }
    }
}
