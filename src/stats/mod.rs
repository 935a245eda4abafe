//! Stats with Envoy's names and semantics: counters and gauges are atomics that any
//! thread updates without locks; the store (locked only when a stat is created or
//! listed) keeps them by name for the admin endpoint and its three formats.

pub mod render;
mod store;
pub mod tag_extractor;

pub use store::{Counter, Gauge, Store};

/// Declares a struct of stats whose names are `<prefix><field>`, as Envoy's
/// `ALL_*_STATS` macros do, so each component names its stats in one place.
#[macro_export]
macro_rules! define_stats {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $(counter $c:ident,)* $(gauge $g:ident,)* }) => {
        $(#[$m])*
        $vis struct $name {
            $(pub $c: std::sync::Arc<$crate::stats::Counter>,)*
            $(pub $g: std::sync::Arc<$crate::stats::Gauge>,)*
        }
        impl $name {
            /// Creates (or finds) every stat of the struct under `prefix`.
            pub fn new(store: &$crate::stats::Store, prefix: &str) -> Self {
                $name {
                    $($c: store.counter(&format!("{prefix}{}", stringify!($c))),)*
                    $($g: store.gauge(&format!("{prefix}{}", stringify!($g))),)*
                }
            }
        }
    };
}
