//! The storefront's GraphQL object types. Each wraps a domain row and resolves its
//! relations through the request's dataloader.

pub mod cart;
pub mod collection;
pub mod common;
pub mod connection;
pub mod content;
pub mod node;
pub mod order;
pub mod product;
