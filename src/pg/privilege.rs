//! Who the caller is, and acting as the extension's owner for bookkeeping the
//! caller may not touch directly.

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::pg_sys;

use super::error::{spi_failed, KakuninError, Result};
use super::spi;

pub const GATEWAY_ROLE: &CStr = c"kakunin_gateway";

/// Members of `kakunin_gateway` (and superusers) may bind with a certificate
/// alone: they terminated mTLS themselves. Checked against the current user, so
/// after `SET LOCAL ROLE authenticated` the caller is no longer a gateway.
pub fn caller_is_gateway() -> bool {
    // SAFETY: get_role_oid with missing_ok = true returns InvalidOid instead of raising; GetUserId and is_member_of_role only read catalog state.
    unsafe {
        let gateway = pg_sys::get_role_oid(GATEWAY_ROLE.as_ptr(), true);
        gateway != pg_sys::InvalidOid && pg_sys::is_member_of_role(pg_sys::GetUserId(), gateway)
    }
}

/// Whether the login role of this session is a `kakunin_gateway` member (for
/// PostgREST, whose requests run as another role after `SET LOCAL ROLE`).
pub fn session_user_is_gateway() -> bool {
    // SAFETY: as in caller_is_gateway; GetSessionUserId only reads backend state.
    unsafe {
        let gateway = pg_sys::get_role_oid(GATEWAY_ROLE.as_ptr(), true);
        gateway != pg_sys::InvalidOid
            && pg_sys::is_member_of_role(pg_sys::GetSessionUserId(), gateway)
    }
}

/// Whether this transaction may write: not read-only, not on a standby.
/// Bookkeeping writes (last use, events, audit integration) are skipped
/// otherwise, so reads keep working there.
pub fn writable() -> bool {
    // SAFETY: both only read backend-global state.
    unsafe { !pg_sys::XactReadOnly && !pg_sys::RecoveryInProgress() }
}

/// Name of the current database (a proof's `aud` must equal it).
pub fn database_name() -> String {
    // SAFETY: MyDatabaseId is valid in a backend connected to a database; get_database_name returns a palloc'd copy or NULL.
    let name = unsafe { pg_sys::get_database_name(pg_sys::MyDatabaseId) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL result is a NUL-terminated palloc'd string.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

thread_local! {
    static OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

fn extension_owner() -> pg_sys::Oid {
    if let Some(owner) = OWNER.get() {
        return owner;
    }
    let owner = spi::select_one::<pg_sys::Oid>(
        "SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) 'kakunin'",
        &[],
    )
    .unwrap_or_else(|e| spi_failed("find the owner of schema kakunin", e))
    .unwrap_or_else(|| spi_failed("find schema kakunin", pgrx::spi::Error::NoTupleTable));
    OWNER.set(Some(owner));
    owner
}

/// Runs `f` as the owner of schema `kakunin`, the way PostgreSQL runs foreign
/// key checks as the table owner: the caller needs no privilege on our
/// bookkeeping tables, and cannot use it to write them directly. `f` runs
/// under the pinned `search_path` (see `pg::spi`), so nothing the caller
/// created can run with the owner's rights. An error inside `f` aborts the
/// (sub)transaction, which restores the user and the setting itself.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    as_user(extension_owner(), 0, f)
}

/// Runs `f` as `role` in a security-restricted operation, the way PostgreSQL
/// runs VACUUM or REINDEX as a table's owner: whatever the owner's objects run
/// on the way (a domain's CHECK, an index expression) runs with the owner's
/// rights, never the caller's, and cannot change the session (no SET ROLE,
/// no temporary objects). Under the pinned `search_path`, like
/// [`as_extension_owner`].
pub fn as_owner_restricted<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    as_user(role, pg_sys::SECURITY_RESTRICTED_OPERATION as i32, f)
}

fn as_user<R>(user: pg_sys::Oid, extra_context: i32, f: impl FnOnce() -> R) -> R {
    let (mut saved_user, mut saved_context) = (pg_sys::InvalidOid, 0);
    // SAFETY: reads the current user and security context into locals.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context) };
    // SAFETY: SECURITY_LOCAL_USERID_CHANGE marks the switch as local, as SECURITY DEFINER calls do; transaction abort restores the saved values.
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            user,
            saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32 | extra_context,
        )
    };
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores exactly what GetUserIdAndSecContext returned.
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) };
        }
    }
    let _restore = Restore(saved_user, saved_context);
    spi::pinned(f)
}

/// Name of the current user (before any switch to the owner), for `changed_by`.
pub fn current_user_name() -> String {
    // SAFETY: GetUserNameFromId with noerr = true returns NULL for a dropped role.
    let name = unsafe { pg_sys::GetUserNameFromId(pg_sys::GetUserId(), true) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL result is a NUL-terminated palloc'd string.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

pub const ADMIN_ROLE: &CStr = c"kakunin_admin";

/// EXECUTE on the admin functions is granted to `kakunin_admin` only; this check
/// keeps that true even if someone later grants EXECUTE more widely.
pub fn require_admin(function: &str) -> Result<()> {
    if !is_admin() {
        return Err(KakuninError::Privilege(format!(
            "permission denied for {function}: only members of kakunin_admin may call it"
        )));
    }
    Ok(())
}

/// Refuses (`42501`) a caller that is not a superuser, naming `function`.
pub fn require_superuser(function: &str) -> Result<()> {
    // SAFETY: superuser() reads the current user's catalog entry (cached).
    if !unsafe { pg_sys::superuser() } {
        return Err(KakuninError::Privilege(format!(
            "permission denied for {function}: only a superuser may call it"
        )));
    }
    Ok(())
}

/// Members of `kakunin_admin` (and the extension owner, and superusers).
pub fn is_admin() -> bool {
    // SAFETY: as in caller_is_gateway.
    unsafe {
        let admin = pg_sys::get_role_oid(ADMIN_ROLE.as_ptr(), true);
        let user = pg_sys::GetUserId();
        (admin != pg_sys::InvalidOid && pg_sys::has_privs_of_role(user, admin))
            || pg_sys::has_privs_of_role(user, extension_owner())
    }
}
