//! commerce-gateway: a GraphQL gateway for online stores built for flash-sale traffic.
//!
//! Layout: [`graphql`] and [`http`] (thin resolvers and handlers) → domain ([`catalog`],
//! [`cart`], [`checkout`], [`content`]) → infrastructure ([`db`], [`cache`], [`jobs`], [`mail`]). Dependencies point one way.

pub mod app;
pub mod breaker;
pub mod cache;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod config;
pub mod content;
pub mod countries;
pub mod db;
pub mod dispatch;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod inventory;
pub mod jobs;
pub mod mail;
pub mod money;
pub mod orders;
pub mod pagination;
pub mod partners;
pub mod payments;
pub mod ratelimit;
pub mod signing;
pub mod startup;
pub mod telemetry;
