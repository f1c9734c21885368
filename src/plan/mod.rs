//! Dockerfile -> build graph: stages with their base (scratch, an image, or an earlier stage),
//! the stages each one reads from (`COPY --from`, `RUN --mount=from=`), and the stages a
//! target needs, in an order where every stage comes after the stages it needs.

mod args;
pub mod checks;
pub mod outline;

use std::collections::BTreeMap;

pub use args::{is_proxy_arg, platform_args, Platform, PROXY_ARGS};

use crate::dockerfile::{Flag, Instruction, InstructionKind};

/// Where a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference (expanded), looked up in the store.
    Image(String),
    /// A directory `--build-context` by its name: the stage starts from its files (its
    /// `.dockerignore` applied), with an empty config, as BuildKit's local contexts.
    Dir(String),
}

/// Where `COPY --from` or a `RUN --mount` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stage(usize),
    Image(String),
    /// A directory given with `--build-context NAME=DIR`.
    Dir(std::path::PathBuf),
}

/// `--build-context NAME=VALUE`: replaces the stage or image called NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    Dir(std::path::PathBuf),
    /// An image reference (or id) in the store.
    Image(String),
}

#[derive(Debug, Clone)]
pub struct StagePlan<'a> {
    pub index: usize,
    /// The `AS` name, lower-cased as BuildKit compares them.
    pub name: Option<String>,
    pub from: &'a Instruction,
    pub base: Base,
    /// Instructions after FROM.
    pub instructions: Vec<&'a Instruction>,
    /// Stages this one needs finished first (its base and every `--from`).
    pub deps: Vec<usize>,
    /// `FROM --platform=...`; None means the build's target platform.
    pub platform: Option<Platform>,
}

impl StagePlan<'_> {
    /// How progress names the stage: its name, or `stage-N`.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// ARGs declared before the first FROM, with their values (build args applied).
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<StagePlan<'a>>,
    /// Index of the stage whose result is the image.
    pub target: usize,
    /// The stages the target needs (itself included), each after its dependencies.
    pub order: Vec<usize>,
    /// Build args that some ARG declared (the others were not consumed).
    pub declared_args: Vec<String>,
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// The platform the image is built for.
    pub platform: Platform,
}

/// What went wrong while planning, with the instruction it concerns.
#[derive(Debug, Clone)]
pub struct PlanError<'a> {
    pub instruction: Option<&'a Instruction>,
    pub keyword: &'static str,
    pub message: String,
}

fn error<'a>(
    instruction: Option<&'a Instruction>,
    keyword: &'static str,
    message: impl Into<String>,
) -> PlanError<'a> {
    PlanError {
        instruction,
        keyword,
        message: message.into(),
    }
}

/// What the planner needs from the build's options.
pub struct PlanInput<'a> {
    pub instructions: &'a [Instruction],
    pub escape: char,
    pub build_args: &'a BTreeMap<String, String>,
    pub target: Option<&'a str>,
    pub platform: &'a Platform,
    pub named_contexts: &'a BTreeMap<String, NamedContext>,
}

pub fn flag<'f>(flags: &'f [Flag], name: &str) -> Option<&'f str> {
    flags
        .iter()
        .rev()
        .find(|f| f.name == name)
        .map(|f| f.value.as_deref().unwrap_or(""))
}

pub fn plan<'a>(input: &PlanInput<'a>) -> Result<Plan<'a>, PlanError<'a>> {
    // Predefined platform args are in the global scope without a declaration.
    let mut planner = Planner {
        input,
        global_args: platform_args(input.platform)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
        declared_args: Vec::new(),
    };
    let first_stage = planner.read_global_args()?;
    let mut stages = planner.split_stages(&input.instructions[first_stage..])?;
    let forward = planner.add_source_deps(&mut stages)?;
    let target = match input.target {
        None => stages.len() - 1,
        Some(name) => find_stage(&stages, name).ok_or_else(|| {
            error(
                None,
                "FROM",
                format!("target stage {name:?} could not be found"),
            )
        })?,
    };
    let mut order = Vec::new();
    let mut visiting = Vec::new();
    if let Err(cycle) = visit(&stages, target, &mut order, &mut visiting) {
        let stage = &stages[cycle];
        return Err(error(
            Some(stage.from),
            "FROM",
            format!("circular dependency detected on stage: {}", stage.label()),
        ));
    }
    if let Some((_, refused)) = forward.into_iter().find(|(i, _)| order.contains(i)) {
        return Err(refused);
    }
    Ok(Plan {
        global_args: planner.global_args,
        stages,
        target,
        order,
        declared_args: planner.declared_args,
        named_contexts: input.named_contexts.clone(),
        platform: input.platform.clone(),
    })
}

/// The planner's state: the global ARGs as they are declared (the predefined platform args
/// first).
struct Planner<'a, 'i> {
    input: &'i PlanInput<'a>,
    global_args: Vec<(String, Option<String>)>,
    declared_args: Vec<String>,
}

fn lookup_in(args: &[(String, Option<String>)], name: &str) -> Option<String> {
    args.iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.clone())
}

impl<'a> Planner<'a, '_> {
    /// `word` with the global ARGs expanded, an error pointing at `ins`.
    fn expand(
        &self,
        ins: &'a Instruction,
        keyword: &'static str,
        word: &str,
    ) -> Result<String, PlanError<'a>> {
        crate::dockerfile::expand_word(word, self.input.escape, &|n| {
            lookup_in(&self.global_args, n)
        })
        .map(|e| e.value)
        .map_err(|e| error(Some(ins), keyword, e.to_string()))
    }

    /// The ARGs before the first FROM; returns the index of the first other instruction.
    fn read_global_args(&mut self) -> Result<usize, PlanError<'a>> {
        let instructions = self.input.instructions;
        let mut next = 0;
        while let Some(ins) = instructions.get(next) {
            let InstructionKind::Arg(decls) = &ins.kind else {
                break;
            };
            for decl in decls {
                let value = match self.input.build_args.get(&decl.name) {
                    Some(v) => Some(v.clone()),
                    None => match &decl.default {
                        Some(default) => Some(self.expand(ins, "ARG", default)?),
                        None => lookup_in(&self.global_args, &decl.name),
                    },
                };
                self.declared_args.push(decl.name.clone());
                self.global_args.push((decl.name.clone(), value));
            }
            next += 1;
        }
        Ok(next)
    }

    /// Each FROM starts a stage; the instructions after it are its own.
    fn split_stages(
        &self,
        instructions: &'a [Instruction],
    ) -> Result<Vec<StagePlan<'a>>, PlanError<'a>> {
        let mut stages: Vec<StagePlan> = Vec::new();
        for ins in instructions {
            if let InstructionKind::From {
                image,
                alias,
                flags,
            } = &ins.kind
            {
                let stage = self.stage(ins, image, alias.as_deref(), flags, &stages)?;
                stages.push(stage);
                continue;
            }
            let Some(stage) = stages.last_mut() else {
                return Err(error(Some(ins), ins.kind.keyword(), "no build stage in current context: the first instruction must be FROM (after optional ARGs)"));
            };
            stage.instructions.push(ins);
        }
        if stages.is_empty() {
            return Err(error(
                None,
                "FROM",
                "no FROM instruction: a Dockerfile needs at least one stage",
            ));
        }
        Ok(stages)
    }

    /// The stage a FROM starts: its name, platform and base (a named context, scratch, an
    /// earlier stage, else an image).
    fn stage(
        &self,
        ins: &'a Instruction,
        image: &str,
        alias: Option<&str>,
        flags: &[Flag],
        stages: &[StagePlan<'a>],
    ) -> Result<StagePlan<'a>, PlanError<'a>> {
        if let Some(flag) = flags.iter().find(|f| f.name != "platform") {
            return Err(error(
                Some(ins),
                "FROM",
                format!("unknown flag: --{}", flag.name),
            ));
        }
        // FROM --platform=$BUILDPLATFORM (the cross-compilation idiom) or any platform.
        let platform = match flag(flags, "platform") {
            Some(value) => {
                let text = self.expand(ins, "FROM", value)?;
                Some(Platform::parse(&text).map_err(|e| error(Some(ins), "FROM", e.to_string()))?)
            }
            None => None,
        };
        let image = self.expand(ins, "FROM", image)?;
        // A name used twice is allowed (the check DuplicateStageName warns): as in
        // BuildKit, the later stage takes the name from where it is defined on.
        let name = alias.map(str::to_ascii_lowercase);
        let base = match self.input.named_contexts.get(&image) {
            Some(NamedContext::Image(reference)) => Base::Image(reference.clone()),
            Some(NamedContext::Dir(_)) => Base::Dir(image.clone()),
            None if image.eq_ignore_ascii_case("scratch") => Base::Scratch,
            None => match find_stage(stages, &image) {
                Some(i) => Base::Stage(i),
                None => Base::Image(image),
            },
        };
        Ok(StagePlan {
            index: stages.len(),
            name,
            from: ins,
            deps: match base {
                Base::Stage(i) => vec![i],
                _ => Vec::new(),
            },
            base,
            instructions: Vec::new(),
            platform,
        })
    }

    /// Sources named by --from. Returned: each use of a later stage, which BuildKit refuses
    /// when it dispatches the stage (in order: the later one is not built yet; conformance
    /// case fail-035-copy-from-later-stage), after it has looked for cycles.
    #[allow(clippy::type_complexity)]
    fn add_source_deps(
        &self,
        stages: &mut [StagePlan<'a>],
    ) -> Result<Vec<(usize, PlanError<'a>)>, PlanError<'a>> {
        let mut forward = Vec::new();
        for i in 0..stages.len() {
            let mut deps = stages[i].deps.clone();
            for ins in stages[i].instructions.clone() {
                let froms: Vec<String> = match &ins.kind {
                    InstructionKind::Copy(args) | InstructionKind::Add(args) => {
                        args.flags.from.iter().cloned().collect()
                    }
                    InstructionKind::Run { flags, .. } => {
                        flags.mounts.iter().filter_map(|m| m.from.clone()).collect()
                    }
                    _ => Vec::new(),
                };
                for from in froms {
                    let from = self.expand(ins, ins.kind.keyword(), &from)?;
                    if let Source::Stage(j) =
                        resolve_source(stages, i, self.input.named_contexts, &from)
                    {
                        if j > i {
                            let current = stages[i].label();
                            forward.push((
                                i,
                                error(
                                    Some(ins),
                                    ins.kind.keyword(),
                                    format!(
                                        "cannot use stage {from:?} from stage {current:?}: it needs to be defined before the current stage"
                                    ),
                                ),
                            ));
                        }
                        if !deps.contains(&j) {
                            deps.push(j);
                        }
                    }
                }
            }
            stages[i].deps = deps;
        }
        Ok(forward)
    }
}

/// A stage by name (case-insensitive): the last of `stages` with it (BuildKit's name map
/// keeps the latest stage given a name).
fn find_stage(stages: &[StagePlan], name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    stages
        .iter()
        .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
}

/// `--from=X`: a named context, another stage's name or index (not `current` itself), else
/// an image reference.
pub fn resolve_source(
    stages: &[StagePlan],
    current: usize,
    named: &BTreeMap<String, NamedContext>,
    from: &str,
) -> Source {
    match named.get(from) {
        Some(NamedContext::Dir(dir)) => return Source::Dir(dir.clone()),
        Some(NamedContext::Image(reference)) => return Source::Image(reference.clone()),
        None => {}
    }
    if let Some(i) = find_stage(stages, from).filter(|i| *i != current) {
        return Source::Stage(i);
    }
    match from.parse::<usize>() {
        Ok(i) if i < stages.len() && i != current => Source::Stage(i),
        _ => Source::Image(from.to_string()),
    }
}

/// Depth-first: dependencies before the stage. Err(stage) when a stage depends on itself
/// through others.
fn visit(
    stages: &[StagePlan],
    index: usize,
    order: &mut Vec<usize>,
    visiting: &mut Vec<usize>,
) -> Result<(), usize> {
    if order.contains(&index) {
        return Ok(());
    }
    if visiting.contains(&index) {
        return Err(index);
    }
    visiting.push(index);
    for dep in &stages[index].deps {
        visit(stages, *dep, order, visiting)?;
    }
    visiting.pop();
    order.push(index);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Planned = (Vec<usize>, Vec<Vec<usize>>, Vec<Base>);

    /// Why a test Dockerfile did not plan (owned: a `PlanError` borrows the parsed file).
    #[derive(Debug)]
    #[allow(dead_code)] // the fields are read through Debug when a test fails
    enum NotPlanned {
        Parse(crate::dockerfile::ParseError),
        Plan {
            keyword: &'static str,
            message: String,
        },
    }

    fn planned(source: &str, target: Option<&str>) -> Result<Planned, NotPlanned> {
        let parsed = crate::dockerfile::parse(source).map_err(NotPlanned::Parse)?;
        let build_args = BTreeMap::new();
        let platform = Platform::host();
        let input = PlanInput {
            instructions: &parsed.instructions,
            escape: '\\',
            build_args: &build_args,
            target,
            platform: &platform,
            named_contexts: &BTreeMap::new(),
        };
        let plan = plan(&input).map_err(|e| NotPlanned::Plan {
            keyword: e.keyword,
            message: e.message,
        })?;
        Ok((
            plan.order,
            plan.stages.iter().map(|s| s.deps.clone()).collect(),
            plan.stages.iter().map(|s| s.base.clone()).collect(),
        ))
    }

    #[test]
    fn stages_dependencies_and_target_pruning() {
        let df = "FROM busybox AS Base\nRUN true\nFROM scratch AS unused\nFROM base AS build\nCOPY --from=0 /a /a\nFROM scratch\nCOPY --from=BUILD /a /a\nCOPY --from=other/image:1 /b /b\n";
        let (order, deps, bases) = planned(df, None).expect("plan");
        assert_eq!(order, vec![0, 2, 3], "the unused stage is not built");
        assert_eq!(deps, vec![vec![], vec![], vec![0], vec![2]]);
        assert_eq!(
            bases,
            vec![
                Base::Image("busybox".into()),
                Base::Scratch,
                Base::Stage(0),
                Base::Scratch
            ]
        );
        let (order, _, _) = planned(df, Some("unused")).expect("plan");
        assert_eq!(order, vec![1]);
        assert!(planned(df, Some("nope")).is_err());
    }

    #[test]
    fn global_args_expand_from_and_duplicate_names_take_the_latest() {
        let df = "ARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG:-1}\n";
        let (_, _, bases) = planned(df, None).expect("plan");
        assert_eq!(bases, vec![Base::Image("busybox:1".into())]);
        // A duplicate name is a warning (DuplicateStageName); a FROM or --from naming it
        // takes the latest stage defined with it, as BuildKit's name map does.
        let dup = "FROM scratch AS a\nFROM a AS b\nFROM busybox AS A\nFROM a\n";
        let (order, _, bases) = planned(dup, None).expect("plan");
        assert_eq!(bases[1], Base::Stage(0));
        assert_eq!(bases[3], Base::Stage(2));
        assert_eq!(order, vec![2, 3]);
        // --from of a later stage is refused in a stage the target needs (BuildKit has not
        // built it yet), and not in one it does not need.
        let later =
            "FROM busybox AS a\nRUN --mount=from=b,target=/b true\nFROM busybox AS b\nFROM a\n";
        assert!(matches!(
            planned(later, None),
            Err(NotPlanned::Plan { message, .. }) if message.contains("defined before")
        ));
        assert!(planned(later, Some("b")).is_ok());
        assert!(planned("RUN true\n", None).is_err());
        let (_, _, bases) = planned("FROM scratch\nFROM $TARGETOS\n", None).expect("plan");
        assert_eq!(
            bases[1],
            Base::Image("linux".into()),
            "platform args are global"
        );
    }
}
