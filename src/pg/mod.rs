//! PostgreSQL plumbing that knows no domain: errors and their SQLSTATEs, the
//! SPI door with its pinned `search_path`, plain fmgr entry points, who the
//! caller is, `jsonb` arguments read safely, restricted execution of caller-written SQL, cross-session cache
//! invalidation, shared memory and the clock.
//!
//! Nothing here imports a domain folder (`scripts/layers.sh` checks).

pub mod error;
pub mod fmgr;
pub mod invalidation;
pub mod jsonb;
pub mod privilege;
pub mod restricted;
pub mod shmem;
pub mod spi;
pub mod time;

/// Called once from `_PG_init`.
pub fn init() {
    invalidation::register();
    restricted::register();
    shmem::init();
}
