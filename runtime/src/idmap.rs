//! Subordinate id ranges from /etc/subuid and /etc/subgid, and the id maps built from them.
//! Pure parsing so that the mapping rules are unit-tested without a user namespace.

// Paths here are kernel interfaces (/proc, /sys) and the step's own files: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

/// One `name:start:count` line of /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubidRange {
    pub start: u32,
    pub count: u32,
}

/// One line of a uid_map/gid_map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapEntry {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Ranges for `user` (matched by name or by numeric id, as shadow-utils does) in the text of a
/// subid file. Malformed lines are skipped, as newuidmap does.
pub fn parse_subid_ranges(text: &str, user: &str, uid: u32) -> Vec<SubidRange> {
    let uid_text = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut fields = line.split(':');
            let owner = fields.next()?;
            let start = fields.next()?.trim().parse::<u32>().ok()?;
            let count = fields.next()?.trim().parse::<u32>().ok()?;
            if fields.next().is_some() || count == 0 {
                return None;
            }
            (owner == user || owner == uid_text).then_some(SubidRange { start, count })
        })
        .collect()
}

/// Reads the ranges of `user` from a subid file; a missing file means no ranges.
pub fn read_subid_ranges(path: &Path, user: &str, uid: u32) -> Vec<SubidRange> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_subid_ranges(&text, user, uid),
        Err(_) => Vec::new(),
    }
}

/// The map rbuild asks for: container 0 is the caller, container 1.. are the subordinate ranges
/// laid end to end (so a 65536-id range gives container ids 0..=65536).
pub fn build_id_map(caller: u32, ranges: &[SubidRange]) -> Vec<IdMapEntry> {
    let mut map = vec![IdMapEntry {
        inside: 0,
        outside: caller,
        count: 1,
    }];
    let mut next_inside: u32 = 1;
    for range in ranges {
        map.push(IdMapEntry {
            inside: next_inside,
            outside: range.start,
            count: range.count,
        });
        next_inside = next_inside.saturating_add(range.count);
    }
    map
}

/// Arguments for newuidmap/newgidmap after the pid: `inside outside count` triples.
pub fn map_args(map: &[IdMapEntry]) -> Vec<String> {
    map.iter()
        .flat_map(|e| {
            [
                e.inside.to_string(),
                e.outside.to_string(),
                e.count.to_string(),
            ]
        })
        .collect()
}

/// Number of container ids the map covers (the highest mapped container id + 1).
pub fn mapped_len(map: &[IdMapEntry]) -> u64 {
    map.iter()
        .map(|e| u64::from(e.inside) + u64::from(e.count))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_by_name_or_uid_and_skip_bad_lines() {
        let text = "alice:100000:65536\nbob:200000:65536\n# comment\n1000:300000:10\nbroken\nalice:x:1\nalice:400000:0\nalice:500000:5\n";
        assert_eq!(
            parse_subid_ranges(text, "alice", 1000),
            vec![
                SubidRange {
                    start: 100000,
                    count: 65536
                },
                SubidRange {
                    start: 300000,
                    count: 10
                },
                SubidRange {
                    start: 500000,
                    count: 5
                },
            ]
        );
        assert_eq!(parse_subid_ranges(text, "carol", 1001), vec![]);
    }

    #[test]
    fn map_puts_caller_at_zero_and_ranges_after() {
        let map = build_id_map(
            1000,
            &[
                SubidRange {
                    start: 100000,
                    count: 65536,
                },
                SubidRange {
                    start: 300000,
                    count: 10,
                },
            ],
        );
        assert_eq!(
            map_args(&map),
            ["0", "1000", "1", "1", "100000", "65536", "65537", "300000", "10"]
        );
        assert_eq!(mapped_len(&map), 65547);
    }

    #[test]
    fn map_without_ranges_is_single_id() {
        let map = build_id_map(1000, &[]);
        assert_eq!(
            map,
            vec![IdMapEntry {
                inside: 0,
                outside: 1000,
                count: 1
            }]
        );
        assert_eq!(mapped_len(&map), 1);
    }
}
