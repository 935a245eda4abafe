//! The event loop of one thread (Envoy's `Event::Dispatcher`).

mod dispatcher;

pub use dispatcher::{Dispatcher, DispatcherHandle};
