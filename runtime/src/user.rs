//! Resolves a Dockerfile `USER` value (`name`, `uid`, `name:group`, `uid:gid`) against the
//! image's /etc/passwd and /etc/group, as runc/BuildKit do, with supplementary groups.

use crate::error::RuntimeError;

/// The ids a step process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: every group of /etc/group listing the user by name.
    pub additional_gids: Vec<u32>,
    /// Home directory from /etc/passwd (`/` when unknown), for `HOME` when the step sets none.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(group: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    group.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let members = f[3]
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members,
        })
    })
}

/// Resolves `spec` (empty means root). `passwd`/`group` are the image's files (empty when
/// missing). Numeric ids need no entry; names must exist, as in Docker.
/// The owner `COPY/ADD --chown=USER[:GROUP]` gives, as BuildKit's file ops read it
/// (solver/llbsolver/file/user_linux.go readUser): a numeric user is uid and gid both; a
/// user name takes its uid and primary group from `passwd`; a group (number, or a name in
/// `group`) replaces the gid. A name the image does not know changes nothing: an unknown
/// user is 0:0, an unknown group keeps the user's gid (conformance cases copy-034, copy-054).
pub fn chown_ids(spec: &str, passwd: &str, group: &str) -> (u32, u32) {
    let (user_part, group_part) = match spec.trim().split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec.trim(), None),
    };
    let (uid, mut gid) = match user_part.parse::<u32>() {
        Ok(id) => (id, id),
        Err(_) => passwd_entries(passwd)
            .find(|e| e.name == user_part)
            .map_or((0, 0), |e| (e.uid, e.gid)),
    };
    if let Some(group_part) = group_part.filter(|g| !g.is_empty()) {
        match group_part.parse::<u32>() {
            Ok(id) => gid = id,
            Err(_) => {
                if let Some(entry) = group_entries(group).find(|g| g.name == group_part) {
                    gid = entry.gid;
                }
            }
        }
    }
    (uid, gid)
}

pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, RuntimeError> {
    let spec = spec.trim();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = passwd_entries(passwd).find(|e| match user_part.parse::<u32>() {
        Ok(uid) => e.uid == uid,
        Err(_) => e.name == user_part,
    });
    let (uid, mut gid, name, home) = match (user_part.parse::<u32>(), &entry) {
        (Ok(uid), Some(e)) => (uid, e.gid, Some(e.name), e.home.to_string()),
        (Ok(uid), None) => (uid, 0, None, "/".to_string()),
        (Err(_), Some(e)) => (e.uid, e.gid, Some(e.name), e.home.to_string()),
        (Err(_), None) => {
            return Err(RuntimeError::UnknownUser {
                user: user_part.to_string(),
            });
        }
    };

    if let Some(group_part) = group_part.filter(|g| !g.is_empty()) {
        gid = match group_part.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|g| g.name == group_part)
                .map(|g| g.gid)
                .ok_or_else(|| RuntimeError::UnknownGroup {
                    group: group_part.to_string(),
                })?,
        };
    }

    // `uid:gid` in numbers has no supplementary group at all, as BuildKit's GetUser takes it
    // (its fast path; conformance case user-002-uid-gid: busybox `id` shows no groups).
    // Otherwise the primary group is also a supplementary one, as containerd and podman set
    // it; the groups listing the user are added only when no group was named explicitly.
    let numeric =
        user_part.parse::<u32>().is_ok() && group_part.is_some_and(|g| g.parse::<u32>().is_ok());
    if numeric {
        return Ok(ResolvedUser {
            uid,
            gid,
            additional_gids: Vec::new(),
            home: if home.is_empty() { "/".into() } else { home },
        });
    }
    let mut additional_gids = vec![gid];
    if group_part.is_none() {
        if let Some(name) = name {
            for g in group_entries(group) {
                if g.members.contains(&name) && g.gid != gid && !additional_gids.contains(&g.gid) {
                    additional_gids.push(g.gid);
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn chown_ids_as_buildkit_reads_them() {
        let passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
        let group = "root:x:0:\nstaff:x:50:\n";
        assert_eq!(chown_ids("1234", passwd, group), (1234, 1234));
        assert_eq!(chown_ids("app", passwd, group), (1000, 1001));
        assert_eq!(chown_ids("app:staff", passwd, group), (1000, 50));
        assert_eq!(chown_ids("app:99", passwd, group), (1000, 99));
        assert_eq!(chown_ids("1234:staff", passwd, group), (1234, 50));
        // Names the image does not know change nothing.
        assert_eq!(chown_ids("nosuchuser", passwd, group), (0, 0));
        assert_eq!(chown_ids("app:nosuchgroup", passwd, group), (1000, 1001));
        assert_eq!(chown_ids("nosuchuser:staff", passwd, group), (0, 50));
    }

    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nextra:x:2000:app,other\nwheel:x:10:root\n";

    type Resolved = (u32, u32, Vec<u32>, String);
    type Row = (
        &'static str,
        Result<(u32, u32, Vec<u32>, &'static str), &'static str>,
    );

    fn resolve(spec: &str) -> Result<Resolved, RuntimeError> {
        resolve_user(spec, PASSWD, GROUP).map(|u| (u.uid, u.gid, u.additional_gids, u.home))
    }

    #[test]
    fn resolves_users_and_groups() {
        let table: &[Row] = &[
            ("", Ok((0, 0, vec![0, 10], "/root"))),
            ("root", Ok((0, 0, vec![0, 10], "/root"))),
            ("0", Ok((0, 0, vec![0, 10], "/root"))),
            ("app", Ok((1000, 1000, vec![1000, 2000], "/home/app"))),
            ("1000", Ok((1000, 1000, vec![1000, 2000], "/home/app"))),
            ("app:extra", Ok((1000, 2000, vec![2000], "/home/app"))),
            ("app:0", Ok((1000, 0, vec![0], "/home/app"))),
            ("1000:1000", Ok((1000, 1000, vec![], "/home/app"))),
            ("4242", Ok((4242, 0, vec![0], "/"))),
            ("4242:77", Ok((4242, 77, vec![], "/"))),
            ("nobody", Ok((65534, 65534, vec![65534], "/nonexistent"))),
            (
                "ghost",
                Err("unable to find user ghost: no matching entries in passwd file"),
            ),
            (
                "app:ghosts",
                Err("unable to find group ghosts: no matching entries in group file"),
            ),
        ];
        for (spec, want) in table {
            let want = want
                .clone()
                .map(|(u, g, a, h)| (u, g, a, h.to_string()))
                .map_err(str::to_string);
            assert_eq!(
                resolve(spec).map_err(|e| e.to_string()),
                want,
                "USER {spec}"
            );
        }
    }

    #[test]
    fn missing_files_allow_numeric_ids_only() {
        assert_eq!(
            resolve_user("1000:1000", "", "")
                .map(|u| (u.uid, u.gid))
                .ok(),
            Some((1000, 1000))
        );
        assert!(resolve_user("app", "", "").is_err());
    }
}
