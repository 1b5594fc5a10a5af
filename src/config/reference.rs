//! The texts generated from [`KEYS`]: the README's configuration reference (and its policy
//! table) and `packaging/config.example.toml`. `tests/packaging.rs` compares them with the
//! files and rewrites the files when run with `BLESS=1`.

use super::keys::{Example, KEYS, Key, WhenAbsent, split};

/// A generated block of the README lies between `<!-- BEGIN name … -->` and `<!-- END name -->`
/// and lists the keys whose path starts with its prefix.
const README_BLOCKS: [(&str, &str); 2] = [
    ("config-reference", ""),
    ("policy-reference", "site[].policy."),
];

const EXAMPLE_HEADER: &str = "\
# bt-watchdog configuration: every key, with its default where it has one.
# Check it with: bt-watchdog check-config --config /etc/bt-watchdog/config.toml
# Reference: /usr/share/doc/bt-watchdog/README.md, \"Configuration reference\".

";

/// How a file is brought up to date with the key table.
pub const BLESS_HINT: &str = "run `BLESS=1 cargo test --test packaging` to rewrite it";

#[derive(Debug, thiserror::Error)]
#[error(
    "README.md has no generated block {name} (between <!-- BEGIN {name} … --> and <!-- END {name} -->)"
)]
pub struct MissingBlock {
    pub name: &'static str,
}

/// The README with its generated blocks rewritten from the key table.
pub fn update_readme(readme: &str) -> Result<String, MissingBlock> {
    let mut text = readme.to_string();
    for (name, prefix) in README_BLOCKS {
        let begin = format!("<!-- BEGIN {name}");
        let end = format!("<!-- END {name} -->");
        let (Some(start), Some(stop)) = (text.find(&begin), text.find(&end)) else {
            return Err(MissingBlock { name });
        };
        let Some(body) = text[start..stop].find('\n').map(|n| start + n + 1) else {
            return Err(MissingBlock { name });
        };
        text.replace_range(body..stop, &reference_table(prefix));
    }
    Ok(text)
}

/// The Markdown table of the keys whose path starts with `prefix` (named without it).
fn reference_table(prefix: &str) -> String {
    let mut out = String::from("| key | default | meaning |\n| --- | --- | --- |\n");
    for key in KEYS {
        let Some(name) = key.path.strip_prefix(prefix) else {
            continue;
        };
        let default = match key.when_absent {
            WhenAbsent::Value(value) => format!("`{}`", value.trim_matches('"')),
            WhenAbsent::Required => "required".to_string(),
            WhenAbsent::Means(text) => text.to_string(),
        };
        let see = key
            .see
            .map(|(title, anchor)| format!("; see [{title}](#{anchor})"))
            .unwrap_or_default();
        out.push_str(&format!("| `{name}` | {default} | {}{see} |\n", key.doc));
    }
    out
}

/// `packaging/config.example.toml`.
pub fn example_config() -> String {
    format!("{EXAMPLE_HEADER}{}", document(example_line, true))
}

/// The example's line for a key: whether it is commented out, and its value.
pub(super) fn example_line(key: &Key) -> Option<(bool, &'static str)> {
    match (&key.example, &key.when_absent) {
        (Example::AsDefault, WhenAbsent::Value(value)) => Some((false, value)),
        (Example::Set(value), _) => Some((false, value)),
        (Example::Commented(value), _) => Some((true, value)),
        (Example::AsDefault, _) | (Example::InParent, _) => None,
    }
}

/// A TOML document with one line per key that `line` gives a value (commented out when it
/// says so), each under its table's header and, with `docs`, after its meaning as a comment.
pub(super) fn document(line: impl Fn(&Key) -> Option<(bool, &'static str)>, docs: bool) -> String {
    let mut out = String::new();
    let mut table = "";
    for key in KEYS {
        let Some((commented, value)) = line(key) else {
            continue;
        };
        let (key_table, name) = split(key.path);
        if key_table != table {
            table = key_table;
            // A table whose every key is commented out is itself (an empty `[cluster]` is
            // not the same as none).
            let all_commented = KEYS
                .iter()
                .filter(|k| split(k.path).0 == table)
                .filter_map(&line)
                .all(|(commented, _)| commented);
            let hash = if all_commented && !table.is_empty() {
                "# "
            } else {
                ""
            };
            out.push_str(&format!("\n{hash}{}\n", header(table)));
        }
        if docs {
            let see = key
                .see
                .map(|(title, _)| format!("; see the README, \"{title}\""))
                .unwrap_or_default();
            let required = match key.when_absent {
                WhenAbsent::Required => " (required)",
                _ => "",
            };
            out.push_str(&comment(&format!("{}{see}{required}.", key.doc)));
        }
        let hash = if commented { "# " } else { "" };
        out.push_str(&format!("{hash}{name} = {value}\n"));
    }
    out
}

/// `site[].policy` → `[site.policy]`, `site[]` → `[[site]]`.
fn header(table: &str) -> String {
    let dotted = table.replace("[].", ".");
    match dotted.strip_suffix("[]") {
        Some(array) => format!("[[{array}]]"),
        None => format!("[{dotted}]"),
    }
}

/// A comment wrapped at 100 columns.
fn comment(text: &str) -> String {
    const WIDTH: usize = 100;
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > WIDTH && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_tables_and_arrays_of_tables() {
        assert_eq!(header("exporter"), "[exporter]");
        assert_eq!(header("site[]"), "[[site]]");
        assert_eq!(header("site[].policy"), "[site.policy]");
    }

    #[test]
    fn comments_wrap() {
        let text = comment(&"word ".repeat(30));
        assert!(text.lines().all(|l| l.len() <= 100 && l.starts_with("# ")));
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn a_readme_without_blocks_is_refused() {
        assert!(update_readme("# nothing here\n").is_err());
    }
}
