//! Exposes the version of the libev we link (found by `libev-sys`'s build script and
//! passed on as `DEP_EV_VERSION`) to the crate as `LIBEV_VERSION`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_EV_VERSION");
    let version = std::env::var("DEP_EV_VERSION").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=LIBEV_VERSION={version}");
}
