//! Who is creating or changing API keys, and within which limits: an owner
//! manages the keys RLS lets it see (its own), `kakunin_admin` all, and a key
//! made by a bound caller is derived from its credential and never exceeds it
//! (issue 14).

use std::rc::Rc;

use kakunin_core::binding::{Binding, CertStatus, Credential};
use kakunin_core::scope;
use serde_json::Value;

use super::store::Lineage;
use crate::identity::binding;
use crate::identity::status::bound_status;
use crate::pg::error::{KakuninError, Result};
use crate::pg::privilege;

/// Who is creating or changing keys, and within which limits.
pub struct Caller {
    pub admin: bool,
    bound: Option<Rc<Binding>>,
}

impl Caller {
    pub fn current() -> Caller {
        Caller {
            admin: privilege::is_admin(),
            bound: binding::current(),
        }
    }

    /// The caller's own API key, if it is bound with one and is not an admin:
    /// such a caller can never widen what its key allows.
    pub fn limiting_key(&self) -> Option<&Binding> {
        self.bound
            .as_deref()
            .filter(|b| !self.admin && b.key_id().is_some())
    }

    pub fn require_owner(&self, owner_id: &str) -> Result<()> {
        if self.admin {
            return Ok(());
        }
        match &self.bound {
            Some(b) if b.agent_id == owner_id && bound_status(b) == CertStatus::Active => Ok(()),
            _ => Err(KakuninError::Privilege(format!(
                "permission denied: only the bound agent \"{owner_id}\" or a kakunin_admin member may manage its API keys"
            ))),
        }
    }

    /// Revoking, rotating or changing a key: its owner, or an admin; a caller
    /// bound by an API key manages that key only, never its siblings.
    pub fn require_manager(&self, key_id: pgrx::Uuid, owner_id: &str) -> Result<()> {
        self.require_owner(owner_id)?;
        if let Some(own) = self.limiting_key() {
            if own.key_id() != Some(key_id.to_string().as_str()) {
                return Err(KakuninError::Privilege(format!(
                    "permission denied: a caller bound with an API key manages only that key, not {key_id}"
                )));
            }
        }
        Ok(())
    }

    /// For a caller that is not an admin, what a new key derives from its
    /// credential, after checking that the key stays inside it: capabilities
    /// (a key's own), scope and claims ([`scope::narrows`]), tenant (none stays
    /// none), expiry (never past the credential's, through `expiry_cap`).
    pub fn derive(
        &self,
        capabilities: &[String],
        claims: &Value,
        tenant_id: Option<&str>,
    ) -> Result<Derived> {
        let Some(own) = self.bound.as_deref().filter(|_| !self.admin) else {
            return Ok(Derived {
                lineage: Lineage::default(),
                claims: claims.clone(),
                tenant_id: tenant_id.map(str::to_string),
                expiry_cap: None,
            });
        };
        let denied = |what: String| {
            Err(KakuninError::Privilege(format!(
                "permission denied: {what}"
            )))
        };
        if own.key_id().is_some() {
            if let Some(extra) = capabilities
                .iter()
                .find(|c| !own.capabilities().contains(c))
            {
                return denied(format!(
                    "a key cannot create a key with capability \"{extra}\" it does not have"
                ));
            }
        }
        let empty = serde_json::Map::new();
        let mut child = claims.as_object().cloned().unwrap_or_default();
        let parent = own.scope.as_object().unwrap_or(&empty);
        scope::inherit_limits(&mut child, parent);
        if let Err(e) = scope::narrows(&child, parent) {
            return denied(format!(
                "a derived key's claims must stay within the bound credential: {e}"
            ));
        }
        if tenant_id.is_some() && tenant_id != own.tenant_id.as_deref() {
            return denied(match &own.tenant_id {
                Some(t) => format!("the bound identity belongs to tenant \"{t}\""),
                None => {
                    "the bound identity belongs to no tenant, so its keys belong to none".into()
                }
            });
        }
        let lineage = match &own.credential {
            Credential::ApiKey { key_id, .. } => Lineage {
                parent_key_id: kakunin_core::api_key::uuid_bytes(key_id)
                    .map(pgrx::Uuid::from_bytes),
                ..Lineage::default()
            },
            Credential::Certificate { serial, issuer, .. } => Lineage {
                parent_key_id: None,
                parent_serial: Some(serial.clone()),
                parent_issuer: Some(issuer.clone()),
            },
            // A forwarded serial names no issuer: the serial under every issuer.
            Credential::Serial { serial } => Lineage {
                parent_key_id: None,
                parent_serial: Some(serial.clone()),
                parent_issuer: Some(String::new()),
            },
        };
        Ok(Derived {
            lineage,
            claims: Value::Object(child),
            tenant_id: own.tenant_id.clone(),
            expiry_cap: own.expires_at(),
        })
    }
}

/// What [`Caller::derive`] decided a new key holds.
pub struct Derived {
    pub lineage: Lineage,
    /// The claims to store (limits the parent sets and the child did not, added).
    pub claims: Value,
    pub tenant_id: Option<String>,
    /// Unix seconds the key's expiry may not pass.
    pub expiry_cap: Option<i64>,
}
