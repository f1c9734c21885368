//! The Dockerfile frontend: parsing (BuildKit-compatible syntax tree) and word expansion.

pub mod ast;
pub mod expand;
pub mod flags;
mod lexer;
mod parser;

pub use ast::*;
pub use expand::{expand_word, ExpandError, Expansion};
pub use flags::{flag_bool, CopyFlags, RunFlags};
pub use parser::{parse, parse_count, ParseError};
