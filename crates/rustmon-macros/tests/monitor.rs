//! `#[monitor]` against the global monitor and a capture listener. Every test uses its own function
//! names, so tests running in parallel do not see each other's events.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use rustmon_core::context::{self, FutureExt as _};
use rustmon_core::{Kind, Monitor, Status, Value};
use rustmon_macros::monitor;
use rustmon_test::Capture;

fn capture() -> &'static Capture {
    static GLOBAL: OnceLock<(Monitor, Capture)> = OnceLock::new();
    &GLOBAL
        .get_or_init(|| {
            let capture = Capture::new();
            let monitor = Monitor::builder("macros-test")
                .listener(capture.listener())
                .build()
                .unwrap();
            monitor.install_global();
            (monitor, capture)
        })
        .1
}

fn flush() -> &'static Capture {
    let c = capture();
    assert!(
        rustmon_core::global()
            .unwrap()
            .flush(Duration::from_secs(5))
    );
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

// ---- sync ----

#[monitor]
fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[test]
fn a_sync_function_records_one_event_named_after_it() {
    capture();
    assert_eq!(add(2, 3), 5);
    let c = flush();
    let e = c.expect("add").kind(Kind::Custom).root().one();
    assert_eq!(e.status, Status::Unset);
    assert_eq!(e.plugin, "custom");
}

#[monitor(name = "load-user", kind = "database")]
fn load_user_sync(id: u64) -> Option<&'static str> {
    if id == 0 {
        return None;
    }
    Some("ada")
}

#[test]
fn name_and_kind_options() {
    capture();
    assert_eq!(load_user_sync(0), None);
    assert_eq!(load_user_sync(1), Some("ada"));
    flush().expect("load-user").kind(Kind::Database).count(2);
}

struct Point {
    x: i32,
}

impl fmt::Debug for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P({})", self.x)
    }
}

#[monitor(fields(user.id = id, "http.route" = "/users/{id}", label = %name, point = ?p, ratio = 0.5, id))]
fn with_fields(id: u64, name: &str, p: Point) -> usize {
    name.len() + p.x as usize
}

#[test]
fn fields_become_attributes() {
    capture();
    assert_eq!(with_fields(9, "bob", Point { x: 1 }), 4);
    let e = flush().expect("with_fields").one();
    assert_eq!(e.attribute("user.id"), Some(&Value::U64(9)));
    assert_eq!(e.attribute("id"), Some(&Value::U64(9)));
    assert_eq!(
        e.attribute("http.route").and_then(Value::as_str),
        Some("/users/{id}")
    );
    assert_eq!(e.attribute("label").and_then(Value::as_str), Some("bob"));
    assert_eq!(e.attribute("point").and_then(Value::as_str), Some("P(1)"));
    assert_eq!(e.attribute("ratio"), Some(&Value::F64(0.5)));
}

#[monitor(err)]
fn parse_number(s: &str) -> Result<i32, std::num::ParseIntError> {
    let n: i32 = s.trim().parse()?;
    if n < 0 {
        return Ok(0);
    }
    Ok(n * 2)
}

#[derive(Debug)]
struct Opaque;

#[monitor(err(Debug))]
fn debug_error(fail: bool) -> Result<(), Opaque> {
    if fail { Err(Opaque) } else { Ok(()) }
}

#[test]
fn err_records_errors_with_their_type_and_message() {
    capture();
    assert_eq!(parse_number(" 21 "), Ok(42));
    assert_eq!(parse_number("-1"), Ok(0));
    assert!(parse_number("x").is_err());
    assert!(debug_error(true).is_err());
    assert!(debug_error(false).is_ok());
    let c = flush();
    c.expect("parse_number").status(Status::Unset).count(2);
    let failed = c.expect("parse_number").status(Status::Error).one();
    assert_eq!(failed.errors.len(), 1);
    assert_eq!(
        failed.errors[0].error_type,
        std::any::type_name::<std::num::ParseIntError>()
    );
    assert_eq!(failed.errors[0].message, "invalid digit found in string");
    let opaque = c.expect("debug_error").status(Status::Error).one();
    assert_eq!(opaque.errors[0].message, "Opaque");
    assert!(opaque.errors[0].error_type.ends_with("Opaque"));
    c.expect("debug_error").status(Status::Unset).one();
}

#[monitor(err)]
fn opaque_ok(n: u8) -> Result<impl fmt::Display, String> {
    if n > 0 { Ok(n) } else { Err("zero".to_owned()) }
}

#[test]
fn err_works_with_impl_trait_in_the_return_type() {
    capture();
    assert_eq!(opaque_ok(3).unwrap().to_string(), "3");
    assert!(opaque_ok(0).is_err());
    let c = flush();
    c.expect("opaque_ok").status(Status::Error).one();
    c.expect("opaque_ok").status(Status::Unset).one();
}

#[monitor]
fn sync_outer() -> u32 {
    let inside = context::current();
    assert!(inside.is_some(), "the event is current in the body");
    sync_inner() + sync_inner()
}

#[monitor(kind = "cache")]
fn sync_inner() -> u32 {
    1
}

#[test]
fn nested_sync_calls_are_parent_and_children() {
    capture();
    assert_eq!(sync_outer(), 2);
    assert_eq!(context::current(), None, "the context is restored");
    let c = flush();
    let outer = c.expect("sync_outer").root().one();
    c.expect("sync_inner")
        .kind(Kind::Cache)
        .child_of(&outer)
        .count(2);
}

#[monitor]
fn panics() {
    panic!("boom");
}

#[monitor]
async fn panics_async() {
    tokio::task::yield_now().await;
    panic!("async boom");
}

#[test]
fn a_panicking_function_is_recorded_as_an_error() {
    capture();
    assert!(std::panic::catch_unwind(panics).is_err());
    assert_eq!(context::current(), None);
    let joined = runtime().block_on(async { tokio::spawn(panics_async()).await });
    assert!(joined.unwrap_err().is_panic());
    let c = flush();
    for name in ["panics", "panics_async"] {
        let e = c.expect(name).status(Status::Error).one();
        assert_eq!(e.errors[0].error_type, "panic");
        assert_eq!(e.attribute("rustmon.cancelled"), None);
    }
}

struct CallsOnDrop;

impl Drop for CallsOnDrop {
    fn drop(&mut self) {
        called_while_unwinding();
    }
}

#[monitor]
fn called_while_unwinding() {}

#[test]
fn a_function_called_by_a_destructor_during_a_panic_is_not_blamed_for_it() {
    capture();
    let result = std::panic::catch_unwind(|| {
        let _d = CallsOnDrop;
        panic!("elsewhere");
    });
    assert!(result.is_err());
    flush()
        .expect("called_while_unwinding")
        .status(Status::Unset)
        .one();
}

// ---- methods and generics ----

struct Repo {
    rows: Vec<String>,
}

impl Repo {
    #[monitor(kind = "database", fields(rows = self.rows.len()))]
    fn get(&self, i: usize) -> Option<&String> {
        self.rows.get(i)
    }

    #[monitor(err)]
    fn push(&mut self, row: &str) -> Result<usize, String> {
        if row.is_empty() {
            return Err("empty row".into());
        }
        self.rows.push(row.to_owned());
        Ok(self.rows.len())
    }

    #[monitor(err)]
    fn slot(&mut self, i: usize) -> Result<&mut String, String> {
        self.rows.get_mut(i).ok_or_else(|| format!("no slot {i}"))
    }

    #[monitor(err)]
    async fn last_mut(&mut self) -> Result<&mut String, String> {
        tokio::task::yield_now().await;
        self.rows.last_mut().ok_or_else(|| "empty".to_owned())
    }

    #[monitor]
    async fn first(&self) -> Option<&String> {
        tokio::task::yield_now().await;
        self.rows.first()
    }

    #[monitor]
    fn into_rows(self) -> Vec<String> {
        self.rows
    }

    #[monitor(err, kind = "database")]
    async fn fetch(&self, i: usize) -> Result<String, String> {
        tokio::task::yield_now().await;
        self.get(i).cloned().ok_or_else(|| format!("no row {i}"))
    }
}

#[test]
fn methods_with_self_receivers() {
    capture();
    let mut repo = Repo { rows: Vec::new() };
    assert_eq!(repo.push("a"), Ok(1));
    assert!(repo.push("").is_err());
    assert_eq!(repo.get(0).map(String::as_str), Some("a"));
    let rt = runtime();
    assert_eq!(rt.block_on(repo.fetch(0)), Ok("a".to_owned()));
    assert!(rt.block_on(repo.fetch(5)).is_err());
    repo.slot(0).unwrap().push('b');
    assert!(repo.slot(9).is_err());
    rt.block_on(repo.last_mut()).unwrap().push('!');
    repo.slot(0).unwrap().pop();
    assert_eq!(rt.block_on(repo.first()).map(String::as_str), Some("ab"));
    assert_eq!(repo.into_rows(), ["ab"]);
    let c = flush();
    c.expect("push").status(Status::Error).one();
    c.expect("push").status(Status::Unset).one();
    let gets = c.expect("get").kind(Kind::Database).count(3);
    assert_eq!(gets[0].attribute("rows"), Some(&Value::U64(1)));
    c.expect("into_rows").one();
    c.expect("slot").status(Status::Error).one();
    c.expect("first").one();
    c.expect("last_mut").status(Status::Unset).one();
    let ok = c.expect("fetch").status(Status::Unset).one();
    c.expect("get").child_of(&ok).one();
    let failed = c.expect("fetch").status(Status::Error).one();
    assert_eq!(failed.errors[0].message, "no row 5");
}

trait Store {
    #[monitor]
    async fn count(&self) -> usize {
        3
    }
}

impl Store for Repo {}

#[test]
fn async_trait_methods_with_default_bodies() {
    capture();
    let repo = Repo { rows: Vec::new() };
    assert_eq!(runtime().block_on(repo.count()), 3);
    flush().expect("count").one();
}

#[monitor]
fn largest<T: PartialOrd + Copy>(xs: &[T]) -> Option<T> {
    let mut best = *xs.first()?;
    for &x in xs {
        if x > best {
            best = x;
        }
    }
    Some(best)
}

#[monitor(err)]
async fn parse_all<T, I>(items: I) -> Result<Vec<T>, T::Err>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
    I: IntoIterator<Item = &'static str>,
{
    let mut out = Vec::new();
    for s in items {
        tokio::task::yield_now().await;
        out.push(s.parse()?);
    }
    Ok(out)
}

#[test]
fn generic_functions() {
    capture();
    assert_eq!(largest(&[3, 9, 2]), Some(9));
    assert_eq!(largest::<f64>(&[]), None);
    let rt = runtime();
    assert_eq!(rt.block_on(parse_all::<u8, _>(["1", "2"])), Ok(vec![1, 2]));
    assert!(rt.block_on(parse_all::<u8, _>(["1", "300"])).is_err());
    let c = flush();
    c.expect("largest").count(2);
    c.expect("parse_all").status(Status::Unset).one();
    let failed = c.expect("parse_all").status(Status::Error).one();
    assert_eq!(
        failed.errors[0].message,
        "number too large to fit in target type"
    );
}

// ---- async ----

#[monitor(kind = "server", name = "GET /orders")]
async fn async_handler(n: u32) -> u32 {
    let mut total = 0;
    for i in 0..n {
        // Resumes on any worker thread; the context follows.
        tokio::time::sleep(Duration::from_millis(1)).await;
        total += async_step(i).await;
    }
    // Spawned with the context: still a child.
    let spawned = tokio::spawn(async_step(100).in_current_context());
    total + spawned.await.unwrap()
}

#[monitor(kind = "client")]
async fn async_step(i: u32) -> u32 {
    tokio::task::yield_now().await;
    if i == 100 {
        return 0;
    }
    i
}

#[test]
fn async_functions_keep_the_context_across_awaits_and_parent_their_callees() {
    capture();
    let rt = runtime();
    assert_eq!(rt.block_on(async_handler(3)), 3);
    let c = flush();
    let handler = c.expect("GET /orders").kind(Kind::Server).root().one();
    let steps = c
        .expect("async_step")
        .kind(Kind::Client)
        .child_of(&handler)
        .count(4);
    assert!(
        steps
            .iter()
            .all(|s| s.attribute("rustmon.cancelled").is_none())
    );
    assert!(handler.duration() >= Duration::from_millis(3));
}

#[monitor]
async fn forever() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[monitor]
async fn never_polled() {}

#[test]
fn a_future_dropped_before_completion_is_recorded_as_cancelled() {
    capture();
    let rt = runtime();
    let timed_out =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(5), forever()).await });
    assert!(timed_out.is_err());
    drop(never_polled());
    let c = flush();
    let e = c.expect("forever").one();
    assert_eq!(e.attribute("rustmon.cancelled"), Some(&Value::Bool(true)));
    // It lasts until the drop: the 5 ms timer was set just before the first poll, and tokio's
    // timer has millisecond resolution.
    assert!(
        e.duration() >= Duration::from_millis(4),
        "{:?}",
        e.duration()
    );
    // The event starts at the first poll: a future never polled records nothing.
    c.expect("never_polled").none();
}

#[monitor]
async fn async_parent() -> Option<context::SpanContext> {
    let before = context::current();
    tokio::task::yield_now().await;
    assert_eq!(context::current(), before);
    sync_in_async();
    before
}

#[monitor]
fn sync_in_async() {}

#[test]
fn an_async_function_is_a_child_of_the_context_current_when_first_polled() {
    capture();
    let rt = runtime();
    let request = Monitor::start_event(rustmon_core::global().unwrap(), Kind::Server, "request");
    let ctx = request.context();
    let inner = rt.block_on(async_parent().with_context(ctx)).unwrap();
    request.finish();
    let c = flush();
    let request = c.expect("request").one();
    let parent = c.expect("async_parent").child_of(&request).one();
    assert_eq!(parent.span_id, inner.span_id);
    c.expect("sync_in_async").child_of(&parent).one();
}

mod alias {
    pub(crate) use rustmon_core as core;
}

#[monitor(crate = "crate::alias::core")]
fn via_alias() {}

#[test]
fn the_crate_path_can_be_overridden() {
    capture();
    via_alias();
    flush().expect("via_alias").one();
}

// ---- bodies and return types that must expand without warnings or type errors ----

trait Shape {
    fn area(&self) -> f64;
}

struct Square;

impl Shape for Square {
    fn area(&self) -> f64 {
        1.0
    }
}

#[monitor]
fn identity(n: u64) -> u64 {
    n
}

#[monitor]
fn coerced() -> Option<Box<dyn Shape>> {
    Some(Box::new(Square))
}

#[monitor]
fn opaque_shape() -> impl Shape {
    Square
}

#[monitor]
fn diverges() -> ! {
    panic!("never returns")
}

#[monitor]
fn inner_attributes() -> u8 {
    #![allow(unused_variables)]
    let unused = 1;
    2
}

#[monitor(err)]
async fn inner_attributes_async() -> Result<u8, String> {
    #![allow(unused_variables)]
    let unused = 1;
    Ok(2)
}

#[test]
fn return_types_keep_their_coercions() {
    assert_eq!(inner_attributes(), 2);
    assert_eq!(runtime().block_on(inner_attributes_async()), Ok(2));
    capture();
    assert_eq!(identity(4), 4);
    assert_eq!(coerced().map(|s| s.area()), Some(1.0));
    assert_eq!(opaque_shape().area(), 1.0);
    assert!(std::panic::catch_unwind(|| diverges()).is_err());
    let c = flush();
    for name in ["identity", "coerced", "opaque_shape"] {
        c.expect(name).status(Status::Unset).one();
    }
    c.expect("diverges").status(Status::Error).one();
}
