//! The demo's SQLite databases: schema, seed data, and monitored statements.

use std::path::Path;

use rustmon_core::Monitor;
use rustmon_sqlx::MonitoredPool;
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// A pool whose every statement is recorded by `rustmon-sqlx`, as a child of the request.
pub(crate) type Db = MonitoredPool<Sqlite>;

async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
}

const PRODUCTS: &[(&str, i64)] = &[
    ("espresso beans", 1290),
    ("french press", 3450),
    ("burr grinder", 8900),
    ("milk frother", 2450),
    ("pour-over kettle", 5600),
    ("ceramic dripper", 1890),
    ("paper filters", 490),
    ("travel mug", 1990),
    ("digital scale", 2990),
    ("tamper", 1590),
    ("knock box", 2190),
    ("cold brew jar", 2790),
];

/// The shop's database: products, orders and their lines.
pub(crate) async fn shop(path: &Path, monitor: Monitor) -> Result<Db, sqlx::Error> {
    let pool = open(path).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, created_at INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS order_lines (order_id INTEGER NOT NULL, product_id INTEGER NOT NULL, quantity INTEGER NOT NULL);",
    )
    .execute(&pool)
    .await?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM products")
        .fetch_one(&pool)
        .await?;
    if count == 0 {
        for (name, price) in PRODUCTS {
            sqlx::query("INSERT INTO products (name, price_cents) VALUES (?, ?)")
                .bind(name)
                .bind(price)
                .execute(&pool)
                .await?;
        }
        for order in 1..=50_i64 {
            sqlx::query("INSERT INTO orders (id, customer, created_at) VALUES (?, ?, 0)")
                .bind(order)
                .bind(format!("customer-{}", order % 7))
                .execute(&pool)
                .await?;
            for line in 0..6_i64 {
                sqlx::query(
                    "INSERT INTO order_lines (order_id, product_id, quantity) VALUES (?, ?, ?)",
                )
                .bind(order)
                .bind((order + line) % PRODUCTS.len() as i64 + 1)
                .bind(line % 3 + 1)
                .execute(&pool)
                .await?;
            }
        }
    }
    Ok(MonitoredPool::new(pool).monitor(monitor))
}

/// The inventory's database: stock per product.
pub(crate) async fn inventory(path: &Path, monitor: Monitor) -> Result<Db, sqlx::Error> {
    let pool = open(path).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS stock (product_id INTEGER PRIMARY KEY, quantity INTEGER NOT NULL);",
    )
    .execute(&pool)
    .await?;
    for id in 1..=PRODUCTS.len() as i64 {
        sqlx::query("INSERT OR IGNORE INTO stock (product_id, quantity) VALUES (?, ?)")
            .bind(id)
            .bind(id * 7 % 40)
            .execute(&pool)
            .await?;
    }
    Ok(MonitoredPool::new(pool).monitor(monitor))
}
