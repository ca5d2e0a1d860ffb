//! Cross-session cache invalidation without shared memory.
//!
//! A statement trigger on each of our status tables (certificate and agent
//! status, trust anchors, API keys, CRLs) queues a relcache invalidation of the
//! table; at
//! commit PostgreSQL broadcasts it to every backend. Our relcache callback turns
//! it into a new backend-local epoch, and every cache of registry or anchor data
//! is valid for one epoch only. [`Read::new`] drains pending invalidations (a
//! flag check when there are none), so the first helper call of each statement
//! sees changes committed before it — without an SPI round trip per statement
//! and without `shared_preload_libraries`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::Hash;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::spi::Visibility;

thread_local! {
    static EPOCH: Cell<u64> = const { Cell::new(1) };
    /// Bumped by any change to roles, memberships or relations.
    static CATALOG_EPOCH: Cell<u64> = const { Cell::new(1) };
    static WATCHED: RefCell<Option<Vec<pg_sys::Oid>>> = const { RefCell::new(None) };
}

pub fn register() {
    // SAFETY: registering a callback is what _PG_init is for; the callback only bumps a thread-local counter, as callbacks must not touch the catalogs.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        );
        for cache in [
            pg_sys::SysCacheIdentifier::AUTHOID,
            pg_sys::SysCacheIdentifier::AUTHMEMMEMROLE,
        ] {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as i32,
                Some(on_role_invalidation),
                pg_sys::Datum::from(0),
            );
        }
    };
}

#[pg_guard]
unsafe extern "C-unwind" fn on_role_invalidation(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    CATALOG_EPOCH.set(CATALOG_EPOCH.get().wrapping_add(1));
}

/// Changes whenever a role, a membership or any relation may have changed,
/// read after draining pending invalidations: what is derived from them is
/// valid while this does not change.
pub fn catalog_epoch() -> u64 {
    refresh();
    CATALOG_EPOCH.get()
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    CATALOG_EPOCH.set(CATALOG_EPOCH.get().wrapping_add(1));
    // Only our tables matter; their OIDs are resolved outside the callback
    // (callbacks must not read the catalogs). Until they are, or for a
    // "everything" reset (InvalidOid), every invalidation counts.
    let (ours, known) = WATCHED.with(|w| match &*w.borrow() {
        Some(oids) => (relid == pg_sys::InvalidOid || oids.contains(&relid), true),
        None => (true, relid == pg_sys::InvalidOid),
    });
    if ours {
        EPOCH.set(EPOCH.get().wrapping_add(1));
        // Shared caches too (preloaded), but only for a change known to be to
        // our tables (or lost messages): any role can queue invalidations of
        // its own tables, and must not empty everyone's cache with them. The
        // backend making the change advances it from the trigger itself.
        if known {
            super::shmem::advance_generation();
        }
        // A dropped and re-created extension has new OIDs: resolve again.
        WATCHED.with(|w| *w.borrow_mut() = None);
    }
}

/// The tables whose changes invalidate our caches.
const WATCHED_TABLES: [&std::ffi::CStr; 5] = [
    c"certificate_status",
    c"agent_status",
    c"trust_anchors",
    c"api_keys",
    c"crls",
];

fn resolve_watched() {
    if WATCHED.with(|w| w.borrow().is_some()) {
        return;
    }
    // SAFETY: plain catalog lookups in a normal backend context; both return InvalidOid rather than raising when a name is missing.
    let oids = unsafe {
        let schema = pg_sys::get_namespace_oid(c"kakunin".as_ptr(), true);
        WATCHED_TABLES
            .iter()
            .map(|name| pg_sys::get_relname_relid(name.as_ptr(), schema))
            .filter(|oid| *oid != pg_sys::InvalidOid)
            .collect::<Vec<_>>()
    };
    if oids.len() == WATCHED_TABLES.len() {
        WATCHED.with(|w| *w.borrow_mut() = Some(oids));
    }
}

/// Processes invalidations other backends have committed since the last call.
fn refresh() {
    // SAFETY: AcceptInvalidationMessages is called by PostgreSQL at every lock acquisition; calling it between rows is equally safe.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    resolve_watched();
}

/// Caches of registry and anchor data are valid while this does not change.
pub fn epoch() -> u64 {
    EPOCH.get()
}

/// One read of the data our caches hold (registry, anchors, CRLs, keys): the
/// snapshot its lookups see, and the epoch what it reads may be cached under.
/// [`Read::new`] drains pending invalidations first, so the read sees every
/// change committed before it.
#[derive(Clone, Copy, Debug)]
pub struct Read {
    pub visibility: Visibility,
    epoch_before: u64,
}

impl Read {
    pub fn new(visibility: Visibility) -> Read {
        let epoch_before = epoch();
        refresh();
        Read {
            visibility,
            epoch_before,
        }
    }

    /// The epoch a value read now may be cached under. A value read in the
    /// statement's snapshot is only as fresh as that snapshot, which predates
    /// the invalidations [`Read::new`] drained: it is tagged with the epoch
    /// before them, so the next read after them reads again. A `Latest` read
    /// takes a new snapshot after them.
    pub fn tag(self) -> u64 {
        match self.visibility {
            Visibility::Statement => self.epoch_before,
            Visibility::Latest | Visibility::Write => epoch(),
        }
    }
}

/// Trigger `kakunin.invalidate_caches()`: queues a relcache invalidation of the
/// table it fires on, broadcast to every backend when the transaction commits.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn kakunin_invalidate_caches(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL passes this call's fcinfo; trigger_data checks it is a trigger call, so tg_relation is the relation the trigger fired on.
    unsafe {
        let trigger = super::fmgr::trigger_data(fcinfo, "kakunin.invalidate_caches()");
        pg_sys::CacheInvalidateRelcacheByRelid((*(*trigger).tg_relation).rd_id);
    }
    super::shmem::advance_generation();
    pg_sys::Datum::from(0)
}

super::fmgr::fmgr_v1!(pg_finfo_kakunin_invalidate_caches);

/// A per-backend map whose entries are valid for one epoch: each value is
/// stored with the epoch it was read under ([`Read::tag`]) and served
/// only while that is still the current epoch.
pub struct EpochCache<K, V> {
    entries: RefCell<HashMap<K, (u64, V)>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> EpochCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        EpochCache {
            entries: RefCell::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        let current = epoch();
        self.entries
            .borrow()
            .get(key)
            .filter(|(tag, _)| *tag == current)
            .map(|(_, value)| value.clone())
    }

    /// Stores what `read` read (see [`Read::tag`]).
    pub fn insert(&self, key: K, read: Read, value: V) {
        self.insert_tagged(key, read.tag(), value);
    }

    /// Stores a value valid while the epoch is still `tag`.
    pub fn insert_tagged(&self, key: K, tag: u64, value: V) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (tag, value));
    }
}
