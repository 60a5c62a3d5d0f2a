//! Plain-text tables for people (`--json` is for scripts): a header line, then one line per
//! row, columns separated by at least two spaces, the last column not padded.

use crate::Result;
use std::io::Write;

/// Writes `header` and `rows` as aligned columns.
pub(crate) fn write(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        let mut cells = cells.zip(&widths).peekable();
        while let Some((cell, w)) = cells.next() {
            s.push_str(cell);
            if cells.peek().is_some() {
                s.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        s
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}
