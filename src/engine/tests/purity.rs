//! The engine stays sans-IO: neither it nor the API types it uses may reach for a runtime, a
//! socket, a file or a clock. Checked on the source, so a new import fails here, not in review.

use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 10] = [
    "tokio",
    "reqwest",
    "hyper",
    "std::net",
    "std::fs",
    "std::process",
    "std::thread",
    "Instant::now",
    "SystemTime::now",
    "std::env",
];

/// The API modules the engine imports; they must be as pure as the engine.
const PURE_API_MODULES: [&str; 4] = [
    "src/api/model.rs",
    "src/api/time.rs",
    "src/api/error.rs",
    "src/api/endpoint.rs",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // The tests may use whatever they like.
            if path.file_name().is_some_and(|n| n != "tests") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    // Skip comments and the unit tests at the bottom of a file.
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
}

#[test]
fn the_engine_does_no_io() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/engine"), &mut files);
    files.extend(PURE_API_MODULES.iter().map(|p| root.join(p)));
    assert!(files.len() > 10, "found {} files", files.len());
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in code_lines(&text) {
            for word in FORBIDDEN {
                if line.contains(word) {
                    offences.push(format!(
                        "{}:{}: {word}: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
            if file.starts_with(root.join("src/engine")) && line.contains("crate::api::") {
                let allowed = [
                    "crate::api::ErrorKind",
                    "crate::api::model",
                    "crate::api::time",
                ];
                if !allowed.iter().any(|a| line.contains(a)) {
                    offences.push(format!(
                        "{}:{}: imports an API module with IO: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the engine must stay sans-IO:\n{}",
        offences.join("\n")
    );
}
