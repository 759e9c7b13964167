//! Collections (with their manually ordered products) and categories (a tree) in the
//! admin API's writes. Each call is one transaction with its audit entry.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use super::{delete_row, slug};
use crate::catalog::writer;
use crate::db::schema::{categories, collection_products, collections};
use crate::partners::{Actor, AdminError, MAX_BULK, audit, constraint, too_many};

/// What an update of a collection changes: the fields given (`None` leaves a column as it is).
#[derive(AsChangeset)]
#[diesel(table_name = collections)]
struct CollectionChanges<'a> {
    handle: Option<&'a str>,
    title: Option<&'a str>,
    description: Option<&'a str>,
    description_html: Option<&'a str>,
    seo_title: Option<&'a str>,
    seo_description: Option<&'a str>,
    image_url: Option<&'a str>,
    image_alt: Option<&'a str>,
    published: Option<bool>,
}

/// What an update of a category changes (`parent_id`: `Some(None)` makes it top-level).
#[derive(AsChangeset)]
#[diesel(table_name = categories)]
struct CategoryChanges<'a> {
    handle: Option<&'a str>,
    name: Option<&'a str>,
    parent_id: Option<Option<i64>>,
}

/// A collection's fields (`None`: unchanged on update, default on create).
#[derive(Debug, Default, Clone)]
pub struct CollectionInput {
    pub handle: Option<String>,
    pub title: Option<String>,
    pub description_html: Option<String>,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    pub image_url: Option<String>,
    pub image_alt: Option<String>,
    pub published: Option<bool>,
}

fn collection_json(c: &CollectionInput) -> serde_json::Value {
    json!({ "handle": c.handle, "title": c.title, "descriptionHtml": c.description_html,
            "seoTitle": c.seo_title, "seoDescription": c.seo_description, "imageUrl": c.image_url,
            "published": c.published })
}

pub async fn create_collection(
    conn: &mut AsyncPgConnection,
    input: &CollectionInput,
    actor: &Actor,
) -> Result<i64, AdminError> {
    let Some(title) = input.title.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Err(AdminError::input(
            &["input", "title"],
            "BLANK",
            "A collection needs a title.",
        ));
    };
    let handle = input.handle.clone().unwrap_or_else(|| slug(title));
    if handle.is_empty() {
        return Err(AdminError::input(
            &["input", "handle"],
            "INVALID",
            "The handle may not be empty.",
        ));
    }
    let description = writer::strip_html(input.description_html.as_deref().unwrap_or(""));
    conn.transaction::<_, AdminError, _>(async |conn| {
        let id: i64 = diesel::insert_into(collections::table)
            .values((
                collections::handle.eq(&handle),
                collections::title.eq(title),
                collections::description.eq(&description),
                collections::description_html.eq(input.description_html.as_deref().unwrap_or("")),
                collections::seo_title.eq(&input.seo_title),
                collections::seo_description.eq(&input.seo_description),
                collections::image_url.eq(&input.image_url),
                collections::image_alt.eq(&input.image_alt),
                collections::published.eq(input.published.unwrap_or(true)),
            ))
            .returning(collections::id)
            .get_result(conn)
            .await
            .map_err(|e| constraint(e, &["input", "handle"]))?;
        audit::record(
            conn,
            actor,
            "collectionCreate",
            "Collection",
            Some(id.to_string()),
            collection_json(input),
        )
        .await?;
        Ok(id)
    })
    .await
}

pub async fn update_collection(
    conn: &mut AsyncPgConnection,
    id: i64,
    input: &CollectionInput,
    actor: &Actor,
) -> Result<bool, AdminError> {
    let description = input.description_html.as_deref().map(writer::strip_html);
    conn.transaction::<_, AdminError, _>(async |conn| {
        let changes = CollectionChanges {
            handle: input.handle.as_deref(),
            title: input.title.as_deref(),
            description: description.as_deref(),
            description_html: input.description_html.as_deref(),
            seo_title: input.seo_title.as_deref(),
            seo_description: input.seo_description.as_deref(),
            image_url: input.image_url.as_deref(),
            image_alt: input.image_alt.as_deref(),
            published: input.published,
        };
        let n = diesel::update(collections::table.find(id))
            .set((changes, collections::updated_at.eq(diesel::dsl::now)))
            .execute(conn)
            .await
            .map_err(|e| constraint(e, &["input"]))?;
        if n > 0 {
            audit::record(
                conn,
                actor,
                "collectionUpdate",
                "Collection",
                Some(id.to_string()),
                collection_json(input),
            )
            .await?;
        }
        Ok(n > 0)
    })
    .await
}

pub async fn delete_collection(
    conn: &mut AsyncPgConnection,
    id: i64,
    actor: &Actor,
) -> Result<bool, AdminError> {
    delete_row(
        conn,
        "collections",
        "Collection",
        "collectionDelete",
        id,
        actor,
    )
    .await
}

/// Adds products at the end of a collection's manual order (those already in it stay
/// where they are), or removes them.
pub async fn collection_products(
    conn: &mut AsyncPgConnection,
    collection_id: i64,
    product_ids: &[i64],
    add: bool,
    actor: &Actor,
) -> Result<usize, AdminError> {
    if product_ids.len() > MAX_BULK {
        return Err(AdminError::Input(vec![too_many(
            "productIds",
            product_ids.len(),
        )]));
    }
    conn.transaction::<_, AdminError, _>(async |conn| {
        let exists: Option<i64> = collections::table
            .find(collection_id)
            .select(collections::id)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if exists.is_none() {
            return Err(AdminError::input(&["id"], "NOT_FOUND", "No such collection."));
        }
        let n = if add {
            diesel::sql_query(
                "INSERT INTO collection_products (collection_id, product_id, position) \
                 SELECT $1, p.id, (SELECT COALESCE(max(position), 0) FROM collection_products WHERE collection_id = $1) \
                        + row_number() OVER (ORDER BY x.ord) \
                 FROM unnest($2::int8[]) WITH ORDINALITY AS x (id, ord) JOIN products p ON p.id = x.id \
                 ON CONFLICT (collection_id, product_id) DO NOTHING",
            )
            .bind::<BigInt, _>(collection_id)
            .bind::<Array<BigInt>, _>(product_ids)
            .execute(conn)
            .await?
        } else {
            diesel::delete(
                collection_products::table
                    .filter(collection_products::collection_id.eq(collection_id))
                    .filter(collection_products::product_id.eq_any(product_ids)),
            )
            .execute(conn)
            .await?
        };
        let action = if add { "collectionAddProducts" } else { "collectionRemoveProducts" };
        audit::record(conn, actor, action, "Collection", Some(collection_id.to_string()), json!({ "productIds": product_ids })).await?;
        Ok(n)
    })
    .await
}

/// Category fields.
#[derive(Debug, Default, Clone)]
pub struct CategoryInput {
    pub handle: Option<String>,
    pub name: Option<String>,
    /// `Some(None)`: a top-level category.
    pub parent_id: Option<Option<i64>>,
}

pub async fn create_category(
    conn: &mut AsyncPgConnection,
    input: &CategoryInput,
    actor: &Actor,
) -> Result<i64, AdminError> {
    let Some(name) = input.name.as_deref().filter(|n| !n.trim().is_empty()) else {
        return Err(AdminError::input(
            &["input", "name"],
            "BLANK",
            "A category needs a name.",
        ));
    };
    let handle = input.handle.clone().unwrap_or_else(|| slug(name));
    conn.transaction::<_, AdminError, _>(async |conn| {
        let id: i64 = diesel::insert_into(categories::table)
            .values((
                categories::handle.eq(&handle),
                categories::name.eq(name),
                categories::parent_id.eq(input.parent_id.flatten()),
            ))
            .returning(categories::id)
            .get_result(conn)
            .await
            .map_err(|e| constraint(e, &["input"]))?;
        audit::record(
            conn,
            actor,
            "categoryCreate",
            "Category",
            Some(id.to_string()),
            json!({ "handle": handle, "name": name, "parentId": input.parent_id }),
        )
        .await?;
        Ok(id)
    })
    .await
}

pub async fn update_category(
    conn: &mut AsyncPgConnection,
    id: i64,
    input: &CategoryInput,
    actor: &Actor,
) -> Result<bool, AdminError> {
    if input.parent_id == Some(Some(id)) {
        return Err(AdminError::input(
            &["input", "parentId"],
            "INVALID",
            "A category cannot be its own parent.",
        ));
    }
    conn.transaction::<_, AdminError, _>(async |conn| {
        if let Some(Some(parent)) = input.parent_id {
            // The new parent may not be a descendant (no cycles in the tree).
            #[derive(QueryableByName)]
            struct Flag {
                #[diesel(sql_type = Bool)]
                cyclic: bool,
            }
            let f: Flag = diesel::sql_query(
                "WITH RECURSIVE up AS (SELECT id, parent_id FROM categories WHERE id = $1 \
                 UNION SELECT c.id, c.parent_id FROM categories c JOIN up ON c.id = up.parent_id) \
                 SELECT EXISTS (SELECT 1 FROM up WHERE id = $2) AS cyclic",
            )
            .bind::<BigInt, _>(parent)
            .bind::<BigInt, _>(id)
            .get_result(conn)
            .await?;
            if f.cyclic {
                return Err(AdminError::input(
                    &["input", "parentId"],
                    "INVALID",
                    "The parent is a descendant of the category.",
                ));
            }
        }
        let changes = CategoryChanges {
            handle: input.handle.as_deref(),
            name: input.name.as_deref(),
            parent_id: input.parent_id,
        };
        let n = diesel::update(categories::table.find(id))
            .set((changes, categories::updated_at.eq(diesel::dsl::now)))
            .execute(conn)
            .await
            .map_err(|e| constraint(e, &["input"]))?;
        if n > 0 {
            audit::record(
                conn,
                actor,
                "categoryUpdate",
                "Category",
                Some(id.to_string()),
                json!({ "handle": input.handle, "name": input.name, "parentId": input.parent_id }),
            )
            .await?;
        }
        Ok(n > 0)
    })
    .await
}

pub async fn delete_category(
    conn: &mut AsyncPgConnection,
    id: i64,
    actor: &Actor,
) -> Result<bool, AdminError> {
    delete_row(conn, "categories", "Category", "categoryDelete", id, actor).await
}
