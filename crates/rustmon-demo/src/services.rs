//! The two demo services.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustmon_core::{Kind, Monitor};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Db;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

#[derive(Clone)]
struct Shop {
    db: Db,
    monitor: Monitor,
    inventory: SocketAddr,
    client: HttpClient,
}

type Reply = Result<axum::Json<Value>, (StatusCode, String)>;

fn internal(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The shop API.
pub(crate) fn shop(db: Db, monitor: Monitor, inventory: SocketAddr) -> Router {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let state = Shop {
        db,
        monitor: monitor.clone(),
        inventory,
        client,
    };
    Router::new()
        .route("/products", get(list_products))
        .route("/products/{id}", get(product))
        .route("/orders/{id}", get(order))
        .route("/checkout", post(checkout))
        .route("/recommendations", get(recommendations))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
        .layer(rustmon_tower::axum::layer().with_monitor(monitor))
}

async fn list_products(State(s): State<Shop>) -> Reply {
    let rows: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, name, price_cents FROM products ORDER BY name LIMIT ?")
            .bind(20)
            .fetch_all(&s.db)
            .await
            .map_err(internal)?;
    Ok(axum::Json(json!(rows)))
}

async fn product(State(s): State<Shop>, Path(id): Path<i64>) -> Reply {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT name, price_cents FROM products WHERE id = ?")
            .bind(id)
            .fetch_optional(&s.db)
            .await
            .map_err(internal)?;
    let Some((name, price)) = row else {
        return Err((StatusCode::NOT_FOUND, format!("no product {id}")));
    };
    let stock = stock(&s, id).await.map_err(internal)?;
    Ok(axum::Json(
        json!({ "id": id, "name": name, "price_cents": price, "stock": stock }),
    ))
}

/// Calls the inventory service: an outgoing HTTP call that carries the trace.
async fn stock(s: &Shop, id: i64) -> Result<Value, String> {
    let url = format!("http://{}/stock/{id}", s.inventory);
    let mut call = s
        .monitor
        .start_event(Kind::Client, "GET inventory")
        .with_plugin("http_client");
    call.set("http.request.method", "GET")
        .set("url.full", url.clone())
        .set("server.address", s.inventory.ip().to_string())
        .set("server.port", i64::from(s.inventory.port()));
    let mut request = hyper::Request::get(&url);
    if let Some(ctx) = call.context() {
        request = request.header("traceparent", ctx.traceparent());
    }
    let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
    let result = async {
        let response = s.client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    }
    .await;
    match result {
        Ok((status, body)) => {
            call.set("http.response.status_code", i64::from(status.as_u16()))
                .set("http.response.body.size", body.len() as i64);
            if status.is_server_error() {
                call.record_error("http", format!("inventory answered {status}"));
            }
            call.finish();
            serde_json::from_slice(&body).map_err(|e| e.to_string())
        }
        Err(e) => {
            call.record_error("connect", &e);
            call.finish();
            Err(e)
        }
    }
}

/// An N+1 pattern on purpose: one statement for the order, then one per line.
async fn order(State(s): State<Shop>, Path(id): Path<i64>) -> Reply {
    let lines: Vec<(i64, i64)> =
        sqlx::query_as("SELECT product_id, quantity FROM order_lines WHERE order_id = ?")
            .bind(id)
            .fetch_all(&s.db)
            .await
            .map_err(internal)?;
    let mut items = Vec::new();
    for (product, quantity) in lines {
        let name: Option<(String,)> = sqlx::query_as("SELECT name FROM products WHERE id = ?")
            .bind(product)
            .fetch_optional(&s.db)
            .await
            .map_err(internal)?;
        items.push(json!({ "product": name.map(|n| n.0), "quantity": quantity }));
    }
    Ok(axum::Json(json!({ "order": id, "items": items })))
}

/// The slow route: a payment provider that takes its time, then a transaction.
async fn checkout(State(s): State<Shop>) -> Reply {
    let pause = 150 + crate::load::random_below(300);
    {
        let payment = s
            .monitor
            .start_event(Kind::Client, "POST payments")
            .with_plugin("http_client");
        tokio::time::sleep(Duration::from_millis(pause)).await;
        payment.finish();
    }
    let order = sqlx::query("INSERT INTO orders (customer, created_at) VALUES (?, ?)")
        .bind("walk-in")
        .bind(0_i64)
        .execute(&s.db)
        .await
        .map_err(internal)?;
    Ok(axum::Json(json!({ "order": order.last_insert_rowid() })))
}

/// Fails about one time in six.
async fn recommendations(State(s): State<Shop>) -> Reply {
    if crate::load::random_below(6) == 0 {
        let _: Vec<(i64,)> = sqlx::query_as("SELECT score FROM recommendations WHERE customer = ?")
            .bind("walk-in")
            .fetch_all(&s.db)
            .await
            .map_err(internal)?;
    }
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM products ORDER BY price_cents DESC LIMIT ?")
            .bind(3)
            .fetch_all(&s.db)
            .await
            .map_err(internal)?;
    Ok(axum::Json(json!(rows)))
}

#[derive(Clone)]
struct Inventory {
    db: Db,
}

/// The inventory service.
pub(crate) fn inventory(db: Db, monitor: Monitor) -> Router {
    Router::new()
        .route("/stock/{id}", get(stock_level))
        .with_state(Inventory { db })
        .layer(rustmon_tower::axum::layer().with_monitor(monitor))
}

async fn stock_level(State(s): State<Inventory>, Path(id): Path<i64>) -> Reply {
    if crate::load::random_below(20) == 0 {
        // Now and then the warehouse system is slow.
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let row: Option<(i64,)> = sqlx::query_as("SELECT quantity FROM stock WHERE product_id = ?")
        .bind(id)
        .fetch_optional(&s.db)
        .await
        .map_err(internal)?;
    Ok(axum::Json(
        json!({ "product": id, "quantity": row.map(|r| r.0) }),
    ))
}

/// Serves `app` on a free port of 127.0.0.1 until `stop` turns true.
pub(crate) async fn serve(
    app: Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok((addr, task))
}
