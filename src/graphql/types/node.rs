//! The `Node` interface: any object with a global ID can be fetched with `node(id:)`.

use async_graphql::{ID, Interface};

use super::collection::CollectionNode;
use super::content::{MenuNode, PageNode};
use super::product::{ProductNode, VariantNode};

#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "A globally-unique ID."))]
pub enum Node {
    Product(ProductNode),
    ProductVariant(VariantNode),
    Collection(CollectionNode),
    Page(PageNode),
    Menu(MenuNode),
}
