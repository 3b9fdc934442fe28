//! [`DbConfig`]: the live configuration shared by every SQL integration.

use rustmon_core::config::{FieldError, PluginConfig};
use serde::{Deserialize, Serialize};

/// How SQL statements are recorded: the plugin config `db`, shared by every SQL integration
/// (sqlx, tokio-postgres, rusqlite, …) and live-updatable like any plugin config
/// (`monitor.update_config("db", json)`, files, environment, the collector).
///
/// | field | default | meaning |
/// |---|---|---|
/// | `query_len` | 2048 | `db.query.text` is cut to this many bytes; 0 leaves it out |
/// | `record_params` | false | bound parameters as `db.query.parameter.<n>` (where the driver shows them) |
/// | `record_raw_statement` | false | `db.query.text` holds the statement as sent, literals included |
/// | `max_rows` | 0 | rows rendered into `db.response.summary` (where the driver can); 0: none |
/// | `slow_threshold_ms` | 500 | statements at least this slow get `db.slow = true` and are kept when their trace is sampled out |
/// | `n_plus_one_threshold` | 5 | the same fingerprint this often under one parent is flagged, and the parent gets `db.n_plus_one.statement` and `.count` (and is kept); 0: off |
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_sql::DbConfig;
/// let monitor = Monitor::builder("svc").build().unwrap();
/// let config = monitor.config::<DbConfig>();
/// assert_eq!(config.get().n_plus_one_threshold, 5);
/// monitor.update_config("db", &serde_json::json!({ "query_len": 64 })).unwrap();
/// assert_eq!(config.get().query_len, 64);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// `db.query.text` is cut to this many bytes; 0 leaves it out.
    pub query_len: usize,
    /// Record bound parameters (`db.query.parameter.<n>`), where the driver exposes them.
    pub record_params: bool,
    /// Record the statement as sent (literals included) instead of the obfuscated text.
    pub record_raw_statement: bool,
    /// Rows rendered into `db.response.summary`, where the driver can; 0: none.
    pub max_rows: usize,
    /// Statements at least this slow (ms) are marked `db.slow = true` and kept under sampling.
    pub slow_threshold_ms: u64,
    /// The same fingerprint executed this many times under one parent is flagged as N+1; 0: off.
    pub n_plus_one_threshold: u32,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            query_len: 2048,
            record_params: false,
            record_raw_statement: false,
            max_rows: 0,
            slow_threshold_ms: 500,
            n_plus_one_threshold: 5,
        }
    }
}

impl PluginConfig for DbConfig {
    const NAME: &'static str = "db";

    fn validate(&self) -> Result<(), FieldError> {
        if self.max_rows > 1000 {
            return Err(FieldError::new(
                "max_rows",
                format!("must be at most 1000, got {}", self.max_rows),
            ));
        }
        if self.n_plus_one_threshold == 1 {
            return Err(FieldError::new(
                "n_plus_one_threshold",
                "must be 0 (off) or at least 2, got 1",
            ));
        }
        Ok(())
    }
}
