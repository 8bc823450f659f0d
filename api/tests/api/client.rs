//! A client generated from `/openapi.json` the way a partner would generate one
//! (`openapi-python-client` from PyPI, pinned in `scripts/install-tools.sh`), used against the
//! running API: it creates an order, submits a receipt image and reads the payment, through the
//! generated, typed functions and models only.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::channels::admin_get;
use crate::helpers::ADMIN_TOKEN;
use crate::payments::{app, receipt};

fn tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/openapi-python-client/bin")
        .join(name);
    assert!(path.exists(), "run scripts/install-tools.sh (make tools)");
    path
}

/// The partner's program, written against the generated package.
const PROGRAM: &str = r#"
import json, sys, time
from z_engine_api_client import AuthenticatedClient
from z_engine_api_client.api.orders import post_v1_orders
from z_engine_api_client.api.payments import post_v1_orders_id_payments, get_v1_payments_id
from z_engine_api_client.models import (
    CreateOrderRequest, CreateOrderRequestType, CustomerRef, ItemRequest, Order, Payment,
    PostV1OrdersIdPaymentsBody,
)
from z_engine_api_client.types import File

base, token, image = sys.argv[1], sys.argv[2], sys.argv[3]
client = AuthenticatedClient(base_url=base, token=token, headers={"x-tenant-id": "demo"},
                             raise_on_unexpected_status=True)
order = post_v1_orders.sync(client=client, body=CreateOrderRequest(
    client_order_key="generated-client-1",
    customer=CustomerRef(phone="+51 999 000 111"),
    type_=CreateOrderRequestType.PICKUP,
    items=[ItemRequest(name="Pedido", quantity=1, unit_price="439.00")],
))
assert isinstance(order, Order), order
with open(image, "rb") as f:
    payment = post_v1_orders_id_payments.sync(order.order_id, client=client,
        body=PostV1OrdersIdPaymentsBody(image=File(payload=f, file_name="receipt.png", mime_type="image/png")))
assert isinstance(payment, Payment), payment
for _ in range(300):
    read = get_v1_payments_id.sync(payment.payment_id, client=client)
    assert isinstance(read, Payment), read
    if read.status != "PENDING":
        break
    time.sleep(0.1)
print(json.dumps({"order_id": order.order_id, "order_total": str(order.to_dict().get("total")),
                  "payment_id": read.payment_id, "status": read.status,
                  "amount": str(read.to_dict().get("amount"))}))
"#;

#[tokio::test]
async fn a_client_generated_from_the_openapi_document_creates_an_order_pays_and_reads_the_payment()
{
    let app = app().await;
    let spec = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), &spec).unwrap();
    let generated = Command::new(tool("openapi-python-client"))
        .args(["generate", "--path", "openapi.json", "--meta", "none"])
        .args(["--output-path", "client"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(generated.status.success(), "{report}");
    // Every schema and operation of the document is usable: the generator dropped nothing,
    // except one answer it cannot type: the stored receipt image comes back as the image it is
    // (`image/*`, so browsers show it), and this generator only types binary answers declared
    // `application/octet-stream` (it also refuses `image/png` and lists of image types). The
    // operation is still generated, returning the raw response.
    assert!(!report.contains("Unable to process schema"), "{report}");
    let warnings: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("WARNING parsing"))
        .collect();
    assert_eq!(
        warnings,
        ["WARNING parsing GET /v1/payments/{id}/receipt within payments."],
        "{report}"
    );
    std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
    std::fs::rename(
        dir.path().join("client"),
        dir.path().join("pkg/z_engine_api_client"),
    )
    .unwrap();
    let image = dir.path().join("receipt.png");
    std::fs::write(&image, receipt("r03_yape-card_clean.png")).unwrap();
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        let base = app.address.clone();
        move || {
            Command::new(tool("python"))
                .args(["-c", PROGRAM, &base, ADMIN_TOKEN, image.to_str().unwrap()])
                .env("PYTHONPATH", dir.join("pkg"))
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["status"], "ASSIGNED", "{result}");
    // What the generated client read is what the API holds.
    let path = format!("/v1/payments/{}", result["payment_id"].as_str().unwrap());
    let stored: Value = admin_get(&app, "demo", &path).await.json().await.unwrap();
    assert_eq!(stored["order_id"], result["order_id"], "{stored}");
    assert_eq!(stored["status"], "ASSIGNED");
    app.shutdown().await;
}
