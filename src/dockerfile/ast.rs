//! The Dockerfile syntax tree: what `parse` produces and the solver consumes.
//! Words are kept as written (unexpanded); `expand` substitutes ARG/ENV values later.

/// Where an instruction sits in the Dockerfile, 1-based, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First line of the instruction.
    pub line: usize,
    /// Last line (continuations and heredoc bodies included).
    pub end_line: usize,
    /// Column of the instruction keyword on `line`.
    pub column: usize,
}

/// A whole parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
    /// Non-fatal findings of the parser (e.g. an empty continuation line, a frontend named in
    /// `# syntax=` that is not the Dockerfile frontend).
    pub warnings: Vec<Warning>,
}

/// Parser directives from the top of the file (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq)]
pub struct Directives {
    pub syntax: Option<String>,
    /// The escape character: `\` unless `# escape=` says `` ` ``.
    pub escape: char,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// One instruction with its position and its text as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub span: Span,
    /// The instruction's source text with line continuations joined (comments inside
    /// continuations removed), used for history entries and error context.
    pub original: String,
    pub kind: InstructionKind,
    /// The comment lines right above it (no blank line between), `#` removed: where
    /// descriptions of stages and ARGs come from (`--call=outline|targets`).
    pub comments: Vec<String>,
}

/// A `--name=value` (or bare `--name`) flag given to an instruction, value unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

/// Exec form (`["a", "b"]`, JSON-decoded) or shell form (the text as written, joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// A heredoc attached to RUN, COPY or ADD (`<<EOF`, `<<-EOF`, `<<"EOF"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, unquoted (`EOF`).
    pub name: String,
    /// The body, lines joined with `\n`, ending with `\n`; for `<<-` leading tabs already removed.
    pub content: String,
    /// True when the delimiter was unquoted: variables in the body are expanded.
    pub expand: bool,
    /// True for `<<-`.
    pub strip_tabs: bool,
}

/// Sources and destination of COPY or ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyArgs {
    /// Read once by the parser (values unexpanded).
    pub flags: super::flags::CopyFlags,
    /// Source words as written (unexpanded, quotes kept for the expander); a heredoc source is
    /// written `<<NAME` here and its body is in `heredocs`.
    pub sources: Vec<String>,
    pub dest: String,
    pub heredocs: Vec<Heredoc>,
    /// True when written in JSON form (`COPY ["a b", "/dst/"]`): words are then literal apart
    /// from variable expansion.
    pub json_form: bool,
}

/// An `ARG name[=default]` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// Unexpanded default.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`
    Disable,
    /// `HEALTHCHECK [--interval=..] CMD ...`
    Check { flags: Vec<Flag>, command: Command },
}

/// Every Dockerfile instruction; values are unexpanded words.
#[derive(Debug, Clone, PartialEq)]
pub enum InstructionKind {
    From {
        flags: Vec<Flag>,
        image: String,
        alias: Option<String>,
    },
    Run {
        /// Read once by the parser: its mounts parsed, `--network`/`--security` checked.
        flags: super::flags::RunFlags,
        command: Command,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Copy(CopyArgs),
    Add(CopyArgs),
    /// `ENV a=b c=d` or legacy `ENV a b`; (key, raw value) in order.
    Env {
        pairs: Vec<(String, String)>,
        legacy_form: bool,
    },
    Arg(Vec<ArgDecl>),
    /// `LABEL a=b ...` (key and value both raw words).
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    /// `VOLUME /a /b` or `VOLUME ["/a", "/b"]`.
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Maintainer(String),
    Onbuild(Box<Instruction>),
}

impl InstructionKind {
    /// The keyword in upper case, as BuildKit prints it (`RUN`, `COPY`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::From { .. } => "FROM",
            InstructionKind::Run { .. } => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Env { .. } => "ENV",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Onbuild(_) => "ONBUILD",
        }
    }
}
