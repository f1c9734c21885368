//! The build context: `.dockerignore`, selection of COPY sources inside the context root,
//! and content hashing of exactly what was selected.

mod acquire;
mod hashcache;
pub mod http;
pub mod ignore;
mod named;
pub mod pattern;
pub mod remote;
mod select;

pub use acquire::{acquire, AcquireError, AcquiredContext};
pub use hashcache::HashCache;
pub use ignore::{clean_relative, IgnoreRules};
pub use named::{named_contexts, NamedContextError, NamedContexts};
pub use select::{
    hash_selection, hash_selection_with, BuildContext, ContextError, Selected, SourceEntry,
    SourceKind,
};
