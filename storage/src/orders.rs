//! Customers, orders and their items.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use zengine_domain::money::Cents;
use zengine_domain::order::{OrderLine, OrderStatus, OrderType};
use zengine_domain::{Location, TenantId};

use super::{Database, now_millis};

/// An order to create.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub tenant_id: &'a TenantId,
    pub client_key: &'a str,
    pub request_hash: &'a str,
    pub customer_phone: &'a str,
    pub customer_name: Option<&'a str>,
    /// The customer's contact preferences (`{"email", "language", "channel"}`), a JSON object;
    /// `None` keeps what is stored.
    pub customer_metadata: Option<&'a serde_json::Value>,
    pub order_type: OrderType,
    pub lines: &'a [OrderLine],
    pub total: Cents,
    pub currency: &'a str,
    pub address: Option<&'a str>,
    pub location: Option<Location>,
    pub delivery_window: Option<DeliveryWindow>,
    /// Minutes spent at the stop (route optimisation); `None`: the plan's default.
    pub service_minutes: Option<i64>,
    pub summary: &'a str,
}

/// When a delivery may arrive, in epoch seconds (`end >= start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryWindow {
    pub start: i64,
    pub end: i64,
}

/// A stored order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub order_number: i64,
    pub client_key: String,
    pub customer_phone: String,
    pub customer_name: Option<String>,
    pub status: OrderStatus,
    pub order_type: OrderType,
    pub total: Cents,
    pub currency: String,
    pub address: Option<String>,
    pub location: Option<Location>,
    #[serde(default)]
    pub delivery_window: Option<DeliveryWindow>,
    #[serde(default)]
    pub service_minutes: Option<i64>,
    pub summary: String,
    pub items: Vec<OrderLine>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An order's customer, as notifications need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderContact {
    pub order_number: i64,
    pub phone: String,
    pub name: Option<String>,
    /// `{"email", "language", "channel"}` when the customer gave them.
    pub metadata: serde_json::Value,
}

/// Why an order was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrderError {
    #[error("the client key was already used for a different order")]
    KeyReused,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Filters of [`OrderRepo::list`].
#[derive(Debug, Clone, Default)]
pub struct OrderFilter<'a> {
    pub customer_phone: Option<&'a str>,
    pub status: Option<OrderStatus>,
    /// Only orders with a smaller number (keyset pagination, newest first).
    pub before_number: Option<i64>,
    pub limit: i64,
}

/// Order queries.
pub struct OrderRepo<'a> {
    pub(super) db: &'a Database,
}

const ORDER_COLUMNS: &str = "o.order_id, o.order_number, o.client_key, c.phone, c.name, o.status, \
     o.order_type, o.total_cents, o.currency, o.address, o.lat, o.lon, o.summary, o.created_at, \
     o.updated_at, o.request_hash, o.window_start, o.window_end, o.service_minutes";

impl OrderRepo<'_> {
    /// Creates the order, or returns the one created earlier with the same client key (then
    /// `false`). A reused key with a different request is refused.
    pub async fn create(&self, new: NewOrder<'_>) -> Result<(Order, bool), CreateOrderError> {
        for _ in 0..5 {
            if let Some((order, hash)) = self.by_client_key(new.tenant_id, new.client_key).await? {
                return if hash == new.request_hash {
                    Ok((order, false))
                } else {
                    Err(CreateOrderError::KeyReused)
                };
            }
            match self.insert(&new).await {
                Ok(order) => return Ok((order, true)),
                // A concurrent insert took the key or the number: look again.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(CreateOrderError::Other(e)),
            }
        }
        Err(CreateOrderError::Other(anyhow::anyhow!(
            "could not allocate an order number after 5 attempts"
        )))
    }

    async fn insert(&self, new: &NewOrder<'_>) -> anyhow::Result<Order> {
        let now = now_millis();
        let mut tx = self.db.begin_for(new.tenant_id).await?;
        let customer_id = format!("cus_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "insert into customer (tenant_id, customer_id, phone, name, metadata, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $6) on conflict (tenant_id, phone)
             do update set metadata = excluded.metadata, updated_at = excluded.updated_at
             where $7",
        )
        .bind(new.tenant_id.as_str())
        .bind(&customer_id)
        .bind(new.customer_phone)
        .bind(new.customer_name)
        .bind(
            new.customer_metadata
                .map_or_else(|| "{}".to_owned(), |m| m.to_string()),
        )
        .bind(now)
        .bind(new.customer_metadata.is_some())
        .execute(&mut *tx)
        .await?;
        let customer_id: String = sqlx::query_scalar(
            "select customer_id from customer where tenant_id = $1 and phone = $2",
        )
        .bind(new.tenant_id.as_str())
        .bind(new.customer_phone)
        .fetch_one(&mut *tx)
        .await?;
        // The next number is max + 1: one allocation at a time per tenant (READ COMMITTED let
        // concurrent creates read the same max, and a batch gave up after 5 retries).
        self.db
            .serialise(&mut tx, &format!("{}/order_number", new.tenant_id))
            .await?;
        let number: i64 = sqlx::query_scalar::<_, Option<i64>>(
            "select max(order_number) from sales_order where tenant_id = $1",
        )
        .bind(new.tenant_id.as_str())
        .fetch_one(&mut *tx)
        .await?
        .unwrap_or(1000)
            + 1;
        let order_id = format!("ord_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "insert into sales_order (tenant_id, order_id, order_number, client_key, request_hash,
               customer_id, status, order_type, total_cents, currency, address, lat, lon, summary,
               created_at, updated_at, window_start, window_end, service_minutes)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16,
               $17, $18)",
        )
        .bind(new.tenant_id.as_str())
        .bind(&order_id)
        .bind(number)
        .bind(new.client_key)
        .bind(new.request_hash)
        .bind(&customer_id)
        .bind(OrderStatus::Pending.as_str())
        .bind(new.order_type.as_str())
        .bind(new.total.0)
        .bind(new.currency)
        .bind(new.address)
        .bind(new.location.map(|l| l.lat))
        .bind(new.location.map(|l| l.lon))
        .bind(new.summary)
        .bind(now)
        .bind(new.delivery_window.map(|w| w.start))
        .bind(new.delivery_window.map(|w| w.end))
        .bind(new.service_minutes)
        .execute(&mut *tx)
        .await?;
        for (i, line) in new.lines.iter().enumerate() {
            sqlx::query(
                "insert into order_item (tenant_id, order_id, line_no, sku, name, quantity,
                   unit_price_cents, line_total_cents) values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new.tenant_id.as_str())
            .bind(&order_id)
            .bind(i as i64 + 1)
            .bind(line.sku.as_deref())
            .bind(&line.name)
            .bind(line.quantity)
            .bind(line.unit_price.0)
            .bind(line.line_total.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get(new.tenant_id, &order_id)
            .await?
            .context("order vanished after insert")
    }

    async fn by_client_key(
        &self,
        tenant_id: &TenantId,
        key: &str,
    ) -> anyhow::Result<Option<(Order, String)>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query(&format!(
            "select {ORDER_COLUMNS} from sales_order o join customer c
               on c.tenant_id = o.tenant_id and c.customer_id = o.customer_id
             where o.tenant_id = $1 and o.client_key = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let found = match row {
            Some(row) => {
                let hash: String = row.get(15);
                let order = hydrate(&mut tx, tenant_id, row).await?;
                Some((order, hash))
            }
            None => None,
        };
        tx.commit().await?;
        Ok(found)
    }

    /// The order, or `None`.
    pub async fn get(&self, tenant_id: &TenantId, order_id: &str) -> anyhow::Result<Option<Order>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row = sqlx::query(&format!(
            "select {ORDER_COLUMNS} from sales_order o join customer c
               on c.tenant_id = o.tenant_id and c.customer_id = o.customer_id
             where o.tenant_id = $1 and o.order_id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read order")?;
        let order = match row {
            Some(row) => Some(hydrate(&mut tx, tenant_id, row).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(order)
    }

    /// Who to tell about an order: its number, the customer's phone, name and metadata.
    pub async fn contact(
        &self,
        tenant_id: &TenantId,
        order_id: &str,
    ) -> anyhow::Result<Option<OrderContact>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let row: Option<(i64, String, Option<String>, String)> = sqlx::query_as(
            "select o.order_number, c.phone, c.name, c.metadata from sales_order o join customer c
               on c.tenant_id = o.tenant_id and c.customer_id = o.customer_id
             where o.tenant_id = $1 and o.order_id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to read the order's customer")?;
        tx.commit().await?;
        Ok(
            row.map(|(order_number, phone, name, metadata)| OrderContact {
                order_number,
                phone,
                name,
                metadata: serde_json::from_str(&metadata).unwrap_or_default(),
            }),
        )
    }

    /// Orders matching `filter`, newest first.
    pub async fn list(
        &self,
        tenant_id: &TenantId,
        filter: OrderFilter<'_>,
    ) -> anyhow::Result<Vec<Order>> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let rows = sqlx::query(&format!(
            "select {ORDER_COLUMNS} from sales_order o join customer c
               on c.tenant_id = o.tenant_id and c.customer_id = o.customer_id
             where o.tenant_id = $1
               and ($2 = '' or c.phone = $2)
               and ($3 = '' or o.status = $3)
               and o.order_number < $4
             order by o.order_number desc limit $5"
        ))
        .bind(tenant_id.as_str())
        .bind(filter.customer_phone.unwrap_or(""))
        .bind(filter.status.map(|s| s.as_str()).unwrap_or(""))
        .bind(filter.before_number.unwrap_or(i64::MAX))
        .bind(filter.limit)
        .fetch_all(&mut *tx)
        .await
        .context("Failed to list orders")?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(hydrate(&mut tx, tenant_id, row).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Moves the order from `from` to `to`; returns `false` when it was not in `from`
    /// (someone else moved it: compare-and-set, safe under activity retries).
    pub async fn set_status(
        &self,
        tenant_id: &TenantId,
        order_id: &str,
        from: OrderStatus,
        to: OrderStatus,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_for(tenant_id).await?;
        let done = sqlx::query(
            "update sales_order set status = $1, updated_at = $2
             where tenant_id = $3 and order_id = $4 and status = $5",
        )
        .bind(to.as_str())
        .bind(now_millis())
        .bind(tenant_id.as_str())
        .bind(order_id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await
        .context("Failed to update order status")?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Builds an [`Order`] from its row and its items (read on the same, tenant-scoped connection).
async fn hydrate(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    row: sqlx::any::AnyRow,
) -> anyhow::Result<Order> {
    {
        let order_id: String = row.get(0);
        let status: String = row.get(5);
        let order_type: String = row.get(6);
        let lat: Option<f64> = row.get(10);
        let lon: Option<f64> = row.get(11);
        let window_start: Option<i64> = row.get(16);
        let window_end: Option<i64> = row.get(17);
        let items = sqlx::query(
            "select sku, name, quantity, unit_price_cents, line_total_cents from order_item
             where tenant_id = $1 and order_id = $2 order by line_no",
        )
        .bind(tenant_id.as_str())
        .bind(&order_id)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| OrderLine {
            sku: r.get(0),
            name: r.get(1),
            quantity: r.get(2),
            unit_price: Cents(r.get(3)),
            line_total: Cents(r.get(4)),
        })
        .collect();
        Ok(Order {
            order_id,
            order_number: row.get(1),
            client_key: row.get(2),
            customer_phone: row.get(3),
            customer_name: row.get(4),
            status: status.parse().map_err(anyhow::Error::msg)?,
            order_type: order_type.parse().map_err(anyhow::Error::msg)?,
            total: Cents(row.get(7)),
            currency: row.get(8),
            address: row.get(9),
            location: lat.zip(lon).map(|(lat, lon)| Location { lat, lon }),
            delivery_window: window_start
                .zip(window_end)
                .map(|(start, end)| DeliveryWindow { start, end }),
            service_minutes: row.get(18),
            summary: row.get(12),
            items,
            created_at: row.get(13),
            updated_at: row.get(14),
        })
    }
}

/// Whether the error chain holds a unique-constraint violation (either backend).
fn is_unique_violation(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .is_some_and(|d| d.is_unique_violation())
    })
}
