//! `--call=targets` and `--call=outline`, as buildx: a Dockerfile's build targets, and what
//! one target takes (build arguments with their defaults, secrets, ssh agents), each with the
//! description a comment right above its FROM or ARG gives (`# NAME description...`).

use super::Plan;
use crate::dockerfile::{Instruction, InstructionKind, MountKind};

/// A description comment: the comment block right above, when it starts with `name`.
fn description(comments: &[String], name: &str) -> String {
    let Some(first) = comments.first() else {
        return String::new();
    };
    match first.split_once(char::is_whitespace) {
        Some((word, rest)) if word == name => std::iter::once(rest.trim())
            .chain(comments[1..].iter().map(|l| l.trim()))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The build targets (named stages), the default (last) one marked.
pub fn targets(plan: &Plan) -> String {
    let mut rows = vec![("TARGET".to_string(), "DESCRIPTION".to_string())];
    let last = plan.stages.len().saturating_sub(1);
    for stage in &plan.stages {
        let mut name = stage.label();
        if stage.index == last {
            name.push_str(" (default)");
        }
        let described = stage
            .name
            .as_deref()
            .map(|n| description(&stage.from.comments, n))
            .unwrap_or_default();
        rows.push((name, described));
    }
    table(&rows)
}

/// What the plan's target takes: its description, the build arguments of the global scope
/// and of the stages it needs (with their defaults), and the secrets and ssh agents its
/// steps mount.
pub fn outline(plan: &Plan, global: &[Instruction]) -> String {
    let target = &plan.stages[plan.target];
    let mut out = format!("TARGET:      {}\n", target.label());
    if let Some(name) = &target.name {
        let described = description(&target.from.comments, name);
        if !described.is_empty() {
            out.push_str(&format!("DESCRIPTION: {described}\n"));
        }
    }
    let mut args = vec![(
        "BUILD ARG".to_string(),
        "VALUE".to_string(),
        "DESCRIPTION".to_string(),
    )];
    let mut secrets = vec![("SECRET".to_string(), "REQUIRED".to_string())];
    let mut ssh = vec![("SSH".to_string(), "REQUIRED".to_string())];
    let needed = plan
        .order
        .iter()
        .flat_map(|i| plan.stages[*i].instructions.iter().copied());
    for ins in global.iter().chain(needed) {
        match &ins.kind {
            InstructionKind::Arg(decls) => {
                for decl in decls {
                    if args.iter().any(|(n, _, _)| *n == decl.name) {
                        continue;
                    }
                    let described = if decls.len() == 1 {
                        description(&ins.comments, &decl.name)
                    } else {
                        String::new()
                    };
                    args.push((
                        decl.name.clone(),
                        decl.default.clone().unwrap_or_default(),
                        described,
                    ));
                }
            }
            InstructionKind::Run { flags, .. } => {
                for mount in &flags.mounts {
                    let row = (mount.id.clone(), mount.required.to_string());
                    match mount.kind {
                        MountKind::Secret if !secrets.contains(&row) => secrets.push(row),
                        MountKind::Ssh if !ssh.contains(&row) => ssh.push(row),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if args.len() > 1 {
        out.push('\n');
        out.push_str(&table3(&args));
    }
    for list in [secrets, ssh] {
        if list.len() > 1 {
            out.push('\n');
            out.push_str(&table(&list));
        }
    }
    out
}

fn table(rows: &[(String, String)]) -> String {
    let width = rows.iter().map(|(a, _)| a.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(a, b)| format!("{a:<width$}   {b}").trim_end().to_string() + "\n")
        .collect()
}

fn table3(rows: &[(String, String, String)]) -> String {
    let first = rows.iter().map(|(a, _, _)| a.len()).max().unwrap_or(0);
    let second = rows.iter().map(|(_, b, _)| b.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(a, b, c)| {
            format!("{a:<first$}   {b:<second$}   {c}")
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{plan, PlanInput, Platform};
    use std::collections::BTreeMap;

    const DOCKERFILE: &str = "# VERSION sets the release\n\
        ARG VERSION=1.0\n\
        \n\
        # base is a plain stage\n\
        FROM scratch AS base\n\
        \n\
        # build compiles the app\n\
        # with every optimisation\n\
        FROM base AS build\n\
        # GOOS picks the system\n\
        ARG GOOS=linux\n\
        RUN --mount=type=secret,id=token,required --mount=type=ssh make\n\
        \n\
        FROM scratch AS unused\n\
        ARG NOT_NEEDED\n\
        \n\
        # a note, not a description\n\
        FROM build AS release\n";

    fn with_plan(target: Option<&str>, check: impl FnOnce(&Plan, &[Instruction])) {
        let parsed = crate::dockerfile::parse(DOCKERFILE).expect("parse");
        let platform = Platform::host();
        let input = PlanInput {
            instructions: &parsed.instructions,
            escape: '\\',
            build_args: &BTreeMap::new(),
            target,
            platform: &platform,
            named_contexts: &BTreeMap::new(),
        };
        let planned = plan(&input).unwrap_or_else(|e| panic!("{}", e.message));
        check(&planned, &parsed.instructions[..1]);
    }

    #[test]
    fn targets_with_their_descriptions() {
        with_plan(None, |plan, _| {
            let listed = targets(plan);
            let lines: Vec<&str> = listed.lines().collect();
            assert_eq!(
                lines[0].split_whitespace().collect::<Vec<_>>(),
                ["TARGET", "DESCRIPTION"]
            );
            assert!(lines[1].starts_with("base") && lines[1].ends_with("is a plain stage"));
            assert!(lines[2].ends_with("compiles the app with every optimisation"));
            assert_eq!(lines[3].trim(), "unused");
            assert_eq!(
                lines[4].trim(),
                "release (default)",
                "a comment not naming it"
            );
        });
    }

    #[test]
    fn outline_of_a_target() {
        with_plan(Some("build"), |plan, global| {
            let text = outline(plan, global);
            assert!(text.starts_with("TARGET:      build\n"), "{text}");
            assert!(text.contains("DESCRIPTION: compiles the app with every optimisation"));
            let arg = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(name))
                    .map(str::to_string)
            };
            assert!(arg("VERSION")
                .is_some_and(|l| l.contains("1.0") && l.ends_with("sets the release")));
            assert!(
                arg("GOOS").is_some_and(|l| l.contains("linux") && l.ends_with("picks the system"))
            );
            assert!(
                arg("NOT_NEEDED").is_none(),
                "a stage the target does not need: {text}"
            );
            assert!(arg("token").is_some_and(|l| l.ends_with("true")), "{text}");
            assert!(
                arg("default").is_some_and(|l| l.ends_with("false")),
                "{text}"
            );
        });
    }
}
