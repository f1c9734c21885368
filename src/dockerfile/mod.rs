//! The Dockerfile frontend: parsing (BuildKit-compatible syntax tree) and word expansion.

pub mod ast;
pub mod expand;
pub mod flags;
mod lexer;
mod parser;
pub mod runmount;

pub use ast::*;
pub use expand::{expand_word, ExpandError, ExpandFailure, Expansion};
pub use flags::{
    flag_bool, CopyFlags, FlagError, Network, NetworkError, RunFlagError, RunFlags, SecurityMode,
};
pub use parser::{parse, parse_count, ParseError};
pub use runmount::{parse_mount, MountKind, MountSpecError, RunMount, Sharing};
