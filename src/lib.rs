//! commerce-gateway: a GraphQL gateway for online stores built for flash-sale traffic.
//!
//! Layout: [`graphql`] (thin resolvers) → domain ([`catalog`], [`cart`], [`content`]) →
//! infrastructure ([`db`], [`http`]). Dependencies point one way.

pub mod app;
pub mod cart;
pub mod catalog;
pub mod config;
pub mod content;
pub mod db;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod money;
pub mod pagination;
pub mod startup;
