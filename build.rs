//! Exposes the version of the libev we link (found by `libev-sys`'s build script and
//! passed on as `DEP_EV_VERSION`) to the crate as `LIBEV_VERSION`. Without the `ev`
//! feature there is no libev, no `libev-sys`, and nothing to do. On docs.rs the
//! version is `"unknown"` (no libev there: see libev-sys's build script).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_EV_VERSION");
    if std::env::var_os("CARGO_FEATURE_EV").is_none() {
        return;
    }
    let version =
        std::env::var("DEP_EV_VERSION").expect("libev-sys's build script sets DEP_EV_VERSION");
    println!("cargo:rustc-env=LIBEV_VERSION={version}");
}
