//! End-to-end tests: a whole node in-process on loopback, real HTTP, real keys.

mod admin;
mod attest;
mod common;
mod gateway;
