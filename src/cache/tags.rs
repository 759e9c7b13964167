//! The names of cache tags. They must match what the triggers of
//! `migrations/*_cache/up.sql` notify.

use std::collections::BTreeSet;
use std::sync::Mutex;

pub const PRODUCTS: &str = "products";
pub const COLLECTIONS: &str = "collections";
pub const PAGES: &str = "pages";
pub const MENUS: &str = "menus";
pub const CATEGORIES: &str = "categories";
/// The best-selling order (`products.total_sales`).
pub const SALES: &str = "sales";

pub fn product(id: i64) -> String {
    format!("product:{id}")
}

/// The availability of a product's variants.
pub fn stock(product_id: i64) -> String {
    format!("stock:{product_id}")
}

pub fn collection(id: i64) -> String {
    format!("collection:{id}")
}

pub fn page(id: i64) -> String {
    format!("page:{id}")
}

/// The tags one response was built from; also marks responses that must not be shared.
#[derive(Default)]
pub struct TagSet {
    inner: Mutex<(BTreeSet<String>, bool)>,
}

impl TagSet {
    pub fn add(&self, tag: impl Into<String>) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .insert(tag.into());
    }

    pub fn extend(&self, tags: impl IntoIterator<Item = String>) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .extend(tags);
    }

    /// The response shows something of one buyer's (a cart, an order).
    pub fn mark_personal(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
    }

    pub fn is_personal(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).0)
            .into_iter()
            .collect()
    }
}
