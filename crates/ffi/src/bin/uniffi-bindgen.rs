//! UniFFI's binding generator, built from this workspace's UniFFI version:
//! `cargo run -p medgate-ffi --features bindgen --bin uniffi-bindgen -- generate --library
//! <libmedgate_ffi.so> --language kotlin|swift|python --out-dir DIR` (see `scripts/bindings`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
