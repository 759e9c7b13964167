//! Batched loading of every relation: each loader answers all keys gathered in one tick
//! with one statement per distinct parameter set (e.g. one statement for "the first 250
//! variants of each of these 100 products, in EUR").

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use diesel_async::AsyncPgConnection;
use futures::future::BoxFuture;

use super::scope::{PollGate, RequestScope};
use crate::app::App;
use crate::cache::tags::{self, TagSet};
use crate::catalog::SimpleSort;
use crate::catalog::models::ListedProduct;
use crate::catalog::models::{Collection, Image, Product, ProductOption, ProductSummary, Variant};
use crate::catalog::{
    CatalogError, CollectionScope, NestedPage, ProductListing, ProductSort, listing, search_syntax,
    store,
};
use crate::content::{self, Menu, Page};
use crate::db::{DbError, StatementCounter};
use crate::pagination::PageArgs;

pub struct CatalogLoader {
    pub app: Arc<App>,
    pub scope: Arc<RequestScope>,
}

/// Builds the data a request's resolvers read: the scope, the loaders and the gate that
/// the request's execution must be wrapped in (see [`super::scope::Gated`]).
pub fn request_data(
    app: &Arc<App>,
) -> (
    Arc<RequestScope>,
    DataLoader<CatalogLoader, HashMapCache>,
    Arc<PollGate>,
) {
    let scope = Arc::new(RequestScope {
        route: OnceLock::new(),
        country: OnceLock::new(),
        currency: OnceLock::new(),
        statements: StatementCounter::default(),
        tags: TagSet::default(),
        option_names: OnceLock::new(),
    });
    let gate = Arc::new(PollGate::default());
    let batch_gate = gate.clone();
    let loader = DataLoader::with_cache(
        CatalogLoader {
            app: app.clone(),
            scope: scope.clone(),
        },
        move |batch| {
            use tracing::Instrument;
            let gate = batch_gate.clone();
            // The batch's statements belong to the request's trace.
            let span = tracing::Span::current();
            tokio::spawn(
                async move {
                    gate.wait_idle().await;
                    batch.await
                }
                .instrument(span),
            )
        },
        HashMapCache::default(),
    )
    .delay(Duration::ZERO);
    (scope, loader, gate)
}

pub type LoadError = Arc<DbError>;

impl CatalogLoader {
    /// Serves the keys this process holds (see [`crate::cache`]) and loads the rest.
    async fn through_cache<K, V, F, Fut>(
        &self,
        kind: &str,
        keys: &[K],
        name: impl Fn(&K) -> String,
        tags_of: impl Fn(&V) -> Vec<String>,
        load: F,
    ) -> Result<HashMap<K, Arc<V>>, LoadError>
    where
        K: Clone + Eq + Hash,
        V: Send + Sync + 'static,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: std::future::Future<Output = Result<HashMap<K, Arc<V>>, LoadError>>,
    {
        let cache = &self.app.cache;
        if !cache.active() {
            return load(keys.to_vec()).await;
        }
        let mut out = HashMap::with_capacity(keys.len());
        let mut missing = Vec::new();
        for k in keys {
            match cache.entity::<V>(&format!("{kind}:{}", name(k))).await {
                Some((v, tags)) => {
                    self.tag(tags.iter().cloned());
                    out.insert(k.clone(), v);
                }
                None => missing.push(k.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let born = std::time::Instant::now();
        let via_replica =
            self.scope.route() == crate::db::Route::Replica && self.app.db.replicas().configured();
        let loaded = load(missing).await?;
        for (k, v) in &loaded {
            cache
                .put_entity(
                    format!("{kind}:{}", name(k)),
                    v.clone(),
                    tags_of(v),
                    born,
                    via_replica,
                )
                .await;
        }
        out.extend(loaded);
        Ok(out)
    }

    /// Records entities the response is built from (see [`crate::cache`]).
    fn tag(&self, tags: impl IntoIterator<Item = String>) {
        self.scope.tags.extend(tags);
    }

    async fn read<T, F>(&self, f: F) -> Result<T, LoadError>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<T>>
            + Send
            + Sync
            + 'static,
    {
        self.app
            .db
            .read(self.scope.route(), &self.scope.statements, &f)
            .await
            .map_err(Arc::new)
    }
}

/// Loader values are shared, not copied, by every resolver that reads them.
fn shared<K: Eq + Hash, V>(map: HashMap<K, V>) -> HashMap<K, Arc<V>> {
    map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
}

/// Groups keys by their parameters, so each parameter set costs one statement.
fn group_by<K, P: Hash + Eq + Clone>(keys: &[K], param: impl Fn(&K) -> P) -> HashMap<P, Vec<&K>> {
    let mut groups: HashMap<P, Vec<&K>> = HashMap::new();
    for k in keys {
        groups.entry(param(k)).or_default().push(k);
    }
    groups
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ProductId(pub i64);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ProductHandle(pub String);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct OptionsOf(pub i64);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct VariantsOf {
    pub product_id: i64,
    pub page: NestedPage,
    pub currency: String,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ImagesOf {
    pub product_id: i64,
    pub page: NestedPage,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SummaryOf {
    pub product_id: i64,
    pub currency: String,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct VariantId {
    pub id: i64,
    pub currency: String,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ImageId(pub i64);

/// A page of the collections one product is in (by title); keys with the same page share
/// a statement.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ProductCollections {
    pub product_id: i64,
    pub reverse: bool,
    pub args: (Option<i32>, Option<String>, Option<i32>, Option<String>),
}

/// A page of one collection's products; keys with the same [`ListingSpec`] share a
/// statement.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CollectionPage {
    pub collection_id: i64,
    pub spec: ListingSpec,
}

/// The arguments of `Collection.products`, already validated by the resolver.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ListingSpec {
    pub sort: ProductSort,
    pub reverse: bool,
    pub args: (Option<i32>, Option<String>, Option<i32>, Option<String>),
    pub query: Option<String>,
}

impl ListingSpec {
    pub fn page_args(&self) -> PageArgs {
        let (first, after, last, before) = self.args.clone();
        PageArgs {
            first,
            after,
            last,
            before,
        }
    }

    /// The listing these arguments describe (errors were reported by the resolver).
    pub fn listing(&self, max_page_size: usize) -> Result<ProductListing, CatalogError> {
        let page = self
            .page_args()
            .validate(listing::listing_sort_name(self.sort, true), max_page_size)?;
        let filter = match self.query.as_deref() {
            Some(q) => search_syntax::parse(q)?,
            None => None,
        };
        Ok(ProductListing {
            collection: CollectionScope::Parent,
            filter,
            sort: self.sort,
            reverse: self.reverse,
            page,
        })
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CategoryId(pub i64);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CollectionId(pub i64);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CollectionHandle(pub String);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MenuHandle(pub String);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MenuId(pub i64);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PageHandle(pub String);

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PageId(pub i64);

impl Loader<ProductId> for CatalogLoader {
    type Value = Arc<Product>;
    type Error = LoadError;

    async fn load(&self, keys: &[ProductId]) -> Result<HashMap<ProductId, Self::Value>, LoadError> {
        self.through_cache(
            "product",
            keys,
            |k| k.0.to_string(),
            |p: &Product| vec![tags::product(p.id)],
            |keys: Vec<ProductId>| async move {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                let rows = self
                    .read(move |conn| {
                        let ids = ids.clone();
                        Box::pin(async move { store::products_by_ids(conn, &ids).await })
                    })
                    .await?;
                // By key: a product created later under one of these ids notifies its tag too.
                self.tag(keys.iter().map(|k| tags::product(k.0)));
                Ok(rows
                    .into_iter()
                    .map(|p| (ProductId(p.id), Arc::new(p)))
                    .collect())
            },
        )
        .await
    }
}

impl Loader<CategoryId> for CatalogLoader {
    type Value = Arc<store::CategoryPath>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[CategoryId],
    ) -> Result<HashMap<CategoryId, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .read(move |conn| {
                let ids = ids.clone();
                Box::pin(async move { store::categories_by_ids(conn, &ids).await })
            })
            .await?;
        self.scope.tags.add(tags::CATEGORIES);
        Ok(rows
            .into_iter()
            .map(|c| (CategoryId(c.id), Arc::new(c)))
            .collect())
    }
}

impl Loader<ProductHandle> for CatalogLoader {
    type Value = Arc<Product>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ProductHandle],
    ) -> Result<HashMap<ProductHandle, Self::Value>, LoadError> {
        self.through_cache(
            "product-handle",
            keys,
            |k| k.0.clone(),
            |p: &Product| vec![tags::product(p.id)],
            |keys: Vec<ProductHandle>| async move {
                let handles: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
                let rows = self
                    .read(move |conn| {
                        let handles = handles.clone();
                        Box::pin(async move { store::products_by_handles(conn, &handles).await })
                    })
                    .await?;
                self.tag(rows.iter().map(|p| tags::product(p.id)));
                if rows.len() < keys.len() {
                    // A handle that finds nothing may find a product created later.
                    self.scope.tags.add(tags::PRODUCTS);
                }
                Ok(rows
                    .into_iter()
                    .map(|p| (ProductHandle(p.handle.clone()), Arc::new(p)))
                    .collect())
            },
        )
        .await
    }
}

impl Loader<OptionsOf> for CatalogLoader {
    type Value = Arc<Vec<ProductOption>>;
    type Error = LoadError;

    async fn load(&self, keys: &[OptionsOf]) -> Result<HashMap<OptionsOf, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .read(move |conn| {
                let ids = ids.clone();
                Box::pin(async move { store::options_for(conn, &ids).await })
            })
            .await?;
        let mut out: HashMap<OptionsOf, Vec<ProductOption>> =
            keys.iter().map(|k| (k.clone(), Vec::new())).collect();
        self.tag(keys.iter().map(|k| tags::product(k.0)));
        for row in rows {
            out.entry(OptionsOf(row.product_id)).or_default().push(row);
        }
        Ok(shared(out))
    }
}

impl Loader<VariantsOf> for CatalogLoader {
    type Value = Arc<Vec<Arc<Variant>>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[VariantsOf],
    ) -> Result<HashMap<VariantsOf, Self::Value>, LoadError> {
        let shop = self.app.config.shop.currency.clone();
        let names = self.scope.option_names();
        self.tag(
            keys.iter()
                .flat_map(|k| [tags::product(k.product_id), tags::stock(k.product_id)]),
        );
        let mut out: HashMap<VariantsOf, Vec<Variant>> = HashMap::new();
        for ((page, currency), group) in group_by(keys, |k| (k.page.clone(), k.currency.clone())) {
            let ids: Vec<i64> = group.iter().map(|k| k.product_id).collect();
            let (p, c, s) = (page.clone(), currency.clone(), shop.clone());
            let rows = self
                .read(move |conn| {
                    let (ids, p, c, s) = (ids.clone(), p.clone(), c.clone(), s.clone());
                    Box::pin(
                        async move { store::variants_for(conn, &ids, &p, &c, &s, names).await },
                    )
                })
                .await?;
            for k in group {
                out.insert((*k).clone(), Vec::new());
            }
            for row in rows {
                let key = VariantsOf {
                    product_id: row.product_id,
                    page: page.clone(),
                    currency: currency.clone(),
                };
                out.entry(key).or_default().push(row);
            }
        }
        Ok(out
            .into_iter()
            .map(|(k, rows)| (k, Arc::new(rows.into_iter().map(Arc::new).collect())))
            .collect())
    }
}

impl Loader<ImagesOf> for CatalogLoader {
    type Value = Arc<Vec<Image>>;
    type Error = LoadError;

    async fn load(&self, keys: &[ImagesOf]) -> Result<HashMap<ImagesOf, Self::Value>, LoadError> {
        self.tag(keys.iter().map(|k| tags::product(k.product_id)));
        let mut out: HashMap<ImagesOf, Vec<Image>> = HashMap::new();
        for (page, group) in group_by(keys, |k| k.page.clone()) {
            let ids: Vec<i64> = group.iter().map(|k| k.product_id).collect();
            let p = page.clone();
            let rows = self
                .read(move |conn| {
                    let (ids, p) = (ids.clone(), p.clone());
                    Box::pin(async move { store::images_for(conn, &ids, &p).await })
                })
                .await?;
            for k in group {
                out.insert((*k).clone(), Vec::new());
            }
            for row in rows {
                out.entry(ImagesOf {
                    product_id: row.product_id,
                    page: page.clone(),
                })
                .or_default()
                .push(row);
            }
        }
        Ok(shared(out))
    }
}

impl Loader<SummaryOf> for CatalogLoader {
    type Value = Arc<ProductSummary>;
    type Error = LoadError;

    async fn load(&self, keys: &[SummaryOf]) -> Result<HashMap<SummaryOf, Self::Value>, LoadError> {
        self.through_cache(
            "summary",
            keys,
            |k| format!("{}:{}", k.product_id, k.currency),
            |s: &ProductSummary| vec![tags::product(s.product_id), tags::stock(s.product_id)],
            |keys: Vec<SummaryOf>| async move {
                let shop = self.app.config.shop.currency.clone();
                self.tag(
                    keys.iter()
                        .flat_map(|k| [tags::product(k.product_id), tags::stock(k.product_id)]),
                );
                let mut out = HashMap::new();
                for (currency, group) in group_by(&keys, |k: &SummaryOf| k.currency.clone()) {
                    let ids: Vec<i64> = group.iter().map(|k| k.product_id).collect();
                    let (c, s) = (currency.clone(), shop.clone());
                    let rows = self
                        .read(move |conn| {
                            let (ids, c, s) = (ids.clone(), c.clone(), s.clone());
                            Box::pin(async move { store::summaries_for(conn, &ids, &c, &s).await })
                        })
                        .await?;
                    for row in rows {
                        out.insert(
                            SummaryOf {
                                product_id: row.product_id,
                                currency: currency.clone(),
                            },
                            row,
                        );
                    }
                }
                Ok(shared(out))
            },
        )
        .await
    }
}

impl Loader<VariantId> for CatalogLoader {
    type Value = Arc<Variant>;
    type Error = LoadError;

    async fn load(&self, keys: &[VariantId]) -> Result<HashMap<VariantId, Self::Value>, LoadError> {
        let shop = self.app.config.shop.currency.clone();
        let mut out = HashMap::new();
        for (currency, group) in group_by(keys, |k| k.currency.clone()) {
            let ids: Vec<i64> = group.iter().map(|k| k.id).collect();
            let (c, s) = (currency.clone(), shop.clone());
            let rows = self
                .read(move |conn| {
                    let (ids, c, s) = (ids.clone(), c.clone(), s.clone());
                    Box::pin(async move { store::variants_by_ids(conn, &ids, &c, &s).await })
                })
                .await?;
            if rows.len() < group.len() {
                self.scope.tags.add(tags::PRODUCTS);
            }
            for row in rows {
                self.tag([tags::product(row.product_id), tags::stock(row.product_id)]);
                out.insert(
                    VariantId {
                        id: row.id,
                        currency: currency.clone(),
                    },
                    row,
                );
            }
        }
        Ok(shared(out))
    }
}

impl Loader<ImageId> for CatalogLoader {
    type Value = Arc<Image>;
    type Error = LoadError;

    async fn load(&self, keys: &[ImageId]) -> Result<HashMap<ImageId, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .read(move |conn| {
                let ids = ids.clone();
                Box::pin(async move { store::images_by_ids(conn, &ids).await })
            })
            .await?;
        self.tag(rows.iter().map(|i| tags::product(i.product_id)));
        if rows.len() < keys.len() {
            self.scope.tags.add(tags::PRODUCTS);
        }
        Ok(rows
            .into_iter()
            .map(|i| (ImageId(i.id), Arc::new(i)))
            .collect())
    }
}

impl Loader<CollectionId> for CatalogLoader {
    type Value = Arc<Collection>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[CollectionId],
    ) -> Result<HashMap<CollectionId, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .read(move |conn| {
                let ids = ids.clone();
                Box::pin(async move { store::collections_by_ids(conn, &ids).await })
            })
            .await?;
        self.tag(keys.iter().map(|k| tags::collection(k.0)));
        Ok(rows
            .into_iter()
            .map(|c| (CollectionId(c.id), Arc::new(c)))
            .collect())
    }
}

impl Loader<CollectionHandle> for CatalogLoader {
    type Value = Arc<Collection>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[CollectionHandle],
    ) -> Result<HashMap<CollectionHandle, Self::Value>, LoadError> {
        self.through_cache(
            "collection-handle",
            keys,
            |k| k.0.clone(),
            |c: &Collection| vec![tags::collection(c.id)],
            |keys: Vec<CollectionHandle>| async move {
                let handles: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
                let rows = self
                    .read(move |conn| {
                        let handles = handles.clone();
                        Box::pin(async move { store::collections_by_handles(conn, &handles).await })
                    })
                    .await?;
                self.tag(rows.iter().map(|c| tags::collection(c.id)));
                if rows.len() < keys.len() {
                    self.scope.tags.add(tags::COLLECTIONS);
                }
                Ok(rows
                    .into_iter()
                    .map(|c| (CollectionHandle(c.handle.clone()), Arc::new(c)))
                    .collect())
            },
        )
        .await
    }
}

impl Loader<MenuHandle> for CatalogLoader {
    type Value = Arc<Menu>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[MenuHandle],
    ) -> Result<HashMap<MenuHandle, Self::Value>, LoadError> {
        self.through_cache(
            "menu-handle",
            keys,
            |k| k.0.clone(),
            |_: &Menu| vec![tags::MENUS.to_string()],
            |keys: Vec<MenuHandle>| async move {
                let handles: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
                let rows = self
                    .read(move |conn| {
                        let handles = handles.clone();
                        Box::pin(async move { content::menus_by_handles(conn, &handles).await })
                    })
                    .await?;
                self.scope.tags.add(tags::MENUS);
                Ok(rows
                    .into_iter()
                    .map(|m| (MenuHandle(m.menu.handle.clone()), Arc::new(m)))
                    .collect())
            },
        )
        .await
    }
}

impl Loader<MenuId> for CatalogLoader {
    type Value = Arc<Menu>;
    type Error = LoadError;

    async fn load(&self, keys: &[MenuId]) -> Result<HashMap<MenuId, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .read(move |conn| {
                let ids = ids.clone();
                Box::pin(async move { content::menus_by_ids(conn, &ids).await })
            })
            .await?;
        self.scope.tags.add(tags::MENUS);
        Ok(rows
            .into_iter()
            .map(|m| (MenuId(m.menu.id), Arc::new(m)))
            .collect())
    }
}

impl Loader<PageHandle> for CatalogLoader {
    type Value = Arc<Page>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[PageHandle],
    ) -> Result<HashMap<PageHandle, Self::Value>, LoadError> {
        self.through_cache(
            "page-handle",
            keys,
            |k| k.0.clone(),
            |p: &Page| vec![tags::page(p.id)],
            |keys: Vec<PageHandle>| async move {
                let handles: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
                let rows = self
                    .read(move |conn| {
                        let handles = handles.clone();
                        Box::pin(async move { content::pages_by_handles(conn, &handles).await })
                    })
                    .await?;
                self.tag(rows.iter().map(|p| tags::page(p.id)));
                if rows.len() < keys.len() {
                    self.scope.tags.add(tags::PAGES);
                }
                Ok(rows
                    .into_iter()
                    .map(|p| (PageHandle(p.handle.clone()), Arc::new(p)))
                    .collect())
            },
        )
        .await
    }
}

impl Loader<PageId> for CatalogLoader {
    type Value = Arc<Page>;
    type Error = LoadError;

    async fn load(&self, keys: &[PageId]) -> Result<HashMap<PageId, Self::Value>, LoadError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows = self
            .read(move |conn| {
                let ids = ids.clone();
                Box::pin(async move { content::pages_by_ids(conn, &ids).await })
            })
            .await?;
        self.tag(keys.iter().map(|k| tags::page(k.0)));
        Ok(rows
            .into_iter()
            .map(|p| (PageId(p.id), Arc::new(p)))
            .collect())
    }
}

impl Loader<CollectionPage> for CatalogLoader {
    type Value = Arc<Vec<ListedProduct>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[CollectionPage],
    ) -> Result<HashMap<CollectionPage, Self::Value>, LoadError> {
        let config = &self.app.config;
        let mut out = HashMap::new();
        for (spec, group) in group_by(keys, |k| k.spec.clone()) {
            let ids: Vec<i64> = group.iter().map(|k| k.collection_id).collect();
            let listing = spec
                .listing(config.limits.max_page_size)
                .map_err(|e| Arc::new(DbError::Unavailable(format!("listing arguments: {e}"))))?;
            let bad =
                |e: CatalogError| Arc::new(DbError::Unavailable(format!("listing arguments: {e}")));
            let rows: Vec<crate::catalog::models::CollectionMember> = if let [only] = ids[..] {
                // One collection (a collection page): the plain listing, no LATERAL.
                let single = ProductListing {
                    collection: CollectionScope::Collection(only),
                    ..listing
                };
                let sql =
                    listing::product_listing_sql(&single, &config.shop.currency).map_err(bad)?;
                let rows: Vec<ListedProduct> = self
                    .app
                    .db
                    .read_rows(self.scope.route(), &self.scope.statements, sql)
                    .await
                    .map_err(Arc::new)?;
                rows.into_iter()
                    .map(|r| crate::catalog::models::CollectionMember {
                        product: r.product,
                        sort_position: r.sort_position,
                        sort_score: r.sort_score,
                        parent_id: only,
                    })
                    .collect()
            } else {
                let sql = listing::collections_listing_sql(&ids, &listing, &config.shop.currency)
                    .map_err(bad)?;
                self.app
                    .db
                    .read_rows(self.scope.route(), &self.scope.statements, sql)
                    .await
                    .map_err(Arc::new)?
            };
            let mut by_collection: HashMap<i64, Vec<ListedProduct>> =
                ids.iter().map(|id| (*id, Vec::new())).collect();
            for row in rows {
                let parent = row.parent_id;
                by_collection
                    .entry(parent)
                    .or_default()
                    .push(row.into_listed());
            }
            for (collection_id, rows) in by_collection {
                out.insert(
                    CollectionPage {
                        collection_id,
                        spec: spec.clone(),
                    },
                    Arc::new(rows),
                );
            }
        }
        Ok(out)
    }
}

impl Loader<ProductCollections> for CatalogLoader {
    type Value = Arc<Vec<Collection>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ProductCollections],
    ) -> Result<HashMap<ProductCollections, Self::Value>, LoadError> {
        let max = self.app.config.limits.max_page_size;
        let mut out = HashMap::new();
        for ((reverse, args), group) in group_by(keys, |k| (k.reverse, k.args.clone())) {
            let ids: Vec<i64> = group.iter().map(|k| k.product_id).collect();
            let (first, after, last, before) = args.clone();
            let bad = |e: String| Arc::new(DbError::Unavailable(format!("listing arguments: {e}")));
            let page = PageArgs {
                first,
                after,
                last,
                before,
            }
            .validate(SimpleSort::Title.name(), max)
            .map_err(|e| bad(e.to_string()))?;
            let sql = listing::collections_of_products_sql(&ids, SimpleSort::Title, reverse, &page)
                .map_err(|e| bad(e.to_string()))?;
            let rows: Vec<crate::catalog::models::CollectionOfProduct> = self
                .app
                .db
                .read_rows(self.scope.route(), &self.scope.statements, sql)
                .await
                .map_err(Arc::new)?;
            self.tag(ids.iter().map(|id| tags::product(*id)));
            let mut by_product: HashMap<i64, Vec<Collection>> =
                ids.iter().map(|id| (*id, Vec::new())).collect();
            for row in rows {
                self.scope.tags.add(tags::collection(row.collection.id));
                by_product
                    .entry(row.parent_id)
                    .or_default()
                    .push(row.collection);
            }
            for (product_id, rows) in by_product {
                out.insert(
                    ProductCollections {
                        product_id,
                        reverse,
                        args: args.clone(),
                    },
                    Arc::new(rows),
                );
            }
        }
        Ok(out)
    }
}
