//! The ground floor: HTTP rules that know nothing of tokens, Cognito or the configuration —
//! response bodies (`body`), header rules (`headers`), the one reader of request targets and
//! methods (`path`), and the upgraded socket (`upgrade`). Imports nothing of the crate.

pub mod body;
pub mod headers;
pub mod path;
pub mod upgrade;
