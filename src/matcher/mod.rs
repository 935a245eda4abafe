//! Envoy's common matcher types (`envoy.type.matcher.v3`), compiled once from config.
//!
//! They sit below every layer that matches strings (stats' tag and histogram
//! settings, the router's header and path matches, filters such as CORS), so
//! none of those has to import another for them. The generic matching API
//! (`match_tree`, over the inputs of `data_input`) is here for the same reason:
//! the route table, RBAC and `ExtensionWithMatcher` build it with their own
//! actions, and the HTTP layer feeds it through `MatchingData`.

pub mod cidr;
pub mod data_input;
pub mod match_tree;
pub mod string_matcher;
pub mod supported;

pub use data_input::{ConnectionFacts, DataInput, InputKinds, InputValue, MatchingData};
pub use match_tree::{MatchResult, Matcher};
pub use string_matcher::StringMatcher;
