//! Plain fmgr entry points for the hottest functions (the policy helpers and
//! the cache-invalidation trigger), declared in `sql/` rather than generated.
//! They skip pgrx's argument and result conversion; each is `#[pg_guard]`ed.

use pgrx::pg_sys;

/// The version-1 calling convention record every `pg_finfo_*` returns.
pub static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };

/// Declares the `pg_finfo_<function>` symbols PostgreSQL looks up to learn that
/// a C function uses the version-1 calling convention.
macro_rules! fmgr_v1 {
    ($($finfo:ident),* $(,)?) => {
        $(
            #[no_mangle]
            pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
                &$crate::pg::fmgr::V1
            }
        )*
    };
}
pub(crate) use fmgr_v1;

/// Returns SQL NULL from a version-1 function.
///
/// # Safety
/// `fcinfo` must be the call's valid FunctionCallInfo.
pub unsafe fn return_null(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the caller passes the live fcinfo of this call.
    unsafe { (*fcinfo).isnull = true };
    pg_sys::Datum::from(0)
}

/// The TriggerData of a trigger call, or an ERROR naming `function` if it was
/// called some other way.
///
/// # Safety
/// `fcinfo` must be the call's valid FunctionCallInfo.
pub unsafe fn trigger_data(
    fcinfo: pg_sys::FunctionCallInfo,
    function: &str,
) -> *mut pg_sys::TriggerData {
    // SAFETY: the caller passes the live fcinfo; context is checked to be a TriggerData node before it is cast.
    unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
            pgrx::error!("{function} must be called as a trigger");
        }
        context.cast::<pg_sys::TriggerData>()
    }
}
