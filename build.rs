//! Records the git revision for `rdpdiag --version` (absent outside a git checkout).

use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let version = if rev.is_empty() {
        env!("CARGO_PKG_VERSION").to_string()
    } else {
        format!("{} ({rev})", env!("CARGO_PKG_VERSION"))
    };
    println!("cargo:rustc-env=RDPDIAG_VERSION={version}");
    // In a git worktree `.git` is a file: ask git where HEAD lives, else the build script
    // would rerun (and rdpdiag recompile) on every cargo command.
    let git_dir = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| ".git".into());
    println!("cargo:rerun-if-changed={git_dir}/HEAD");
    println!("cargo:rerun-if-changed={git_dir}/refs/heads");
}
