//! Collections (with their manually ordered products) and categories (a tree) in the
//! admin API's writes. Each call is one transaction with its audit entry.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use super::{Id, delete_row, slug};
use crate::catalog::writer;
use crate::partners::{Actor, AdminError, MAX_BULK, audit, constraint, too_many};

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
        let row: Id = diesel::sql_query(
            "INSERT INTO collections (handle, title, description, description_html, seo_title, seo_description, \
             image_url, image_alt, published) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind::<Text, _>(&handle)
        .bind::<Text, _>(title)
        .bind::<Text, _>(&description)
        .bind::<Text, _>(input.description_html.as_deref().unwrap_or(""))
        .bind::<Nullable<Text>, _>(&input.seo_title)
        .bind::<Nullable<Text>, _>(&input.seo_description)
        .bind::<Nullable<Text>, _>(&input.image_url)
        .bind::<Nullable<Text>, _>(&input.image_alt)
        .bind::<Bool, _>(input.published.unwrap_or(true))
        .get_result(conn)
        .await
        .map_err(|e| constraint(e, &["input", "handle"]))?;
        audit::record(conn, actor, "collectionCreate", "Collection", Some(row.id.to_string()), collection_json(input)).await?;
        Ok(row.id)
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
        let n = diesel::sql_query(
            "UPDATE collections SET handle = COALESCE($2, handle), title = COALESCE($3, title), \
             description = COALESCE($4, description), description_html = COALESCE($5, description_html), \
             seo_title = COALESCE($6, seo_title), seo_description = COALESCE($7, seo_description), \
             image_url = COALESCE($8, image_url), image_alt = COALESCE($9, image_alt), \
             published = COALESCE($10, published), updated_at = now() WHERE id = $1",
        )
        .bind::<BigInt, _>(id)
        .bind::<Nullable<Text>, _>(&input.handle)
        .bind::<Nullable<Text>, _>(&input.title)
        .bind::<Nullable<Text>, _>(&description)
        .bind::<Nullable<Text>, _>(&input.description_html)
        .bind::<Nullable<Text>, _>(&input.seo_title)
        .bind::<Nullable<Text>, _>(&input.seo_description)
        .bind::<Nullable<Text>, _>(&input.image_url)
        .bind::<Nullable<Text>, _>(&input.image_alt)
        .bind::<Nullable<Bool>, _>(input.published)
        .execute(conn)
        .await
        .map_err(|e| constraint(e, &["input"]))?;
        if n > 0 {
            audit::record(conn, actor, "collectionUpdate", "Collection", Some(id.to_string()), collection_json(input)).await?;
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
        let exists: Option<Id> = diesel::sql_query("SELECT id FROM collections WHERE id = $1 FOR UPDATE")
            .bind::<BigInt, _>(collection_id)
            .get_result(conn)
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
            diesel::sql_query("DELETE FROM collection_products WHERE collection_id = $1 AND product_id = ANY($2)")
                .bind::<BigInt, _>(collection_id)
                .bind::<Array<BigInt>, _>(product_ids)
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
        let row: Id = diesel::sql_query(
            "INSERT INTO categories (handle, name, parent_id) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind::<Text, _>(&handle)
        .bind::<Text, _>(name)
        .bind::<Nullable<BigInt>, _>(input.parent_id.flatten())
        .get_result(conn)
        .await
        .map_err(|e| constraint(e, &["input"]))?;
        audit::record(
            conn,
            actor,
            "categoryCreate",
            "Category",
            Some(row.id.to_string()),
            json!({ "handle": handle, "name": name, "parentId": input.parent_id }),
        )
        .await?;
        Ok(row.id)
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
        let n = diesel::sql_query(
            "UPDATE categories SET handle = COALESCE($2, handle), name = COALESCE($3, name), \
             parent_id = CASE WHEN $4 THEN $5 ELSE parent_id END, updated_at = now() WHERE id = $1",
        )
        .bind::<BigInt, _>(id)
        .bind::<Nullable<Text>, _>(&input.handle)
        .bind::<Nullable<Text>, _>(&input.name)
        .bind::<Bool, _>(input.parent_id.is_some())
        .bind::<Nullable<BigInt>, _>(input.parent_id.flatten())
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
