//! Route templates: rocket's `Route::uri` (`/orders/<id>`) in the `{id}` form every rustmon
//! integration names requests with (`/orders/{id}`).

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

use rocket::Route;

/// How many distinct route paths are kept; routes come from code, so the cap only guards against
/// a program that builds routes at run time without end.
const MAX_TEMPLATES: usize = 4096;

/// Rocket's route path → its normalised template, kept for the life of the program (the
/// [`RouteSlot`](rustmon_tower::RouteSlot) that names the event takes a `&'static str`).
static TEMPLATES: OnceLock<RwLock<HashMap<Box<str>, &'static str>>> = OnceLock::new();

/// The template of `route`: its mounted path, without the query, with `<name>` written `{name}`
/// and a trailing `<name..>` written `{*name}`. `None` only past [`MAX_TEMPLATES`] routes.
pub(crate) fn of(route: &Route) -> Option<&'static str> {
    let raw = route.uri.path();
    let map = TEMPLATES.get_or_init(Default::default);
    if let Some(t) = map.read().unwrap_or_else(PoisonError::into_inner).get(raw) {
        return Some(t);
    }
    let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(t) = map.get(raw) {
        return Some(t);
    }
    if map.len() >= MAX_TEMPLATES {
        return None;
    }
    let template: &'static str = Box::leak(normalise(raw).into_boxed_str());
    map.insert(raw.into(), template);
    Some(template)
}

/// `/orders/<id>/items/<rest..>` → `/orders/{id}/items/{*rest}`.
pub(crate) fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            Some(param) => match param.strip_suffix("..") {
                Some(name) => {
                    out.push_str("{*");
                    out.push_str(name);
                    out.push('}');
                }
                None => {
                    out.push('{');
                    out.push_str(param);
                    out.push('}');
                }
            },
            None => out.push_str(segment),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::http::Method;

    #[test]
    fn parameters_take_the_common_form() {
        assert_eq!(normalise("/"), "/");
        assert_eq!(normalise("/health"), "/health");
        assert_eq!(normalise("/orders/<id>"), "/orders/{id}");
        assert_eq!(
            normalise("/users/<user>/files/<path..>"),
            "/users/{user}/files/{*path}"
        );
        assert_eq!(normalise("/<_>/x"), "/{_}/x");
    }

    #[test]
    fn templates_come_from_the_mounted_path_without_the_query() {
        let route = Route::new(
            Method::Get,
            "/orders/<id>?<verbose>",
            rocket::route::dummy_handler,
        )
        .map_base(|base| format!("/api{base}"))
        .unwrap();
        let t = of(&route).unwrap();
        assert_eq!(t, "/api/orders/{id}");
        assert!(std::ptr::eq(t, of(&route).unwrap()));
    }
}
