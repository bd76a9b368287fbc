//! Gives the shared library its soname, `libbatv.so.0`, so programs linked against it keep
//! working across compatible releases (the install step adds the `libbatv.so` symlinks).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbatv.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
