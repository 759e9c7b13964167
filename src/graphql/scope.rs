//! Per-request state shared by resolvers and loaders.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::sync::Notify;

use crate::app::App;
use crate::cache::tags::TagSet;
use crate::db::{Route, StatementCounter};

/// What one GraphQL request decided before execution, and what it measured.
pub struct RequestScope {
    /// Primary for mutations and cart reads, replica otherwise (set when the document is
    /// parsed; replica until then).
    pub route: OnceLock<Route>,
    /// From `@inContext(country:)`.
    pub country: OnceLock<Option<String>>,
    /// Prices are shown in this currency where the catalog has it.
    pub currency: OnceLock<String>,
    /// Statements this request sent.
    pub statements: StatementCounter,
    /// What the response was built from, for the cache.
    pub tags: TagSet,
    /// Whether the document asks for `selectedOptions`: only then do variant reads carry
    /// their product's option names (see [`RequestScope::option_names`]).
    pub option_names: OnceLock<bool>,
}

impl RequestScope {
    pub fn route(&self) -> Route {
        self.route.get().copied().unwrap_or(Route::Replica)
    }

    pub fn currency<'a>(&'a self, app: &'a App) -> &'a str {
        self.currency
            .get()
            .map(String::as_str)
            .unwrap_or(&app.config.shop.currency)
    }

    pub fn country(&self) -> Option<&str> {
        self.country.get().and_then(|c| c.as_deref())
    }

    /// Variant reads carry option names unless the document is known not to need them.
    /// The test is on the document's text: a field's name is always spelled out in it
    /// (aliases rename the answer, not the field), so it can only over-include.
    pub fn option_names(&self) -> bool {
        self.option_names.get().copied().unwrap_or(true)
    }

    pub fn note_document(&self, query: &str) {
        let _ = self.option_names.set(query.contains("selectedOptions"));
    }
}

/// Makes dataloader batches wait until the request's executor has finished its current
/// sweep over the resolvers.
///
/// async-graphql's `DataLoader` starts a batch on a timer in a spawned task. On a
/// multi-threaded runtime that task can run on another core while this request is still
/// visiting sibling resolvers (100 products × their fields), splitting one batch into
/// several statements depending on timing. The gate closes while the request future is
/// being polled, and batches start only once it is open again: every key registered in one
/// sweep lands in one batch, deterministically, with no added delay.
#[derive(Default)]
pub struct PollGate {
    polling: AtomicBool,
    idle: Notify,
}

impl PollGate {
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.polling.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// Runs `inner` with `gate` closed during each poll.
pub struct Gated<F> {
    inner: Pin<Box<F>>,
    gate: Arc<PollGate>,
}

impl<F> Gated<F> {
    pub fn new(inner: F, gate: Arc<PollGate>) -> Self {
        Self {
            inner: Box::pin(inner),
            gate,
        }
    }
}

/// Forwards a wake-up and remembers that it happened.
struct WakeFlag {
    inner: std::task::Waker,
    woken: AtomicBool,
}

impl std::task::Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.inner.wake_by_ref();
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.gate.polling.store(true, Ordering::Release);
        let flag = Arc::new(WakeFlag {
            inner: cx.waker().clone(),
            woken: AtomicBool::new(false),
        });
        let waker = std::task::Waker::from(flag.clone());
        let result = self.inner.as_mut().poll(&mut Context::from_waker(&waker));
        // A future that woke itself during the poll (join_all yielding to the scheduler
        // half-way through a long list) has not finished its sweep: keep the gate closed.
        if result.is_ready() || !flag.woken.load(Ordering::Acquire) {
            self.gate.polling.store(false, Ordering::Release);
            self.gate.idle.notify_waiters();
        }
        result
    }
}

impl<F> Drop for Gated<F> {
    /// A request dropped half-way (timeout, client gone) must not strand its batches.
    fn drop(&mut self) {
        self.gate.polling.store(false, Ordering::Release);
        self.gate.idle.notify_waiters();
    }
}
