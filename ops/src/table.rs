//! Plain-text tables for people, laid out by comfy-table: columns are as
//! wide as their widest cell in display width (so names in any script line
//! up), two spaces apart, no borders.

use comfy_table::ContentArrangement;
use comfy_table::presets::NOTHING;

use crate::untrusted::escaped;

/// Space after each column, in characters.
const COLUMN_GAP: u16 = 2;

/// A table: headers, rows, columns padded to their widest cell.
pub struct Table {
    table: comfy_table::Table,
    columns: usize,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(headers.to_vec());
        for column in table.column_iter_mut() {
            column.set_padding((0, COLUMN_GAP));
        }
        Table {
            table,
            columns: headers.len(),
        }
    }

    /// Adds a row; control characters in a cell (a newline too) are
    /// shown escaped, so no cell can break the layout or the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.columns, "a row has one cell per column");
        self.table
            .add_row(cells.iter().map(|cell| escaped(cell).into_owned()));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in self.table.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut table = Table::new(&["SITE", "ROLE"]);
        table.row(vec!["1".into(), "leader".into()]);
        table.row(vec!["22".into(), "follower".into()]);
        assert_eq!(table.render(), "SITE  ROLE\n1     leader\n22    follower\n");
    }

    #[test]
    fn a_cell_cannot_break_the_layout_or_the_terminal() {
        let mut table = Table::new(&["NAME", "ROLE"]);
        table.row(vec!["<script>\x1b[2J".into(), "two\nlines".into()]);
        assert_eq!(
            table.render(),
            "NAME               ROLE\n<script>\\u{1b}[2J  two\\nlines\n"
        );
    }

    #[test]
    fn wide_characters_count_by_display_width() {
        let mut table = Table::new(&["NAME", "ROLE"]);
        table.row(vec!["東京".into(), "leader".into()]);
        table.row(vec!["a".into(), "follower".into()]);
        assert_eq!(table.render(), "NAME  ROLE\n東京  leader\na     follower\n");
    }
}
