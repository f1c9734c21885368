//! How `images` and `history` print their rows, as docker prints them: a table, one JSON
//! object per row (`--format json`), or the Go-template subset scripts use (`{{.ID}}`,
//! `{{.Repository}}:{{.Tag}}`, `{{json .}}`, `{{json .Size}}`, `table {{.ID}}\t{{.Size}}`);
//! any other template is refused, naming what is supported.

use anyhow::bail;

/// One row: (docker's field name, value), in column order.
pub type Row = Vec<(&'static str, String)>;

/// A column of the default table: the field and its header.
pub type Column = (&'static str, &'static str);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Field(String),
    /// `{{json .}}` (None) or `{{json .Field}}`.
    Json(Option<String>),
}

/// What `--format` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The default table of `columns`.
    Table,
    /// One JSON object per row.
    Json,
    /// A template per row; with `table`, a header line and aligned columns.
    Template { pieces: Vec<Piece>, table: bool },
}

impl Listing {
    /// Reads `--format`; `fields` are the names a template may use.
    pub fn parse(format: Option<&str>, fields: &[&str]) -> anyhow::Result<Listing> {
        let Some(format) = format else {
            return Ok(Listing::Table);
        };
        match format.trim() {
            "" | "table" => return Ok(Listing::Table),
            "json" => return Ok(Listing::Json),
            _ => {}
        }
        let (table, text) = match format.strip_prefix("table ") {
            Some(rest) => (true, rest),
            None => (false, format),
        };
        // As docker's formatter: `\t` and `\n` written literally mean a tab and a newline.
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find("}}") else {
                bail!("--format {format:?}: a {{{{ without }}}}");
            };
            let action = rest[open + 2..open + close].trim();
            pieces.push(read_action(format, action, fields)?);
            rest = &rest[open + close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Listing::Template { pieces, table })
    }

    /// The lines to print for `rows` (a table's header first).
    pub fn render(&self, columns: &[Column], rows: &[Row]) -> Vec<String> {
        match self {
            Listing::Table => {
                let header: Vec<String> = columns.iter().map(|(_, h)| h.to_string()).collect();
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|row| columns.iter().map(|(f, _)| value(row, f)).collect())
                    .collect();
                aligned(header, cells)
            }
            Listing::Json => rows.iter().map(|row| json_row(row).to_string()).collect(),
            Listing::Template { pieces, table } => {
                let lines: Vec<String> = rows.iter().map(|row| render(pieces, row)).collect();
                if !*table {
                    return lines;
                }
                let header = render_header(pieces, columns);
                let split = |line: &str| line.split('\t').map(str::to_string).collect();
                aligned(split(&header), lines.iter().map(|l| split(l)).collect())
            }
        }
    }
}

fn read_action(format: &str, action: &str, fields: &[&str]) -> anyhow::Result<Piece> {
    let field = |name: &str| -> anyhow::Result<String> {
        let name = name.trim_start_matches('.');
        if fields.contains(&name) {
            Ok(name.to_string())
        } else {
            bail!(
                "--format {format:?}: no field {name:?} (fields: {})",
                fields.join(", ")
            )
        }
    };
    let words: Vec<&str> = action.split_whitespace().collect();
    match words.as_slice() {
        [single] if single.starts_with('.') && single.len() > 1 => Ok(Piece::Field(field(single)?)),
        ["json", "."] => Ok(Piece::Json(None)),
        ["json", arg] if arg.starts_with('.') => Ok(Piece::Json(Some(field(arg)?))),
        _ => bail!(
            "--format {format:?}: {{{{{action}}}}} is not supported (only {{{{.Field}}}}, {{{{json .}}}} and {{{{json .Field}}}}, or json / table)"
        ),
    }
}

fn value(row: &Row, field: &str) -> String {
    row.iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn json_row(row: &Row) -> serde_json::Value {
    serde_json::Value::Object(
        row.iter()
            .map(|(f, v)| (f.to_string(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

fn render(pieces: &[Piece], row: &Row) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Field(field) => out.push_str(&value(row, field)),
            Piece::Json(None) => out.push_str(&json_row(row).to_string()),
            Piece::Json(Some(field)) => {
                out.push_str(&serde_json::Value::String(value(row, field)).to_string())
            }
        }
    }
    out
}

/// A `table` template's header: each field's column header (its name upper-cased when the
/// default table has no such column).
fn render_header(pieces: &[Piece], columns: &[Column]) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Field(field) | Piece::Json(Some(field)) => out.push_str(
                &columns
                    .iter()
                    .find(|(f, _)| f == field)
                    .map_or_else(|| field.to_ascii_uppercase(), |(_, h)| h.to_string()),
            ),
            Piece::Json(None) => {}
        }
    }
    out
}

/// Cells padded to their column's width plus three spaces, as docker's tabwriter; the last
/// column is not padded (the others are, even when the last cell is empty).
fn aligned(header: Vec<String>, rows: Vec<Vec<String>>) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i >= widths.len() {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let last = row.len().saturating_sub(1);
            row.iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i == last {
                        cell.clone()
                    } else {
                        format!("{cell:<width$}", width = widths[i] + 3)
                    }
                })
                .collect::<String>()
        })
        .collect()
}

/// How long ago `created` (RFC 3339) was, as docker says it ("2 minutes ago",
/// "About an hour ago"); empty when it cannot be read.
pub fn since(created: &str, now: i64) -> String {
    match parse_rfc3339(created) {
        Some(then) => format!("{} ago", human_duration(now.saturating_sub(then).max(0))),
        None => String::new(),
    }
}

/// docker's units.HumanDuration, in seconds.
fn human_duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        plural(seconds, "second")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        plural(minutes, "minute")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        plural(hours, "hour")
    } else if hours < 24 * 7 * 2 {
        plural(hours / 24, "day")
    } else if hours < 24 * 30 * 2 {
        plural(hours / 24 / 7, "week")
    } else if hours < 24 * 365 * 2 {
        plural(hours / 24 / 30, "month")
    } else {
        plural(hours / 24 / 365, "year")
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let num = |s: &str| s.parse::<i64>().ok();
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => (&time[..at], &time[at..]),
        None => (time, "Z"),
    };
    let clock = clock.split('.').next()?;
    let mut c = clock.splitn(3, ':');
    let (h, m, s) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    let offset = match offset {
        "Z" | "z" => 0,
        other => {
            let sign = if other.starts_with('-') { -1 } else { 1 };
            let (oh, om) = other[1..].split_once(':')?;
            sign * (num(oh)? * 3600 + num(om)? * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [&str; 3] = ["ID", "Repository", "Tag"];
    const COLUMNS: [Column; 3] = [
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("ID", "IMAGE ID"),
    ];

    fn rows() -> Vec<Row> {
        vec![
            vec![
                ("ID", "abc".into()),
                ("Repository", "app".into()),
                ("Tag", "1".into()),
            ],
            vec![
                ("ID", "def".into()),
                ("Repository", "busybox".into()),
                ("Tag", "latest".into()),
            ],
        ]
    }

    #[test]
    fn formats_as_docker_prints_them() {
        let render = |f: &str| {
            Listing::parse(Some(f), &FIELDS)
                .expect(f)
                .render(&COLUMNS, &rows())
        };
        assert_eq!(
            render("{{.Repository}}:{{.Tag}}"),
            ["app:1", "busybox:latest"]
        );
        assert_eq!(
            render("json")[0],
            r#"{"ID":"abc","Repository":"app","Tag":"1"}"#
        );
        assert_eq!(render("{{json .}}"), render("json"));
        assert_eq!(render("{{json .ID}}")[1], "\"def\"");
        assert_eq!(
            render("table {{.ID}}\\t{{.Repository}}"),
            [
                "IMAGE ID   REPOSITORY",
                "abc        app",
                "def        busybox"
            ]
        );
        assert_eq!(
            render("table"),
            [
                "REPOSITORY   TAG      IMAGE ID",
                "app          1        abc",
                "busybox      latest   def"
            ]
        );
        for bad in ["{{if .ID}}x{{end}}", "{{.Nope}}", "{{upper .ID}}", "{{.ID"] {
            assert!(Listing::parse(Some(bad), &FIELDS).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_as_docker_says_them() {
        let now = parse_rfc3339("2026-12-07T12:00:00Z").expect("now");
        let ago = |t: &str| since(t, now);
        assert_eq!(ago("2026-12-07T12:00:00Z"), "Less than a second ago");
        assert_eq!(ago("2026-12-07T11:59:30Z"), "30 seconds ago");
        assert_eq!(ago("2026-12-07T11:58:30.5Z"), "About a minute ago");
        assert_eq!(ago("2026-12-07T11:00:00Z"), "About an hour ago");
        assert_eq!(ago("2026-12-07T13:00:00+02:00"), "About an hour ago");
        assert_eq!(ago("2026-12-04T12:00:00Z"), "3 days ago");
        assert_eq!(ago("2026-11-01T12:00:00Z"), "5 weeks ago");
        assert_eq!(ago("1970-01-01T00:00:00Z"), "56 years ago");
        assert_eq!(ago("not a time"), "");
    }
}
