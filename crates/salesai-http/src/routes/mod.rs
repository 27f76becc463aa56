//! Route modules; each owns its routes and its request and response types.

pub mod admin;
pub mod conversations;
pub mod health;
pub mod openapi;
