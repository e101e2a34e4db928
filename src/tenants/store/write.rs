//! What the tenant store is asked and answers, shared by its backends.

use serde::{Deserialize, Serialize};

use crate::tenants::Spec;

/// What a write requires of the tenant's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever it is (a replace, a delete).
    Any,
    /// That there is none (a create).
    Absent,
    /// That its last change is this revision (a patch of what was read).
    At(u64),
}

/// A change to write.
#[derive(Debug, Clone)]
pub enum Write {
    /// A tenant, and its custom domains as served (lower-case, no trailing dot).
    Put(Box<Spec>, Vec<String>),
    Delete,
}

/// How a write ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written as this revision.
    Written(u64),
    /// The tenant is not at the expected revision (`At`), or exists (`Absent`): its revision.
    Conflict(u64),
    /// Nothing to delete.
    Missing,
    /// A custom domain belongs to another tenant of the store: (domain, owner).
    DomainTaken(String, String),
}

/// The whole store at one revision.
#[derive(Debug, Default)]
pub struct Image {
    pub revision: u64,
    /// Each tenant with the revision of its last change.
    pub tenants: Vec<(Spec, u64)>,
}

/// One stored tenant, as kept in redb and Redis.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Record {
    pub revision: u64,
    pub domains: Vec<String>,
    pub spec: Spec,
}
