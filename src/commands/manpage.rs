//! `bt-watchdog manpage`: one page that covers every subcommand in full (synopsis,
//! description, options), so that the packages ship a single `bt-watchdog(1)` that refers to no
//! page they do not ship, and the exit codes under EXIT STATUS.

use std::io::{self, Write};

use clap_mangen::Man;

/// Renders the page for `cli` (the top-level command) to `out`.
pub fn render(mut cli: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    // Built first, so that the global options (--log-format) reach every subcommand.
    cli.build();
    let main = Man::new(cli.clone());
    main.render_title(out)?;
    main.render_name_section(out)?;
    main.render_synopsis_section(out)?;
    main.render_description_section(out)?;
    main.render_options_section(out)?;
    let program = cli.get_name().to_string();
    for sub in cli
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        let name = format!("{program} {}", sub.get_name());
        writeln!(out, ".SH \"{}\"", roff_text(&name.to_uppercase()))?;
        let man = Man::new(sub.clone().bin_name(&name));
        let mut sections = Vec::new();
        man.render_synopsis_section(&mut sections)?;
        man.render_description_section(&mut sections)?;
        if sub.get_arguments().any(|arg| !arg.is_hide_set()) {
            man.render_options_section(&mut sections)?;
        }
        // The command's own sections become subsections of its heading.
        out.write_all(&demote_headings(&sections))?;
    }
    let mut exit = Vec::new();
    main.render_extra_section(&mut exit)?;
    let exit = String::from_utf8_lossy(&exit).replace(".SH EXTRA", ".SH \"EXIT STATUS\"");
    out.write_all(exit.as_bytes())?;
    main.render_version_section(out)?;
    Ok(())
}

/// `.SH` (section) lines of a rendered fragment as `.SS` (subsection).
fn demote_headings(roff: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(roff)
        .lines()
        .map(|line| match line.strip_prefix(".SH ") {
            Some(title) => format!(".SS {title}\n"),
            None => format!("{line}\n"),
        })
        .collect::<String>()
        .into_bytes()
}

/// A hyphen in roff text is `\-` (a plain `-` may be typeset as a hyphen, not a minus).
fn roff_text(text: &str) -> String {
    text.replace('-', "\\-")
}
