//! `Menu`, `MenuItem` and `Page`.

use std::sync::Arc;

use async_graphql::{Enum, ID, Object};
use chrono::{DateTime, Utc};

use super::common::{Html, Seo, Url};
use super::connection::connection;
use crate::content::{Menu, MenuItem, Page};
use crate::ids;

#[derive(Clone)]
pub struct MenuNode(pub Arc<Menu>);

#[derive(Clone)]
pub struct PageNode(pub Arc<Page>);

connection!(PageConnection, PageEdge, PageNode, "Pages");

/// Shopify's `MenuItemType`.
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum MenuItemType {
    Article,
    Blog,
    Catalog,
    Collection,
    Collections,
    Frontpage,
    Http,
    Page,
    Product,
    Search,
    ShopPolicy,
}

impl MenuItemType {
    fn parse(s: &str) -> Self {
        match s {
            "ARTICLE" => Self::Article,
            "BLOG" => Self::Blog,
            "CATALOG" => Self::Catalog,
            "COLLECTION" => Self::Collection,
            "COLLECTIONS" => Self::Collections,
            "FRONTPAGE" => Self::Frontpage,
            "PAGE" => Self::Page,
            "PRODUCT" => Self::Product,
            "SEARCH" => Self::Search,
            "SHOP_POLICY" => Self::ShopPolicy,
            _ => Self::Http,
        }
    }
}

#[Object(name = "Menu")]
impl MenuNode {
    pub async fn id(&self) -> ID {
        ID(ids::encode("Menu", self.0.menu.id))
    }

    async fn handle(&self) -> &str {
        &self.0.menu.handle
    }

    async fn title(&self) -> &str {
        &self.0.menu.title
    }

    /// The menu's child items.
    async fn items(&self) -> Vec<MenuItemNode> {
        self.0.items.iter().cloned().map(MenuItemNode).collect()
    }

    /// The count of items on the menu, at every level.
    async fn items_count(&self) -> i32 {
        self.0.items_count() as i32
    }
}

pub struct MenuItemNode(MenuItem);

#[Object(name = "MenuItem")]
impl MenuItemNode {
    async fn id(&self) -> ID {
        ID(ids::encode("MenuItem", self.0.row.id))
    }

    async fn title(&self) -> &str {
        &self.0.row.title
    }

    async fn url(&self) -> Option<Url> {
        self.0.row.url.clone().map(Url)
    }

    #[graphql(name = "type")]
    async fn item_type(&self) -> MenuItemType {
        MenuItemType::parse(&self.0.row.item_type)
    }

    async fn resource_id(&self) -> Option<ID> {
        self.0.row.resource_id.clone().map(ID)
    }

    async fn tags(&self) -> &[String] {
        &self.0.row.tags
    }

    async fn items(&self) -> Vec<MenuItemNode> {
        self.0.items.iter().cloned().map(MenuItemNode).collect()
    }
}

#[Object(name = "Page")]
impl PageNode {
    pub async fn id(&self) -> ID {
        ID(ids::encode("Page", self.0.id))
    }

    async fn handle(&self) -> &str {
        &self.0.handle
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    /// The description of the page, complete with HTML formatting.
    async fn body(&self) -> Html {
        Html(self.0.body.clone())
    }

    async fn body_summary(&self) -> &str {
        &self.0.body_summary
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    async fn seo(&self) -> Seo {
        Seo {
            title: self
                .0
                .seo_title
                .clone()
                .or_else(|| Some(self.0.title.clone())),
            description: self
                .0
                .seo_description
                .clone()
                .or_else(|| Some(self.0.body_summary.clone())),
        }
    }
}
