//! End-to-end tests: a whole node in-process on loopback, real HTTP, real keys.

// Test helpers unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod admin;
mod alerts;
mod attest;
mod common;
mod console;
mod console_browser;
mod followers;
mod forgeries;
mod gateway;
mod hardening;
mod hardware;
mod interop;
mod managed_roots;
mod mitm;
mod multinode;
mod nightscout;
mod openapi;
mod partner_interop;
mod partners;
mod platform_client;
mod postgres;
mod real_nightscout;
mod sealed_secrets;
mod secrets;
mod sessions;
mod signatures;
mod tls;
mod trust;
