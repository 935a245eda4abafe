//! Envoy's common matcher types (`envoy.type.matcher.v3`), compiled once from config.
//!
//! They sit below every layer that matches strings (stats' tag and histogram
//! settings, the router's header and path matches, filters such as CORS), so
//! none of those has to import another for them.

pub mod string_matcher;

pub use string_matcher::StringMatcher;
