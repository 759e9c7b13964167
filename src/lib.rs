//! commerce-gateway: a GraphQL gateway for online stores built for flash-sale traffic.
//!
//! Layout, top to bottom: [`http`] and [`graphql`] (thin handlers and resolvers) → wiring
//! ([`app`], [`dispatch`], [`config`], [`startup`]) → domain ([`checkout`], [`cart`],
//! [`orders`], [`catalog`], [`inventory`], [`partners`], [`payments`], [`content`]) →
//! infrastructure ([`db`], [`cache`], [`jobs`], [`ratelimit`], [`breaker`], [`mail`],
//! [`telemetry`]) and small helpers. A module uses only modules below it:
//! `scripts/check-architecture.py` checks it in CI, and `ARCHITECTURE.md` says which module
//! owns which table and rule.

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
