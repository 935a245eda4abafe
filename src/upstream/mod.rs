//! The upstream path: clusters and their hosts, owned by the main thread's
//! `ClusterManager`, with a per-worker `ThreadLocalClusterManager` holding the
//! worker's snapshot of membership, its load balancers and its connections.

pub mod cluster;
pub mod cluster_manager;
pub mod conn_pool;
pub mod dns;
pub mod dns_client;
pub mod dns_message;
pub mod dns_system;
pub mod drop_overload;
pub mod eds;
pub mod health_check;
pub mod host;
pub mod http1_conn_pool;
pub mod http2_conn_pool;
pub mod load_balancer;
pub mod mixed_conn_pool;
pub mod original_dst;
pub mod priority;
pub mod resource_manager;
pub mod thread_local_cluster;
pub mod upstream_connection;
pub mod zone_aware;

pub use cluster::{ClusterInfo, DiscoveryType};
pub use cluster_manager::ClusterManager;
pub use host::{Host, HostSet};
pub use thread_local_cluster::{ThreadLocalCluster, ThreadLocalClusterManager};
