//! The router: Envoy's route configuration, compiled, and the router filter that
//! forwards a request upstream.
//!
//! A `RouteConfiguration` is compiled once on the main thread into a `RouteTable`
//! (`Send + Sync`, shared by every worker through an `Arc`); workers only read it.
//! For each request `RouteTable::find` returns the `Route` to apply: what to do
//! (forward to a cluster, redirect, or answer directly), the header edits and
//! per-filter configs of every level, already combined in Envoy's order.
//!
//! - `config` — `RouteTable`: virtual host selection and route lookup
//! - `virtual_host` — virtual hosts and domain matching
//! - `route` — one route: match, action, inherited settings, path rewrite
//! - `matcher` — a route's `match`: path, headers, query parameters
//! - `header_matcher` — `HeaderMatcher` and `QueryParameterMatcher`
//! - `route_action` — forwarding: cluster choice, timeouts, host rewrite
//! - `path_rewrite` — `prefix_rewrite` / `regex_rewrite`
//! - `redirect` — `RedirectAction` and the `Location` it builds
//! - `retry_policy` — `RetryPolicy` and `retry_on`
//! - `retry_body` — recording a streamed request body as it is sent, so retries can resend it
//! - `auto_sni` — a request's upstream TLS named after its host (`auto_sni`, `auto_san_validation`)
//! - `async_client` — requests the proxy makes on its own behalf (span exports, ext_authz)
//! - `shadow` — `request_mirror_policies`: copies of requests sent to another cluster
//! - `header_mutation` — `*_headers_to_add` / `*_headers_to_remove`
//! - `per_filter` — `typed_per_filter_config`
//! - `supported` — the fields of the route schema Courier implements
//! - `request` — what routing reads from a request

pub mod async_client;
mod auto_sni;
mod config;
mod header_matcher;
mod header_mutation;
mod matcher;
mod matching_data;
mod path_rewrite;
mod per_filter;
mod redirect;
mod request;
mod retry_body;
mod retry_policy;
mod route;
mod route_action;
pub mod shadow;
mod supported;
pub mod upstream_request;
mod virtual_host;

#[cfg(any(test, fuzzing))]
pub(crate) mod test_util;

pub use config::{PerRouteDecoder, RouteBuildContext, RouteTable, DEFAULT_MAX_DIRECT_RESPONSE_BODY_BYTES};
pub(crate) use header_matcher::HeaderMatcher;
pub use header_mutation::{AppendAction, HeaderMutation};
pub(crate) use matcher::RouteMatcher;
pub use matching_data::HttpMatchingData;
pub use path_rewrite::RegexSubstitution;
pub use per_filter::PerRouteConfig;
pub use redirect::RedirectAction;
pub use retry_policy::{RetryOn, RetryPolicy, DEFAULT_BASE_INTERVAL, PREVIOUS_HOSTS_TYPE};
pub use route::{Route, RouteAction};
pub use route_action::{ClusterSelector, ClusterWeightEdits, ForwardAction, DEFAULT_ROUTE_TIMEOUT};
pub use supported::ROUTE_SUPPORTED_FIELDS;
pub use virtual_host::MATCHER_ACTION_TYPES;
