// espeak-ng (built by espeak-rs-sys for piper-rs) uses libsonic, but its
// build script does not ask the linker for it.
fn main() {
    println!("cargo:rustc-link-lib=sonic");
}
