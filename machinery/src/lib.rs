//! What every control-plane binary shares, as upstream's apimachinery, client-go/tools and
//! component-base are shared by the Go components: quantities, selectors and durations with
//! upstream's exact semantics, and the component plumbing (client set-up, logging, the
//! health and metrics server, leader election, events, shutdown) written once.

pub mod certificates;
pub mod client;
pub mod cron;
pub mod disruption;
pub mod duration;
pub mod events;
pub mod indexes;
pub mod informers;
pub mod leaderelection;
pub mod lifecycle;
pub mod logging;
pub mod quantity;
pub mod selector;
pub mod server;
pub mod serviceaccount;
pub mod taints;
