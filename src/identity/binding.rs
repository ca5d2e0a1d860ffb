//! Where a binding lives: the setting `kakunin.binding`, set with the effect of
//! `SET LOCAL` by a successful bind ([`store`]) and by nothing else.
//!
//! Why a setting: PostgreSQL copies settings into parallel workers, and it
//! restores `SET LOCAL` values itself at COMMIT, ROLLBACK and ROLLBACK TO
//! SAVEPOINT, so the binding ends exactly when the transaction (or the
//! savepoint it was made in) does. No Rust state reaches a worker.
//!
//! Why nobody can forge it:
//! - it is `PGC_SUSET`, so `SET`, `set_config`, `ALTER ROLE … SET`, connection
//!   options and function `SET` clauses are refused to non-superusers;
//! - its check hook refuses every value not written by [`set_local`] (or copied
//!   into a parallel worker by PostgreSQL itself), so even a superuser's `SET`,
//!   a placeholder set before the library loaded, or `ALTER SYSTEM` fails;
//! - it is excluded from `RESET ALL`, `SHOW ALL` and configuration files.
//!
//! The assign hook, which PostgreSQL calls on every change including each
//! restore at transaction end, keeps a parsed copy for the helpers, so a policy
//! helper never parses or looks up the setting on the hot path.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void, CStr, CString};
use std::rc::Rc;

use kakunin_core::binding::{Binding, Sealed};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::error::{KakuninError, Result};

pub const SETTING_NAME: &CStr = c"kakunin.binding";

static BINDING_SETTING: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

thread_local! {
    /// True only while [`set_local`] writes the setting.
    static WRITE_ALLOWED: Cell<bool> = const { Cell::new(false) };
    static CURRENT: RefCell<Option<Rc<Binding>>> = const { RefCell::new(None) };
    /// The binding `set_local` is writing, so the assign hook need not parse it.
    static PENDING: RefCell<Option<(CString, Rc<Binding>)>> = const { RefCell::new(None) };
    /// Bumped on every change, so per-binding caches can tell bindings apart
    /// even when a savepoint rollback restores an older one.
    static EPOCH: Cell<u64> = const { Cell::new(0) };
}

pub fn register() {
    // SAFETY: both hooks are #[pg_guard]ed extern "C-unwind" functions that only touch this module's thread-locals and the pointers PostgreSQL passes.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            SETTING_NAME,
            c"The agent identity bound for the current transaction (read-only).",
            c"Written only by kakunin.bind_agent_session / kakunin.bind_agent; read it through the kakunin_* helper functions.",
            &BINDING_SETTING,
            GucContext::Suset,
            GucFlags::NO_RESET_ALL
                | GucFlags::NO_SHOW_ALL
                | GucFlags::DISALLOW_IN_FILE
                | GucFlags::DISALLOW_IN_AUTO_FILE,
            Some(check_binding),
            Some(assign_binding),
            None,
        );
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_binding(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the candidate value (which may be NULL).
    let value = unsafe { *newval };
    // SAFETY: a non-NULL candidate is a NUL-terminated string owned by the GUC machinery.
    let is_empty = value.is_null() || unsafe { *value } == 0;
    // SAFETY: plain read of a backend-global flag PostgreSQL sets while it copies the leader's settings into a parallel worker.
    let copying_into_worker = unsafe { pg_sys::InitializingParallelWorker };
    if is_empty || copying_into_worker || WRITE_ALLOWED.get() {
        return true;
    }
    // SAFETY: GUC_check_errcode only records the code for the error PostgreSQL raises.
    unsafe {
        pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    }
    let message = c"kakunin.binding can only be set by kakunin.bind_agent_session()";
    // SAFETY: pstrdup copies the message into the current memory context, where PostgreSQL expects GUC_check_errmsg_string to live until it reports it.
    unsafe {
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(message.as_ptr());
    }
    false
}

#[pg_guard]
unsafe extern "C-unwind" fn assign_binding(newval: *const c_char, _extra: *mut c_void) {
    let parsed = if newval.is_null() {
        None
    } else {
        // SAFETY: PostgreSQL passes the new value as a NUL-terminated string.
        let text = unsafe { CStr::from_ptr(newval) };
        // The value set_local is writing comes with its binding: no parsing.
        // Anything else (a restore at transaction end, a parallel worker's
        // copy) is decoded.
        let pending = PENDING.with(|p| {
            p.borrow()
                .as_ref()
                .filter(|(value, _)| value.as_c_str() == text)
                .map(|(_, binding)| binding.clone())
        });
        pending.or_else(|| {
            Binding::decode(text.to_str().unwrap_or_default())
                .map(|(_nonce, binding)| Rc::new(binding))
        })
    };
    CURRENT.with(|current| *current.borrow_mut() = parsed);
    EPOCH.set(EPOCH.get().wrapping_add(1));
}

/// The binding in force for this statement, if any.
pub fn current() -> Option<Rc<Binding>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Changes whenever the binding does (see `EPOCH`).
pub fn epoch() -> u64 {
    EPOCH.get()
}

/// Agent SQL may never bind, whoever the login role is (issue 10): every
/// bind checks this first (so the refusal is the same whatever else is
/// wrong) and [`store`] again.
pub fn refuse_if_restricted() -> Result<()> {
    if crate::pg::restricted::active() {
        return Err(KakuninError::Privilege(
            "no identity can be bound or replaced inside kakunin.execute_as_agent".into(),
        ));
    }
    Ok(())
}

/// Seals a validated binding for [`store`]; refused (22023) when it would read
/// differently in the processes that copy the setting (issue 14).
pub fn seal(binding: Binding) -> Result<Sealed> {
    Sealed::new(binding).ok_or_else(|| {
        KakuninError::InvalidArgument(
            "the identity cannot be bound: its scope or claims do not survive being copied into every process that evaluates a policy (for example a number JSON cannot carry exactly)".into(),
        )
    })
}

/// Stores a sealed binding for the rest of the transaction. A caller that
/// is not a gateway (`gateway`, decided from the current role) may not swap to
/// a different identity mid-transaction.
pub fn store(sealed: &Sealed, gateway: bool) -> Result<Rc<Binding>> {
    refuse_if_restricted()?;
    let binding = sealed.binding();
    if let Some(current) = current() {
        if current.agent_id != binding.agent_id && !gateway {
            return Err(KakuninError::identity(format!(
                "agent \"{}\" is already bound in this transaction; only kakunin_gateway members may bind a different agent",
                current.agent_id
            )));
        }
    }
    set_local(sealed);
    // SAFETY: IsTransactionBlock only reads the transaction state.
    if !unsafe { pg_sys::IsTransactionBlock() } {
        ereport!(
            WARNING,
            PgSqlErrorCode::ERRCODE_NO_ACTIVE_SQL_TRANSACTION,
            "a binding made outside a transaction block lasts for this statement only",
            "Bind after BEGIN, like SET LOCAL, so that later statements see the binding."
        );
    }
    Ok(binding.clone())
}

/// Stores `sealed` with the effect of `SET LOCAL`: restored by PostgreSQL at the
/// end of the transaction, or of the savepoint, it was made in. The leader
/// keeps the binding itself; parallel workers and restores decode the text.
fn set_local(sealed: &Sealed) {
    thread_local! { static NONCE: Cell<u64> = const { Cell::new(0) }; }
    NONCE.set(NONCE.get() + 1);
    // SAFETY: MyProcPid is set once at backend start and only read here.
    let pid = unsafe { pg_sys::MyProcPid };
    // JSON escapes control characters, so the encoding never holds a NUL.
    let value = CString::new(sealed.encode(&format!("{pid}.{}", NONCE.get()))).unwrap_or_default();
    PENDING.with(|p| *p.borrow_mut() = Some((value.clone(), sealed.binding().clone())));

    struct AllowWrite;
    impl Drop for AllowWrite {
        fn drop(&mut self) {
            WRITE_ALLOWED.set(false);
            PENDING.with(|p| *p.borrow_mut() = None);
        }
    }
    WRITE_ALLOWED.set(true);
    let _reset_on_exit = AllowWrite;
    // SAFETY: both strings are NUL-terminated and outlive the call. With PGC_SUSET context the permission check is ours (done before this call), and elevel ERROR makes any failure raise instead of returning.
    unsafe {
        pg_sys::set_config_option(
            SETTING_NAME.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}
