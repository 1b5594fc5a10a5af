//! The runbook at `/runbook`: `dashboards/runbook.md`, compiled in and rendered to HTML, so
//! that an alert's `runbook_url` works on an installation without a wiki. The Markdown file
//! is the one source (a wiki copy of it keeps the same anchors).
//!
//! The renderer covers the subset the runbook is written in (headings, paragraphs, `-` lists,
//! `**strong**`, `*emphasis*`, `` `code` ``, `[links](url)`); everything else is text, and
//! all text is escaped.

use std::fmt::Write as _;
use std::sync::LazyLock;

use super::page::{STYLE, escape};

/// The runbook's Markdown source.
pub const SOURCE: &str = include_str!("../../dashboards/runbook.md");

/// The page, rendered once.
pub static PAGE: LazyLock<String> = LazyLock::new(|| page(SOURCE));

/// A heading's anchor as GitHub makes it: lower case, spaces to `-`, other punctuation out.
/// For an alert's heading (`### BtWatchdogDown`) it is the alert's name in lower case.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    if (1..=6).contains(&level) {
        line[level..].strip_prefix(' ').map(|text| (level, text))
    } else {
        None
    }
}

/// Inline Markdown to HTML: code spans first (their content is literal), then links, strong
/// and emphasis on the escaped rest.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        let Some(len) = rest[start + 1..].find('`') else {
            break;
        };
        out.push_str(&emphasis(&rest[..start]));
        let _ = write!(
            out,
            "<code>{}</code>",
            escape(&rest[start + 1..start + 1 + len])
        );
        rest = &rest[start + 2 + len..];
    }
    out.push_str(&emphasis(rest));
    out
}

fn emphasis(text: &str) -> String {
    let mut html = escape(text);
    html = links(&html);
    html = pairs(&html, "**", "strong");
    pairs(&html, "*", "em")
}

/// `[text](url)` on already escaped text; only http(s), relative and `#` targets.
fn links(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find("](") else { break };
        let Some(end) = after[close + 2..].find(')') else {
            break;
        };
        let label = &after[..close];
        let target = &after[close + 2..close + 2 + end];
        let safe = target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with('#')
            || !target.contains(':');
        out.push_str(&rest[..open]);
        if safe {
            let _ = write!(out, r#"<a href="{target}">{label}</a>"#);
        } else {
            out.push_str(&rest[open..open + 1 + close + 2 + end + 1]);
        }
        rest = &after[close + 2 + end + 1..];
    }
    out.push_str(rest);
    out
}

fn pairs(html: &str, marker: &str, tag: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find(marker) {
        let Some(len) = rest[start + marker.len()..].find(marker) else {
            break;
        };
        let inner = &rest[start + marker.len()..start + marker.len() + len];
        if inner.is_empty() || inner.starts_with(' ') {
            out.push_str(&rest[..start + marker.len()]);
            rest = &rest[start + marker.len()..];
            continue;
        }
        let _ = write!(out, "{}<{tag}>{inner}</{tag}>", &rest[..start]);
        rest = &rest[start + 2 * marker.len() + len..];
    }
    out.push_str(rest);
    out
}

/// The Markdown subset as HTML blocks.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut list: Vec<String> = Vec::new();
    let flush = |out: &mut String, paragraph: &mut Vec<&str>, list: &mut Vec<String>| {
        if !paragraph.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", inline(&paragraph.join(" ")));
            paragraph.clear();
        }
        if !list.is_empty() {
            out.push_str("<ul>\n");
            for item in list.iter() {
                let _ = writeln!(out, "<li>{}</li>", inline(item));
            }
            out.push_str("</ul>\n");
            list.clear();
        }
    };
    for line in markdown.lines() {
        if let Some((level, text)) = heading(line) {
            flush(&mut out, &mut paragraph, &mut list);
            let _ = writeln!(
                out,
                r#"<h{level} id="{id}">{text}</h{level}>"#,
                id = escape(&anchor(text)),
                text = inline(text)
            );
        } else if let Some(item) = line.strip_prefix("- ") {
            if !paragraph.is_empty() {
                flush(&mut out, &mut paragraph, &mut list);
            }
            list.push(item.to_string());
        } else if line.trim().is_empty() {
            flush(&mut out, &mut paragraph, &mut list);
        } else if line.starts_with(' ') && !list.is_empty() {
            // A list item's continuation line.
            if let Some(last) = list.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            if !list.is_empty() {
                flush(&mut out, &mut paragraph, &mut list);
            }
            paragraph.push(line.trim());
        }
    }
    flush(&mut out, &mut paragraph, &mut list);
    out
}

fn page(markdown: &str) -> String {
    // A contents list of the alerts, for a reader who arrives without an anchor.
    let mut contents = String::from(r#"<nav aria-label="Alerts"><ul>"#);
    for line in markdown.lines() {
        if let Some((3, text)) = heading(line) {
            let _ = write!(
                contents,
                r##"<li><a href="#{}">{}</a></li>"##,
                escape(&anchor(text)),
                escape(text)
            );
        }
    }
    contents.push_str("</ul></nav>");
    let body = to_html(markdown);
    // The contents go after the introduction (before the first alert's heading).
    let body = match body.find("<h3 ") {
        Some(at) => format!("{}{contents}\n{}", &body[..at], &body[at..]),
        None => body,
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bt-watchdog runbook</title>
<style>{STYLE}</style></head>
<body><nav aria-label="Other views"><a href="./">Status</a> · <a href="status">/status (JSON)</a> · <a href="metrics">/metrics</a></nav>
<main class="runbook">
{body}</main>
</body></html>
"#
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_the_ones_github_makes() {
        assert_eq!(anchor("BtWatchdogDown"), "btwatchdogdown");
        assert_eq!(anchor("bt-watchdog runbook"), "bt-watchdog-runbook");
        assert_eq!(anchor("What's next?"), "whats-next");
    }

    #[test]
    fn the_subset_renders_and_everything_is_escaped() {
        let html = to_html(
            "### BtWatchdogDown\n\n- **Means:** a <b>thing</b> with `a <code>` and *stress*\n  continued [here](https://x.example/a?b=1&c=2).\n- [bad](javascript:alert(1))\n\nA para\nof two lines.\n",
        );
        assert!(html.contains(r#"<h3 id="btwatchdogdown">BtWatchdogDown</h3>"#));
        assert!(html.contains("<li><strong>Means:</strong> a &lt;b&gt;thing&lt;/b&gt; with <code>a &lt;code&gt;</code> and <em>stress</em> continued <a href=\"https://x.example/a?b=1&amp;c=2\">here</a>.</li>"), "{html}");
        assert!(!html.contains("href=\"javascript"));
        assert!(html.contains("<p>A para of two lines.</p>"));
    }

    /// Every alert of the shipped rules has its section, and each section says what it means,
    /// how to confirm it, what to do and when to fail over by hand.
    #[test]
    fn every_alert_has_a_complete_section() {
        let rules = crate::commands::alerts::SHIPPED_RULES;
        let sections: Vec<&str> = SOURCE.split("\n### ").skip(1).collect();
        let mut alerts: Vec<&str> = rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- alert: "))
            .collect();
        alerts.dedup();
        for alert in &alerts {
            let section = sections
                .iter()
                .find(|s| s.lines().next() == Some(alert))
                .unwrap_or_else(|| panic!("dashboards/runbook.md has no ### {alert}"));
            for part in [
                "- **Means:** ",
                "- **Confirm:** ",
                "- **Do:** ",
                "- **Fail over by hand:** ",
            ] {
                assert!(section.contains(part), "{alert}: no {part}");
            }
            assert!(
                PAGE.contains(&format!(r#"<h3 id="{}">"#, alert.to_lowercase())),
                "{alert}: no anchor in the served page"
            );
        }
        assert_eq!(sections.len(), alerts.len(), "a section without an alert");
    }

    #[test]
    fn the_page_has_a_contents_list_and_every_section() {
        let page = &*PAGE;
        assert!(page.contains(r##"<a href="#btwatchdogdown">BtWatchdogDown</a>"##));
        assert!(page.contains(r#"<h3 id="btwatchdogdown">"#));
        assert!(page.contains("<strong>Fail over by hand:</strong>"));
    }
}
