//! Shared memory, when the library is preloaded (`shared_preload_libraries`):
//! fixed-capacity hash tables in PostgreSQL's own dynahash, each behind one
//! LWLock of the tranche `kakunin_pg`, sized by settings read at server start;
//! the time this shared memory was (re)initialised; and a generation counter
//! that every committed change to the extension's status tables advances
//! (`pg::invalidation`), so shared caches of their data drop it at once.
//!
//! Tables are declared as statics by the domain that owns them and registered
//! from `_PG_init` ([`SharedTable::register`]); `init` installs the hooks that
//! reserve and create them. Without preloading nothing is reserved and
//! [`SharedTable::exclusive`] answers None, so callers keep a fallback.
//!
//! Critical sections are a few hash probes long and never raise an ERROR
//! while holding the lock (inserts use `HASH_ENTER_NULL` below capacity), so
//! the uninterruptible LWLock wait is as short as PostgreSQL's own.

use std::cell::RefCell;
use std::ffi::CStr;
use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, Ordering};

use pgrx::pg_sys;
use pgrx::prelude::*;

const TRANCHE: &CStr = c"kakunin_pg";

/// The key of every table: a SHA-256 (or other 32-byte) digest.
pub type Key = [u8; 32];

/// A hash table in shared memory whose entries are `E` (`#[repr(C)]`, the
/// [`Key`] first, as dynahash's `HASH_BLOBS` wants).
pub struct SharedTable<E: Copy + 'static> {
    name: &'static CStr,
    capacity: fn() -> i64,
    htab: AtomicPtr<pg_sys::HTAB>,
    lock: AtomicPtr<pg_sys::LWLock>,
    _entry: std::marker::PhantomData<E>,
}

/// What the hooks need of a table, whatever its entry type.
trait Reserved: Sync {
    fn size(&self) -> usize;
    /// Creates (or, in a re-attaching process, finds) the table; `lock` is its LWLock.
    fn create(&self, lock: *mut pg_sys::LWLock);
}

thread_local! {
    static TABLES: RefCell<Vec<&'static dyn Reserved>> = const { RefCell::new(Vec::new()) };
}

/// Unix seconds when this shared memory was initialised (server start, or
/// the restart after a crash); 0 without preloading.
static STARTED_AT: AtomicI64 = AtomicI64::new(0);

/// The generation counter, in shared memory (null without preloading).
static GENERATION: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

impl<E: Copy + 'static> SharedTable<E> {
    /// A table named `name` (in `pg_shmem_allocations`) holding `capacity()` entries.
    pub const fn new(name: &'static CStr, capacity: fn() -> i64) -> Self {
        SharedTable {
            name,
            capacity,
            htab: AtomicPtr::new(std::ptr::null_mut()),
            lock: AtomicPtr::new(std::ptr::null_mut()),
            _entry: std::marker::PhantomData,
        }
    }

    /// Reserves the table; call from `_PG_init` while preloading.
    pub fn register(&'static self)
    where
        E: Sync,
    {
        TABLES.with(|t| t.borrow_mut().push(self));
    }

    /// The number of entries it holds at most.
    pub fn capacity(&self) -> i64 {
        (self.capacity)().max(1)
    }

    /// Bytes of shared memory it takes (PostgreSQL's estimate).
    pub fn bytes(&self) -> usize {
        // SAFETY: hash_estimate_size only computes.
        unsafe { pg_sys::hash_estimate_size(self.capacity() as _, std::mem::size_of::<E>()) }
    }

    /// `{capacity, entries, bytes}`, or None without preloading.
    pub fn usage(&self) -> Option<serde_json::Value> {
        let entries = self.exclusive(|table| table.len())?;
        Some(serde_json::json!({
            "capacity": self.capacity(),
            "entries": entries,
            "bytes": self.bytes(),
        }))
    }

    /// Runs `f` with the table locked exclusively, or None without preloading.
    pub fn exclusive<R>(&self, f: impl FnOnce(&mut Locked<'_, E>) -> R) -> Option<R> {
        let (htab, lock) = (
            self.htab.load(Ordering::Acquire),
            self.lock.load(Ordering::Acquire),
        );
        if htab.is_null() || lock.is_null() {
            return None;
        }
        // SAFETY: the lock was created by the startup hook in shared memory that lives as long as the server; released below or by the LWLockReleaseAll of a transaction abort.
        unsafe { pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE) };
        struct Release(*mut pg_sys::LWLock);
        impl Drop for Release {
            fn drop(&mut self) {
                // SAFETY: releases the lock acquired above, once.
                unsafe { pg_sys::LWLockRelease(self.0) };
            }
        }
        let _release = Release(lock);
        let mut locked = Locked {
            htab,
            capacity: self.capacity(),
            _entry: std::marker::PhantomData,
        };
        Some(f(&mut locked))
    }
}

impl<E: Copy + Sync + 'static> Reserved for SharedTable<E> {
    fn size(&self) -> usize {
        self.bytes()
    }

    fn create(&self, lock: *mut pg_sys::LWLock) {
        let mut info = pg_sys::HASHCTL {
            keysize: std::mem::size_of::<Key>(),
            entrysize: std::mem::size_of::<E>(),
            ..Default::default()
        };
        let capacity = self.capacity() as std::ffi::c_long;
        // SAFETY: called from the startup hook, where ShmemInitHash allocates in (or finds) the segment; HASH_BLOBS hashes the key's bytes.
        let htab = unsafe {
            pg_sys::ShmemInitHash(
                self.name.as_ptr(),
                capacity,
                capacity,
                &mut info,
                (pg_sys::HASH_ELEM | pg_sys::HASH_BLOBS) as i32,
            )
        };
        self.htab.store(htab, Ordering::Release);
        self.lock.store(lock, Ordering::Release);
    }
}

/// A table under its exclusive lock.
pub struct Locked<'a, E> {
    htab: *mut pg_sys::HTAB,
    capacity: i64,
    _entry: std::marker::PhantomData<&'a mut E>,
}

impl<E: Copy> Locked<'_, E> {
    fn search(&mut self, key: &Key, action: pg_sys::HASHACTION::Type) -> (*mut E, bool) {
        let mut found = false;
        let key = key.as_ptr().cast();
        // SAFETY: htab is a live shared hash whose keys are `Key`s, held exclusively; HASH_FIND/HASH_REMOVE/HASH_ENTER_NULL never ERROR.
        let entry = unsafe { pg_sys::hash_search(self.htab, key, action, &mut found) };
        (entry.cast(), found)
    }

    /// The entry for `key`, if any.
    pub fn get(&mut self, key: &Key) -> Option<&mut E> {
        let (entry, found) = self.search(key, pg_sys::HASHACTION::HASH_FIND);
        // SAFETY: a found entry is a valid `E` while the lock is held.
        (found && !entry.is_null()).then(|| unsafe { &mut *entry })
    }

    /// Stores `value` (whose key field must be `key`), replacing any entry;
    /// false if the table is full.
    pub fn put(&mut self, key: &Key, value: E) -> bool {
        if self.is_full() && self.get(key).is_none() {
            return false;
        }
        let (entry, _) = self.search(key, pg_sys::HASHACTION::HASH_ENTER_NULL);
        if entry.is_null() {
            return false;
        }
        // SAFETY: HASH_ENTER_NULL returned a slot of entrysize bytes for `E`.
        unsafe { entry.write(value) };
        true
    }

    /// Removes the entry for `key`.
    pub fn remove(&mut self, key: &Key) {
        self.search(key, pg_sys::HASHACTION::HASH_REMOVE);
    }

    /// Entries held.
    pub fn len(&self) -> i64 {
        // SAFETY: reads the entry count of a live table under its lock.
        unsafe { pg_sys::hash_get_num_entries(self.htab) as i64 }
    }

    /// Whether it holds `capacity` entries.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// Removes every entry for which `keep` is false; returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) -> usize {
        let mut doomed: Vec<Key> = Vec::new();
        let mut status = pg_sys::HASH_SEQ_STATUS::default();
        // SAFETY: a full sequential scan of a table held exclusively (it runs to its end, which terminates the scan); entries are read, not changed.
        unsafe {
            pg_sys::hash_seq_init(&mut status, self.htab);
            loop {
                let entry = pg_sys::hash_seq_search(&mut status) as *const E;
                if entry.is_null() {
                    break;
                }
                if !keep(&*entry) {
                    doomed.push(*(entry as *const Key));
                }
            }
        }
        for key in &doomed {
            self.remove(key);
        }
        doomed.len()
    }
}

/// The current generation (0 without preloading): shared cache entries made
/// under an older one are stale.
pub fn generation() -> u64 {
    let counter = GENERATION.load(Ordering::Acquire);
    // SAFETY: a non-null pointer is the counter in shared memory, which lives as long as the server; atomics work across processes mapping it.
    unsafe { counter.as_ref() }.map_or(0, |c| c.load(Ordering::Acquire))
}

/// Advances the generation (a change to the status tables was committed).
pub fn advance_generation() {
    let counter = GENERATION.load(Ordering::Acquire);
    // SAFETY: as in [`generation`].
    if let Some(c) = unsafe { counter.as_ref() } {
        c.fetch_add(1, Ordering::AcqRel);
    }
}

/// When this shared memory was initialised (unix seconds), if preloaded.
pub fn started_at() -> Option<i64> {
    Some(STARTED_AT.load(Ordering::Acquire)).filter(|t| *t > 0)
}

static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// Installs the hooks (while preloading; tables register from `_PG_init` too).
pub fn init() {
    if !crate::gucs::preloading() {
        return;
    }
    // SAFETY: _PG_init runs once in the postmaster, single-threaded; the previous hooks are kept and called first, as every extension does.
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(startup);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn request() {
    // SAFETY: PostgreSQL calls this once while reserving shared memory; the previous hook is called first.
    unsafe {
        if let Some(previous) = PREV_REQUEST {
            previous();
        }
    }
    // SAFETY: allowed in the shmem_request hook.
    unsafe { pg_sys::RequestAddinShmemSpace(std::mem::size_of::<AtomicU64>()) };
    TABLES.with(|tables| {
        let tables = tables.borrow();
        for table in tables.iter() {
            // SAFETY: allowed in the shmem_request hook.
            unsafe { pg_sys::RequestAddinShmemSpace(table.size()) };
        }
        // SAFETY: as above; one lock per table.
        unsafe { pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), tables.len() as i32) };
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn startup() {
    // SAFETY: PostgreSQL calls this once shared memory exists (in the postmaster, and again after a crash reinitialised it).
    unsafe {
        if let Some(previous) = PREV_STARTUP {
            previous();
        }
    }
    STARTED_AT.store(crate::pg::time::now_unix(), Ordering::Release);
    let mut found = false;
    // SAFETY: allocates (or finds) the counter in the segment; a new one is zeroed before anyone reads it (no backend exists yet).
    unsafe {
        let counter = pg_sys::ShmemInitStruct(
            c"kakunin generation".as_ptr(),
            std::mem::size_of::<AtomicU64>(),
            &mut found,
        )
        .cast::<AtomicU64>();
        if !found {
            counter.write(AtomicU64::new(0));
        }
        GENERATION.store(counter, Ordering::Release);
    }
    TABLES.with(|tables| {
        let tables = tables.borrow();
        if tables.is_empty() {
            return;
        }
        // SAFETY: the tranche requested above, with one lock per table.
        let locks = unsafe { pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr()) };
        for (i, table) in tables.iter().enumerate() {
            // SAFETY: i < the number of locks requested.
            table.create(unsafe { &mut (*locks.add(i)).lock });
        }
    });
}
