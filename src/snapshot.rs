//! The immutable state a request is served with: configuration, tenants and plans, identity
//! (JWT keys, API keys, verified-token cache). Requests read the current snapshot through
//! `arc-swap` once, at their start; a reload builds and validates a whole new snapshot and swaps
//! it in, so no request ever sees half of the old state and half of the new.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderName;

use crate::authz::Authz;
use crate::authz::policies::cedar_files;
use crate::config::Config;
use crate::identity::Identity;
use crate::tenants::store::Image;
use crate::tenants::{Directory, IssuerRules, Origin, Spec};

pub struct Snapshot {
    /// Counts successful loads; 1 for the first.
    pub generation: u64,
    pub config: Arc<Config>,
    pub tenants: Option<Directory>,
    pub identity: Arc<Identity>,
    /// Routes and policies (with tenancy, when configured).
    pub authz: Option<Authz>,
    /// Client headers removed before forwarding besides the reserved ones: the configured
    /// ones, the tenant header and the API key header.
    pub strip_headers: Vec<HeaderName>,
    /// What trailers lose besides the reserved names: `strip_headers` and credentials, which
    /// travel in the head only.
    pub trailer_strip: Arc<[HeaderName]>,
    /// Headers a request may carry at most once (credentials, the tenant header).
    pub single_headers: Vec<HeaderName>,
    /// Tenants of the store this snapshot does not serve, and why (they do not fit the files).
    pub refused: Arc<[String]>,
    /// The tenant store as last read: id → (spec, revision of its last change), served or not.
    store_image: imbl::HashMap<Arc<str>, (Arc<Spec>, u64)>,
    /// The store's revision this snapshot has applied.
    pub store_revision: u64,
}

impl Snapshot {
    /// Loads every file the configuration names and validates them together.
    pub fn load(config: Config, generation: u64) -> Result<Snapshot, Vec<String>> {
        Snapshot::build(config, generation, None, false, &[])
    }

    /// [`Snapshot::load`] with the tenant store's image.
    pub fn load_with(config: Config, image: &Image) -> Result<Snapshot, Vec<String>> {
        let mut first = Snapshot::build(config, 1, None, false, &image.tenants)?;
        first.store_revision = image.revision;
        Ok(first)
    }

    /// What loaded but is probably a mistake (`check` prints these, `serve` logs them).
    pub fn warnings(&self) -> &[String] {
        self.authz.as_ref().map_or(&[], |a| &a.warnings[..])
    }

    /// Logs [`Snapshot::warnings`] at warn, and the stored tenants not served at error.
    pub fn log_warnings(&self) {
        for warning in self.warnings() {
            tracing::warn!("{warning}");
        }
        for refused in self.refused.iter() {
            tracing::error!("the tenant store: not served: {refused}");
        }
    }

    /// A snapshot of `config` whose tenants and plans are a policy test's fixture: the policy
    /// folders of tenants it does not have are compiled, not refused.
    pub fn load_fixture(config: Config) -> Result<Snapshot, Vec<String>> {
        Snapshot::build(config, 1, None, true, &[])
    }

    /// The next snapshot: loaded like the first, reusing what did not change since this one
    /// (compiled and validated policy sets), with the same tenants of the store.
    pub fn reload(&self, config: Config) -> Result<Snapshot, Vec<String>> {
        Snapshot::build(
            config,
            self.generation + 1,
            Some(self),
            false,
            &self.stored(),
        )
    }

    /// The next snapshot with the tenant store's whole image replaced (a resync).
    pub fn resync(&self, image: &Image) -> Result<Snapshot, Vec<String>> {
        let mut next = Snapshot::build(
            (*self.config).clone(),
            self.generation + 1,
            Some(self),
            false,
            &image.tenants,
        )?;
        next.store_revision = image.revision;
        Ok(next)
    }

    /// The tenants of the store as last read (served or not), with their revisions.
    pub fn stored(&self) -> Vec<(Spec, u64)> {
        self.store_image
            .values()
            .map(|(spec, revision)| ((**spec).clone(), *revision))
            .collect()
    }

    /// A tenant of the store as last read (served or not) and the revision of its last change.
    pub fn stored_tenant(&self, id: &str) -> Option<&(Arc<Spec>, u64)> {
        self.store_image.get(id)
    }

    /// Every tenant of the store as last read, served or not.
    pub fn stored_tenants(&self) -> impl Iterator<Item = &(Arc<Spec>, u64)> {
        self.store_image.values()
    }

    /// Whether `spec` would be served as a tenant of the store, and if not why: the errors
    /// `check` gives, as `key.path: message`.
    pub fn check_tenant(&self, spec: &Spec) -> Result<(), Vec<String>> {
        let Some(directory) = &self.tenants else {
            return Err(vec!["tenancy: no tenancy is configured".into()]);
        };
        let tenant = directory.admit(spec.clone(), 0)?;
        match &self.authz {
            Some(authz) => authz.with_tenant(&tenant).map(drop),
            None => Ok(()),
        }
    }

    /// This snapshot with one change of the store applied (`spec` `None`: deleted): only that
    /// tenant is derived and checked (its plan, domains, entity), in time flat in the number of
    /// tenants. A tenant that does not fit is not served; why comes back.
    pub fn apply(&self, revision: u64, id: &str, spec: Option<Spec>) -> (Snapshot, Vec<String>) {
        let mut next = self.changed();
        next.store_revision = next.store_revision.max(revision);
        let Some(directory) = &self.tenants else {
            return (next, vec!["tenancy: no tenancy is configured".into()]);
        };
        let mut refused = Vec::new();
        let admitted = match spec {
            Some(spec) => {
                next.store_image
                    .insert(id.into(), (Arc::new(spec.clone()), revision));
                let tenant = directory.admit(spec, revision);
                match tenant.and_then(|t| match &self.authz {
                    Some(authz) => authz.with_tenant(&t).map(|a| (t, Some(a))),
                    None => Ok((t, None)),
                }) {
                    Ok(ok) => Some(ok),
                    Err(e) => {
                        refused = e.into_iter().map(|e| format!("tenant {id}: {e}")).collect();
                        None
                    }
                }
            }
            None => {
                next.store_image.remove(id);
                None
            }
        };
        match admitted {
            Some((tenant, authz)) => {
                next.tenants = Some(directory.with(tenant));
                next.authz = authz;
            }
            None if directory.get(id).is_some_and(|t| t.origin == Origin::Store) => {
                next.tenants = Some(directory.without(id));
                next.authz = self.authz.as_ref().map(|a| a.without_tenant(id));
            }
            None => {}
        }
        (next, refused)
    }

    fn changed(&self) -> Snapshot {
        Snapshot {
            generation: self.generation,
            config: self.config.clone(),
            tenants: self.tenants.clone(),
            identity: self.identity.clone(),
            authz: self.authz.clone(),
            strip_headers: self.strip_headers.clone(),
            trailer_strip: self.trailer_strip.clone(),
            single_headers: self.single_headers.clone(),
            refused: self.refused.clone(),
            store_image: self.store_image.clone(),
            store_revision: self.store_revision,
        }
    }

    fn build(
        config: Config,
        generation: u64,
        previous: Option<&Snapshot>,
        fixture: bool,
        stored: &[(Spec, u64)],
    ) -> Result<Snapshot, Vec<String>> {
        // Every file is checked even when another failed, so that one run reports them all.
        let mut errors = Vec::new();
        let mut refused = Vec::new();
        let issuer_rules = || IssuerRules::of(&config.identity);
        let tenants = match config
            .tenancy
            .as_ref()
            .map(|t| Directory::load(t, issuer_rules()))
            .transpose()
        {
            Ok(tenants) => tenants.map(|files| {
                let (all, not_served) = files.with_stored(stored);
                refused = not_served;
                all
            }),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        // Without a directory (it failed), keys and policy folders are not held to it.
        // (A fixture's tenants are not the configuration's, whose keys are not held to them.)
        let known = |id: &str| fixture || tenants.as_ref().is_none_or(|d| d.get(id).is_some());
        let identity = Identity::load(&config.identity, known).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    if e.starts_with("identity.") {
                        format!("{}: {e}", config.source)
                    } else {
                        e
                    }
                })
                .collect::<Vec<_>>()
        });
        let identity = match identity {
            Ok(identity) => Some(identity),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let authz = match (&config.authorization, &tenants) {
            (Some(authorization), Some(directory)) => {
                match Authz::load_in(
                    authorization,
                    directory,
                    previous.and_then(|p| p.authz.as_ref()),
                    fixture,
                ) {
                    Ok(authz) => Some(authz),
                    Err(e) => {
                        errors.extend(e);
                        None
                    }
                }
            }
            (Some(authorization), None) if config.tenancy.is_some() => {
                errors.extend(Authz::check_alone(authorization));
                None
            }
            _ => None,
        };
        let identity = match identity {
            Some(identity) if errors.is_empty() => identity,
            _ => {
                return Err(errors
                    .iter()
                    .map(|e| crate::config::lines::placed(e))
                    .collect());
            }
        };
        let mut strip_headers = config.identity.strip_headers.clone();
        strip_headers.extend(config.tenancy.as_ref().map(|t| t.header.clone()));
        strip_headers.extend(config.identity.api_keys.as_ref().map(|k| k.header.clone()));
        let mut trailer_strip = strip_headers.clone();
        trailer_strip.extend([
            http::header::AUTHORIZATION,
            http::header::COOKIE,
            http::header::HOST,
        ]);
        let mut single_headers = vec![http::header::AUTHORIZATION];
        single_headers.extend(config.tenancy.as_ref().map(|t| t.header.clone()));
        single_headers.extend(config.identity.api_keys.as_ref().map(|k| k.header.clone()));
        Ok(Snapshot {
            generation,
            config: Arc::new(config),
            tenants,
            identity: Arc::new(identity),
            authz,
            strip_headers,
            trailer_strip: trailer_strip.into(),
            single_headers,
            refused: refused.into(),
            store_image: stored
                .iter()
                .map(|(spec, revision)| {
                    (spec.id.as_str().into(), (Arc::new(spec.clone()), *revision))
                })
                .collect(),
            store_revision: previous.map_or(0, |p| p.store_revision),
        })
    }

    /// The files a reload must notice changes in.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(t) = &self.config.tenancy {
            files.extend([t.tenants_file.clone(), t.plans_file.clone()]);
        }
        let identity = &self.config.identity;
        files.extend(identity.api_keys.as_ref().map(|k| k.file.clone()));
        for provider in &identity.jwt {
            files.extend(provider.jwks_file.clone());
            for key in &provider.keys {
                files.extend(key.public_key_file.clone());
            }
        }
        if let Some(a) = &self.config.authorization {
            files.push(a.routes_file.clone());
            files.push(a.policies_dir.join("schema.cedarschema"));
            files.extend(cedar_files(&a.policies_dir).unwrap_or_default());
            if let Ok(dirs) = std::fs::read_dir(a.policies_dir.join("tenants")) {
                let mut dirs: Vec<PathBuf> =
                    dirs.filter_map(Result::ok).map(|e| e.path()).collect();
                dirs.sort();
                for dir in dirs {
                    files.extend(cedar_files(&dir).unwrap_or_default());
                }
            }
        }
        files
    }

    /// Directories whose new entries matter besides those holding `watched_files` (a tenant's
    /// policy directory appearing).
    pub(crate) fn watched_dirs(&self) -> Vec<PathBuf> {
        let Some(a) = &self.config.authorization else {
            return Vec::new();
        };
        let tenants = a.policies_dir.join("tenants");
        [a.policies_dir.clone(), tenants]
            .into_iter()
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Whether `ip` is one of `forwarding.trusted_proxies`.
    pub(crate) fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config
            .forwarding
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }
}
