//! Storefront content that is not merchandise: navigation menus and pages.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{menu_items, menus, pages};

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = menus)]
pub struct MenuRow {
    pub id: i64,
    pub handle: String,
    pub title: String,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = menu_items)]
pub struct MenuItemRow {
    pub id: i64,
    pub menu_id: i64,
    pub parent_id: Option<i64>,
    pub position: i32,
    pub title: String,
    pub item_type: String,
    pub url: Option<String>,
    pub resource_id: Option<String>,
    pub tags: Vec<String>,
}

/// A menu with its items arranged as a tree.
#[derive(Clone, Debug)]
pub struct Menu {
    pub menu: MenuRow,
    pub items: Vec<MenuItem>,
}

#[derive(Clone, Debug)]
pub struct MenuItem {
    pub row: MenuItemRow,
    pub items: Vec<MenuItem>,
}

impl Menu {
    pub fn items_count(&self) -> usize {
        fn count(items: &[MenuItem]) -> usize {
            items.iter().map(|i| 1 + count(&i.items)).sum()
        }
        count(&self.items)
    }
}

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = pages)]
pub struct Page {
    pub id: i64,
    pub handle: String,
    pub title: String,
    pub body: String,
    pub body_summary: String,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    pub published: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn build_tree(parent: Option<i64>, rows: &[MenuItemRow], depth: usize) -> Vec<MenuItem> {
    if depth > 8 {
        return Vec::new();
    }
    rows.iter()
        .filter(|r| r.parent_id == parent)
        .map(|r| MenuItem {
            row: r.clone(),
            items: build_tree(Some(r.id), rows, depth + 1),
        })
        .collect()
}

/// Menus by handle, each with all of its items (two statements for any number of menus).
pub async fn menus_by_handles(
    conn: &mut AsyncPgConnection,
    handles: &[String],
) -> QueryResult<Vec<Menu>> {
    let found: Vec<MenuRow> = menus::table
        .filter(menus::handle.eq_any(handles))
        .select(MenuRow::as_select())
        .load(conn)
        .await?;
    with_items(conn, found).await
}

/// Menus by id, each with all of its items.
pub async fn menus_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<Menu>> {
    let found: Vec<MenuRow> = menus::table
        .filter(menus::id.eq_any(ids))
        .select(MenuRow::as_select())
        .load(conn)
        .await?;
    with_items(conn, found).await
}

/// Loads the items of `found` menus in one statement and arranges them as trees.
async fn with_items(conn: &mut AsyncPgConnection, found: Vec<MenuRow>) -> QueryResult<Vec<Menu>> {
    let ids: Vec<i64> = found.iter().map(|m| m.id).collect();
    let items: Vec<MenuItemRow> = menu_items::table
        .filter(menu_items::menu_id.eq_any(&ids))
        .order((menu_items::menu_id, menu_items::position, menu_items::id))
        .select(MenuItemRow::as_select())
        .load(conn)
        .await?;
    Ok(found
        .into_iter()
        .map(|menu| {
            let own: Vec<MenuItemRow> = items
                .iter()
                .filter(|i| i.menu_id == menu.id)
                .cloned()
                .collect();
            Menu {
                items: build_tree(None, &own, 0),
                menu,
            }
        })
        .collect())
}

pub async fn pages_by_handles(
    conn: &mut AsyncPgConnection,
    handles: &[String],
) -> QueryResult<Vec<Page>> {
    pages::table
        .filter(pages::handle.eq_any(handles))
        .filter(pages::published.eq(true))
        .select(Page::as_select())
        .load(conn)
        .await
}

pub async fn pages_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<Page>> {
    pages::table
        .filter(pages::id.eq_any(ids))
        .filter(pages::published.eq(true))
        .select(Page::as_select())
        .load(conn)
        .await
}
