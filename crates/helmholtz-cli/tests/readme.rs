//! The README's "Your own data" commands, run exactly as written: every line of the section's
//! `sh` blocks, in order, from a fresh directory that sees the repository's `examples/` and
//! `data/` (as a clone does), with `helmholtz` on the PATH. A command that fails fails the test
//! with its output.

mod common;

use std::path::Path;
use std::process::Command;

use common::{repo_root, scratch, text};

/// The command lines of the `sh` blocks in the README section headed `heading`, with trailing
/// `# comments` removed.
fn section_commands(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("the README has no section \"## {heading}\""));
    let body = &readme[start + heading.len() + 5..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in body.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_sh = !in_sh && trimmed == "```sh";
            continue;
        }
        if in_sh && !trimmed.is_empty() && !trimmed.starts_with('#') {
            let command = match trimmed.find("  #") {
                Some(at) => trimmed[..at].trim_end(),
                None => trimmed,
            };
            commands.push(command.to_string());
        }
    }
    commands
}

#[test]
fn the_readme_own_data_commands_run_as_written() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = section_commands(&readme, "Your own data");
    assert!(commands.len() >= 8, "{commands:?}");
    let dir = scratch("readme", "own-data");
    for shared in ["examples", "data"] {
        std::os::unix::fs::symlink(root.join(shared), dir.join(shared)).unwrap();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_helmholtz"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in &commands {
        let output = Command::new("bash")
            .args(["-c", command])
            .current_dir(&dir)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`{command}` failed:\n{}",
            text(&output)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
