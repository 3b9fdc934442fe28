//! Live, typed plugin configuration (the seed's TrackerConfig and SetConfigFunc).
//!
//! Each plugin declares a serde struct implementing [`PluginConfig`]. A [`ConfigHandle`] reads the
//! current value lock-free; updates arrive as JSON patches (from code, a file or the environment at
//! start, or the collector) and are validated before they take effect: an invalid update is
//! rejected with an error naming the field, and the old configuration stays in force. An update
//! for a plugin that has not registered yet is kept and applied when it registers.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

/// A plugin's configuration: serde, with defaults, validated before use.
///
/// # Examples
/// ```
/// use rustmon_core::config::{FieldError, PluginConfig};
/// #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
/// #[serde(default, deny_unknown_fields)]
/// struct CacheConfig { record_keys: bool, max_key_len: usize }
/// impl Default for CacheConfig {
///     fn default() -> Self { CacheConfig { record_keys: false, max_key_len: 64 } }
/// }
/// impl PluginConfig for CacheConfig {
///     const NAME: &'static str = "cache";
///     fn validate(&self) -> Result<(), FieldError> {
///         if self.max_key_len == 0 { return Err(FieldError::new("max_key_len", "must be at least 1")); }
///         Ok(())
///     }
/// }
/// ```
pub trait PluginConfig:
    Serialize + DeserializeOwned + Default + Clone + fmt::Debug + Send + Sync + 'static
{
    /// The plugin's name: the config section and the `plugin` tag of its events.
    const NAME: &'static str;

    /// Checks values serde cannot (ranges, combinations). Name the offending field.
    fn validate(&self) -> Result<(), FieldError> {
        Ok(())
    }
}

/// A field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `sample_rate` or `ignore_routes[2]`.
    pub field: String,
    /// What was wrong, e.g. `must be between 0 and 1, got 2`.
    pub message: String,
}

impl FieldError {
    /// A validation error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a configuration update was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A field had a wrong type, an unknown name or a value out of range.
    #[error("invalid config for `{plugin}`: field `{field}`: {message}")]
    Invalid {
        /// The plugin.
        plugin: String,
        /// The field's path.
        field: String,
        /// What was wrong.
        message: String,
    },
    /// The update was not a table of fields.
    #[error("invalid config for `{plugin}`: expected a table of fields, got {got}")]
    NotATable {
        /// The plugin.
        plugin: String,
        /// What was given instead.
        got: String,
    },
}

/// Lock-free access to a plugin's current configuration.
///
/// Cloning is cheap; every clone sees updates.
///
/// # Examples
/// ```
/// use rustmon_core::config::{ConfigHandle, PluginConfig};
/// # #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
/// # struct C { limit: u32 }
/// # impl PluginConfig for C { const NAME: &'static str = "c"; }
/// let handle = ConfigHandle::new(C { limit: 3 });
/// assert_eq!(handle.get().limit, 3);
/// ```
pub struct ConfigHandle<C> {
    shared: Arc<HandleShared<C>>,
}

type Callback<C> = Box<dyn Fn(&C) + Send + Sync>;

struct HandleShared<C> {
    current: ArcSwap<C>,
    version: AtomicU64,
    callbacks: Mutex<Vec<Callback<C>>>,
}

impl<C> Clone for ConfigHandle<C> {
    fn clone(&self) -> Self {
        ConfigHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for ConfigHandle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigHandle")
            .field("version", &self.shared.version.load(Ordering::Relaxed))
            .field("current", &**self.shared.current.load())
            .finish()
    }
}

impl<C: PluginConfig> Default for ConfigHandle<C> {
    fn default() -> Self {
        ConfigHandle::new(C::default())
    }
}

impl<C: PluginConfig> ConfigHandle<C> {
    /// A handle not attached to any monitor, e.g. for a library used without one.
    pub fn new(config: C) -> Self {
        ConfigHandle {
            shared: Arc::new(HandleShared {
                current: ArcSwap::from_pointee(config),
                version: AtomicU64::new(0),
                callbacks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The current configuration, without locking.
    #[inline]
    pub fn get(&self) -> arc_swap::Guard<Arc<C>> {
        self.shared.current.load()
    }

    /// How many updates have been applied (0 for the initial value).
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// Validates and applies a whole new configuration.
    pub fn set(&self, config: C) -> Result<(), ConfigError> {
        config
            .validate()
            .map_err(|e| invalid::<C>(e.field, e.message))?;
        self.store(config);
        Ok(())
    }

    /// Applies a JSON patch: the fields it names replace the current ones (tables merge
    /// recursively). Rejected as a whole if any field is wrong.
    ///
    /// # Examples
    /// ```
    /// # use rustmon_core::config::{ConfigHandle, PluginConfig};
    /// # #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
    /// # #[serde(default, deny_unknown_fields)]
    /// # struct C { limit: u32, on: bool }
    /// # impl PluginConfig for C { const NAME: &'static str = "c"; }
    /// let handle = ConfigHandle::new(C { limit: 3, on: false });
    /// handle.apply_json(&serde_json::json!({ "on": true })).unwrap();
    /// assert!(handle.get().on && handle.get().limit == 3);
    /// let err = handle.apply_json(&serde_json::json!({ "limit": "many" })).unwrap_err();
    /// assert!(err.to_string().contains("field `limit`"));
    /// assert!(handle.get().on); // the old value stays
    /// ```
    pub fn apply_json(&self, patch: &Json) -> Result<(), ConfigError> {
        let next = patched(&**self.get(), patch)?;
        self.store(next);
        Ok(())
    }

    /// Whether `patch` would be accepted, without applying it.
    pub fn check_json(&self, patch: &Json) -> Result<(), ConfigError> {
        patched(&**self.get(), patch).map(drop)
    }

    /// The current configuration as JSON.
    pub fn to_json(&self) -> Json {
        serde_json::to_value(&**self.get()).unwrap_or(Json::Null)
    }

    /// Calls `f` with the current configuration now and after every update.
    pub fn on_change(&self, f: impl Fn(&C) + Send + Sync + 'static) {
        f(&self.get());
        self.shared
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(f));
    }

    fn store(&self, config: C) {
        let config = Arc::new(config);
        let callbacks = self
            .shared
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared.current.store(config.clone());
        self.shared.version.fetch_add(1, Ordering::AcqRel);
        for cb in callbacks.iter() {
            cb(&config);
        }
    }
}

fn invalid<C: PluginConfig>(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        plugin: C::NAME.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

/// `base` with `patch` merged in, deserialized and validated.
fn patched<C: PluginConfig>(base: &C, patch: &Json) -> Result<C, ConfigError> {
    if !patch.is_object() {
        return Err(ConfigError::NotATable {
            plugin: C::NAME.to_owned(),
            got: json_kind(patch).to_owned(),
        });
    }
    let mut merged = serde_json::to_value(base).map_err(|e| invalid::<C>("", e.to_string()))?;
    merge(&mut merged, patch);
    let config: C = serde_path_to_error::deserialize(merged).map_err(|e| {
        let field = e.path().to_string();
        let message = e.into_inner().to_string();
        invalid::<C>(if field == "." { String::new() } else { field }, message)
    })?;
    config
        .validate()
        .map_err(|e| invalid::<C>(e.field, e.message))?;
    Ok(config)
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "a table",
    }
}

/// Recursively merges `patch` into `base`: tables merge, anything else replaces.
pub fn merge(base: &mut Json, patch: &Json) {
    match (base, patch) {
        (Json::Object(b), Json::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

trait Slot: Send + Sync {
    fn apply(&self, patch: &Json) -> Result<(), ConfigError>;
    fn check(&self, patch: &Json) -> Result<(), ConfigError>;
    fn to_json(&self) -> Json;
    fn version(&self) -> u64;
    fn as_any(&self) -> &dyn Any;
}

impl<C: PluginConfig> Slot for ConfigHandle<C> {
    fn apply(&self, patch: &Json) -> Result<(), ConfigError> {
        self.apply_json(patch)
    }
    fn check(&self, patch: &Json) -> Result<(), ConfigError> {
        self.check_json(patch)
    }
    fn to_json(&self) -> Json {
        ConfigHandle::to_json(self)
    }
    fn version(&self) -> u64 {
        ConfigHandle::version(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

enum Entry {
    /// Updates received before the plugin registered, merged.
    Pending(Json),
    Registered(Box<dyn Slot>),
}

/// All plugin configurations of a monitor, by plugin name.
#[derive(Default)]
pub struct ConfigRegistry {
    entries: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for ConfigRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigRegistry")
            .field("plugins", &self.names())
            .finish()
    }
}

impl ConfigRegistry {
    /// The handle for `C`, registering it on first use. Updates received earlier are applied now;
    /// if they are invalid the defaults stay, and the error is returned beside the handle.
    pub fn register<C: PluginConfig>(&self) -> (ConfigHandle<C>, Option<ConfigError>) {
        let mut entries = self.lock();
        if let Some(Entry::Registered(slot)) = entries.get(C::NAME) {
            if let Some(handle) = slot.as_any().downcast_ref::<ConfigHandle<C>>() {
                return (handle.clone(), None);
            }
            // Another type registered under the same name: keep it, give this caller its own.
            let err = invalid::<C>("", "another config type is registered under this name");
            return (ConfigHandle::default(), Some(err));
        }
        let handle = ConfigHandle::<C>::default();
        let error = match entries.remove(C::NAME) {
            Some(Entry::Pending(patch)) => handle.apply_json(&patch).err(),
            _ => None,
        };
        entries.insert(
            C::NAME.to_owned(),
            Entry::Registered(Box::new(handle.clone())),
        );
        (handle, error)
    }

    /// Applies a JSON patch to plugin `name`. For a plugin that has not registered yet the patch
    /// is kept (merged with earlier ones) and validated when it registers.
    pub fn update(&self, name: &str, patch: &Json) -> Result<(), ConfigError> {
        let mut entries = self.lock();
        match entries.get_mut(name) {
            Some(Entry::Registered(slot)) => slot.apply(patch),
            Some(Entry::Pending(pending)) => {
                merge(pending, patch);
                Ok(())
            }
            None if patch.is_object() => {
                entries.insert(name.to_owned(), Entry::Pending(patch.clone()));
                Ok(())
            }
            None => Err(ConfigError::NotATable {
                plugin: name.to_owned(),
                got: json_kind(patch).to_owned(),
            }),
        }
    }

    /// Applies patches to several plugins all or nothing: if any is rejected, none is applied.
    pub fn update_all(&self, patches: &[(String, Json)]) -> Result<(), ConfigError> {
        let mut entries = self.lock();
        for (name, patch) in patches {
            match entries.get(name.as_str()) {
                Some(Entry::Registered(slot)) => slot.check(patch)?,
                _ if !patch.is_object() => {
                    return Err(ConfigError::NotATable {
                        plugin: name.clone(),
                        got: json_kind(patch).to_owned(),
                    });
                }
                _ => {}
            }
        }
        for (name, patch) in patches {
            match entries.get_mut(name.as_str()) {
                // Checked above under the same lock, so this cannot fail.
                Some(Entry::Registered(slot)) => slot.apply(patch)?,
                Some(Entry::Pending(pending)) => merge(pending, patch),
                None => {
                    entries.insert(name.clone(), Entry::Pending(patch.clone()));
                }
            }
        }
        Ok(())
    }

    /// The current configuration of a registered plugin, or the pending patch of one that has not
    /// registered yet.
    pub fn get_json(&self, name: &str) -> Option<Json> {
        match self.lock().get(name)? {
            Entry::Registered(slot) => Some(slot.to_json()),
            Entry::Pending(p) => Some(p.clone()),
        }
    }

    /// Every plugin's current configuration (registered ones only), keyed by name, with versions.
    pub fn snapshot(&self) -> Vec<(String, u64, Json)> {
        let mut out: Vec<_> = self
            .lock()
            .iter()
            .filter_map(|(name, e)| match e {
                Entry::Registered(slot) => Some((name.clone(), slot.version(), slot.to_json())),
                Entry::Pending(_) => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The names of all plugins with a configuration, registered or pending.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.lock().keys().cloned().collect();
        names.sort();
        names
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Web {
        record_headers: bool,
        max_body: usize,
        ignore: Vec<String>,
        nested: Nested,
    }

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Nested {
        a: u8,
        b: u8,
    }

    impl Default for Web {
        fn default() -> Self {
            Web {
                record_headers: false,
                max_body: 1024,
                ignore: vec!["/health".into()],
                nested: Nested::default(),
            }
        }
    }

    impl PluginConfig for Web {
        const NAME: &'static str = "web";
        fn validate(&self) -> Result<(), FieldError> {
            if self.max_body > 1 << 20 {
                return Err(FieldError::new("max_body", "must be at most 1048576"));
            }
            Ok(())
        }
    }

    #[test]
    fn live_update_and_rejection() {
        let reg = ConfigRegistry::default();
        let (h, err) = reg.register::<Web>();
        assert!(err.is_none());
        reg.update("web", &json!({"record_headers": true, "nested": {"b": 2}}))
            .unwrap();
        assert!(h.get().record_headers);
        assert_eq!(h.get().nested, Nested { a: 0, b: 2 });
        assert_eq!(h.version(), 1);

        let e = reg.update("web", &json!({"max_body": "big"})).unwrap_err();
        assert!(e.to_string().contains("field `max_body`"), "{e}");
        let e = reg
            .update("web", &json!({"max_body": 1 << 30}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid config for `web`: field `max_body`: must be at most 1048576"
        );
        let e = reg.update("web", &json!({"nested": {"c": 1}})).unwrap_err();
        assert!(e.to_string().contains("field `nested.c`"), "{e}");
        assert!(e.to_string().contains("unknown field `c`"), "{e}");
        let e = reg.update("web", &json!([1])).unwrap_err();
        assert!(matches!(e, ConfigError::NotATable { .. }));
        assert_eq!(h.version(), 1);
        assert!(h.get().record_headers && h.get().max_body == 1024);
    }

    #[test]
    fn deferred_config_applies_on_registration() {
        let reg = ConfigRegistry::default();
        reg.update("web", &json!({"max_body": 10})).unwrap();
        reg.update("web", &json!({"record_headers": true})).unwrap();
        assert_eq!(
            reg.get_json("web"),
            Some(json!({"max_body": 10, "record_headers": true}))
        );
        let (h, err) = reg.register::<Web>();
        assert!(err.is_none());
        assert_eq!(h.get().max_body, 10);
        assert!(h.get().record_headers);
        assert_eq!(reg.register::<Web>().0.get().max_body, 10);
    }

    #[test]
    fn invalid_deferred_config_keeps_defaults() {
        let reg = ConfigRegistry::default();
        reg.update("web", &json!({"max_body": -1})).unwrap();
        let (h, err) = reg.register::<Web>();
        assert!(err.unwrap().to_string().contains("max_body"));
        assert_eq!(**h.get(), Web::default());
    }

    #[test]
    fn update_all_is_all_or_nothing() {
        let reg = ConfigRegistry::default();
        let (h, _) = reg.register::<Web>();
        let err = reg
            .update_all(&[
                ("web".into(), json!({"record_headers": true})),
                ("later".into(), json!({"x": 1})),
                ("web".into(), json!({"max_body": "big"})),
            ])
            .unwrap_err();
        assert!(err.to_string().contains("max_body"));
        assert!(!h.get().record_headers);
        assert_eq!(reg.get_json("later"), None);
        reg.update_all(&[
            ("web".into(), json!({"record_headers": true})),
            ("later".into(), json!({"x": 1})),
        ])
        .unwrap();
        assert!(h.get().record_headers);
        assert_eq!(reg.get_json("later"), Some(json!({"x": 1})));
    }

    #[test]
    fn callbacks_see_every_update() {
        let h = ConfigHandle::new(Web::default());
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        h.on_change(move |c| s.store(c.max_body as u64, Ordering::SeqCst));
        assert_eq!(seen.load(Ordering::SeqCst), 1024);
        h.apply_json(&json!({"max_body": 5})).unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 5);
    }
}
