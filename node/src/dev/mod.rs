//! Running Switchboard on one machine, apart from the serving code: the
//! launcher that starts sites as separate processes, `switchboard dev` (the
//! demo cluster) and the simulated relays, hosts and clients.

pub mod demo;
pub mod launcher;
mod orphans;
pub mod sim;
