//! Reading configuration from the environment and from a file.

use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::init::InitError;

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas, values percent-encoded.
pub(crate) fn resource_attributes(raw: &str) -> Result<Vec<(String, String)>, InitError> {
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(InitError::Env {
                var: "OTEL_RESOURCE_ATTRIBUTES",
                message: format!("expected key=value, got {pair:?}"),
            });
        };
        out.push((k.trim().to_owned(), percent_decode(v.trim())));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A boolean environment value: `true/false`, `1/0`, `yes/no`, `on/off`.
pub(crate) fn parse_bool(var: &'static str, value: &str) -> Result<bool, InitError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(InitError::Env {
            var,
            message: format!("expected true or false, got {other:?}"),
        }),
    }
}

/// `RUSTMON_<PLUGIN>__<FIELD>[__<SUBFIELD>]=value` variables as config patches per plugin. Values
/// are JSON when they parse as JSON (`true`, `0.5`, `["/health"]`), strings otherwise.
pub(crate) fn plugin_patches(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, Json)> {
    let mut out: Vec<(String, Json)> = Vec::new();
    for (key, value) in vars {
        let Some(rest) = key.strip_prefix("RUSTMON_") else {
            continue;
        };
        let mut parts = rest.split("__");
        let (Some(plugin), Some(first)) = (parts.next(), parts.next()) else {
            continue;
        };
        if plugin.is_empty() || first.is_empty() {
            continue;
        }
        let plugin = plugin.to_ascii_lowercase();
        let path: Vec<String> = std::iter::once(first)
            .chain(parts)
            .map(str::to_ascii_lowercase)
            .collect();
        let parsed = serde_json::from_str(&value).unwrap_or(Json::String(value));
        let mut patch = parsed;
        for field in path.iter().rev() {
            let mut m = Map::new();
            m.insert(field.clone(), patch);
            patch = Json::Object(m);
        }
        match out.iter_mut().find(|(p, _)| *p == plugin) {
            Some((_, existing)) => rustmon_core::config::merge(existing, &patch),
            None => out.push((plugin, patch)),
        }
    }
    out
}

/// A configuration file: TOML (or JSON when the name ends in `.json`), one table per plugin.
pub(crate) fn config_file(path: &Path) -> Result<Vec<(String, Json)>, InitError> {
    let file_error = |message: String| InitError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let doc: Json = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| file_error(e.to_string()))?
    } else {
        toml::from_str(&text).map_err(|e| file_error(e.to_string()))?
    };
    let Json::Object(tables) = doc else {
        return Err(file_error("expected a table per plugin".into()));
    };
    tables
        .into_iter()
        .map(|(plugin, patch)| {
            if patch.is_object() {
                Ok((plugin, patch))
            } else {
                Err(file_error(format!(
                    "`{plugin}` must be a table of settings, e.g. [{plugin}]"
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_patches_from_env() {
        let vars = [
            ("RUSTMON_CORE__SAMPLE_RATE", "0.25"),
            ("RUSTMON_HTTP__IGNORE_ROUTES", r#"["/health"]"#),
            ("RUSTMON_HTTP__HEADERS__MODE", "deny"),
            ("RUSTMON_CONFIG", "x.toml"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let patches = plugin_patches(vars.into_iter());
        assert_eq!(
            patches,
            vec![
                ("core".to_owned(), json!({"sample_rate": 0.25})),
                (
                    "http".to_owned(),
                    json!({"ignore_routes": ["/health"], "headers": {"mode": "deny"}})
                ),
            ]
        );
    }

    #[test]
    fn resource_attributes_parse() {
        let attrs = resource_attributes("service.version=1.2, team=check%20out").unwrap();
        assert_eq!(
            attrs,
            vec![
                ("service.version".into(), "1.2".into()),
                ("team".into(), "check out".into())
            ]
        );
        let err = resource_attributes("novalue").unwrap_err();
        assert!(err.to_string().contains("OTEL_RESOURCE_ATTRIBUTES"));
    }
}
