//! The README's axum example, copied into a fresh project that depends on
//! this crate by path, must compile: what a new user does first.

use std::path::Path;
use std::process::Command;

/// The first ```` ```rust ```` block after `heading` in the README.
fn example_after(readme: &str, heading: &str) -> String {
    let section = readme
        .split(heading)
        .nth(1)
        .expect("the README has the section");
    let start = section.find("```rust").expect("a rust block");
    let body = &section[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

#[test]
fn the_readme_axum_example_compiles_in_a_fresh_project() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).unwrap();
    let main_rs = example_after(&readme, "## axum");
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("src")).unwrap();
    std::fs::write(project.path().join("src/main.rs"), main_rs).unwrap();
    std::fs::write(
        project.path().join("Cargo.toml"),
        format!(
            r#"[package]
name = "readme-axum"
version = "0.1.0"
edition = "2024"

[dependencies]
tessera-verify = {{ path = "{}", features = ["axum"] }}
axum = "0.8"
tokio = {{ version = "1", features = ["macros", "rt-multi-thread", "net"] }}
"#,
            crate_dir.display()
        ),
    )
    .unwrap();
    // The workspace's lock pins the same versions, so the build needs no
    // network; a target dir of its own under the workspace's is reused.
    let workspace = crate_dir.parent().unwrap();
    std::fs::copy(
        workspace.join("Cargo.lock"),
        project.path().join("Cargo.lock"),
    )
    .unwrap();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"))
        .join("readme-example");
    let out = Command::new(env!("CARGO"))
        .args(["build", "-q"])
        .current_dir(project.path())
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the README's axum example does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
