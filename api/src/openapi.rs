//! The route table of the HTTP API ([`operations`]): the router ([`routes`]) and the OpenAPI 3.1
//! document served at `GET /openapi.json` are both built from it, with the JSON Schemas of the
//! request types derived with `schemars` from the very structs the handlers deserialize.
//!
//! **Adding an endpoint**: one [`op`] in [`operations`]: method, path, summary, its handler
//! (`.handle(module::function)`), then who may call it, its body type and its status codes.
//! There is no second list to keep in step: a method + path is routed exactly when it is
//! documented (unless marked `.hidden()`), and listing one twice panics when the router is
//! built. `docs/openapi.json` is regenerated with `ZENGINE_UPDATE_OPENAPI=1 cargo test -p
//! zengine-api --lib openapi`. For a JSON body, derive `schemars::JsonSchema` next to
//! `Deserialize` on the handler's body struct and pass it with `.json::<T>()`; a query struct
//! with `.query::<T>()`.

mod responses;

use std::convert::Infallible;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::{ApiSettings, AppState};

/// Who may call an operation; becomes its `security` requirement and its 401/403/429 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No credential (health, metrics, this document).
    Public,
    /// An authenticated caller: a JWT or the admin token with `x-tenant-id`; API keys (bearer or
    /// `x-api-key`) on the partner endpoints only (orders, payments, tracking, routes).
    Caller,
    /// The admin role on the tenant of the path (admin token, or a JWT with the admin role).
    Admin,
    /// The public webchat widget: names its tenant in `x-tenant-id`, no credential.
    Webchat,
    /// A channel provider's webhook: authenticated per provider (signature, basic auth, SNS
    /// certificate, IP allowlist), see `docs/channels.md`.
    Webhook,
}

/// The body an operation takes.
#[derive(Clone, Copy)]
pub enum Body {
    None,
    /// JSON whose schema is derived from the handler's type.
    Json(fn(&mut SchemaGenerator) -> Schema),
    /// JSON checked by the domain (flows, orders, routes, assistance events…): any object here;
    /// the field rules are in `docs/api.md` and every violation is a 4xx.
    JsonObject,
    /// `multipart/form-data` with the named file field.
    Multipart(&'static str),
    /// Whatever the provider posts (JSON, form or SNS text), verified before it is parsed.
    Raw,
}

/// The schema of an operation's JSON success body.
#[derive(Clone, Copy)]
pub enum Returns {
    /// Hand-written in [`responses`] (bodies built with `json!`).
    Named(&'static str),
    /// Derived from the handler's response type.
    Derived(fn(&mut SchemaGenerator) -> Schema),
}

/// One method + path of the router, as documented.
#[derive(Clone)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub auth: Auth,
    pub body: Body,
    pub query: Option<fn(&mut SchemaGenerator) -> Schema>,
    /// Extra request headers: name, required, description.
    pub headers: Vec<(&'static str, bool, &'static str)>,
    /// Success statuses with their content type (`None`: no body).
    pub success: Vec<(u16, Option<&'static str>)>,
    /// Error statuses this handler answers itself (auth and body-size errors are added).
    pub errors: Vec<u16>,
    /// The schema of the JSON success bodies; any JSON when `None`.
    pub returns: Option<Returns>,
    /// The handler this method + path is routed to ([`Operation::handle`]).
    pub handler: Option<MethodRouter<AppState>>,
    /// Layers of this route that depend on the deployment's settings (a larger body limit, the
    /// codec's CORS grant).
    pub wrap: Option<Wrap>,
    /// Routed but left out of the document (the webchat widget's CORS preflight).
    pub hidden: bool,
    /// OpenAPI links from this operation's success answers to the operations a client calls
    /// next with what it got (schemathesis' stateful phase follows them).
    pub links: Vec<Link>,
}

/// Adds a route's settings-dependent layers ([`Operation::wrap`]).
pub type Wrap = fn(&ApiSettings, MethodRouter<AppState>) -> MethodRouter<AppState>;

/// An OpenAPI link: the next operation (method + path) and where each of its parameters comes
/// from (`$response.body#/order_id`, `$request.path.tenant`).
#[derive(Clone, Copy)]
pub struct Link {
    pub name: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub parameters: &'static [(&'static str, &'static str)],
}

/// Starts an operation: JSON 200, no body, public.
pub fn op(method: &'static str, path: &'static str, summary: &'static str) -> Operation {
    Operation {
        method,
        path,
        summary,
        tag: path.split('/').nth(2).unwrap_or("service"),
        auth: Auth::Public,
        body: Body::None,
        query: None,
        headers: Vec::new(),
        success: vec![(200, Some("application/json"))],
        errors: Vec::new(),
        returns: None,
        handler: None,
        wrap: None,
        hidden: false,
        links: Vec::new(),
    }
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

impl Operation {
    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    pub fn caller(self) -> Self {
        self.auth(Auth::Caller)
    }
    pub fn json<T: JsonSchema>(mut self) -> Self {
        self.body = Body::Json(schema_of::<T>);
        self
    }
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
    pub fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(schema_of::<T>);
        self
    }
    pub fn header(mut self, name: &'static str, required: bool, about: &'static str) -> Self {
        self.headers.push((name, required, about));
        self
    }
    /// Replaces the success statuses (JSON bodies).
    pub fn ok(mut self, statuses: &[u16]) -> Self {
        self.success = statuses
            .iter()
            .map(|s| (*s, (*s != 204).then_some("application/json")))
            .collect();
        self
    }
    pub fn ok_as(mut self, status: u16, content_type: &'static str) -> Self {
        self.success = vec![(status, Some(content_type))];
        self
    }
    /// The JSON success body is the named schema of [`responses`].
    pub fn returns(mut self, name: &'static str) -> Self {
        self.returns = Some(Returns::Named(name));
        self
    }
    /// The JSON success body is `T` (its derived schema).
    pub fn returns_type<T: JsonSchema>(mut self) -> Self {
        self.returns = Some(Returns::Derived(schema_of::<T>));
        self
    }
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors.extend_from_slice(statuses);
        self
    }
    /// Routes this method + path to `handler`.
    pub fn handle<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let method = match self.method {
            "get" => MethodFilter::GET,
            "post" => MethodFilter::POST,
            "put" => MethodFilter::PUT,
            "patch" => MethodFilter::PATCH,
            "delete" => MethodFilter::DELETE,
            "options" => MethodFilter::OPTIONS,
            other => panic!("no method filter for `{other}`"),
        };
        self.handler = Some(axum::routing::on(method, handler));
        self
    }
    /// Adds layers built from the settings to this route only.
    pub fn wrap(mut self, wrap: Wrap) -> Self {
        self.wrap = Some(wrap);
        self
    }
    /// Links the success answers to the operation `method path`, its parameters taken from
    /// runtime expressions.
    pub fn link(
        mut self,
        name: &'static str,
        method: &'static str,
        path: &'static str,
        parameters: &'static [(&'static str, &'static str)],
    ) -> Self {
        self.links.push(Link {
            name,
            method,
            path,
            parameters,
        });
        self
    }
    /// Routed, not documented.
    pub fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }
}

/// The router of every operation: one route per path, its methods merged.
///
/// # Panics
/// When an operation has no handler or a method + path is listed twice (a programming error
/// every test that starts the API finds).
pub fn routes(settings: &ApiSettings) -> Router<AppState> {
    let mut paths: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for o in operations() {
        let handler = o
            .handler
            .unwrap_or_else(|| panic!("{} {} has no handler", o.method, o.path));
        let handler = match o.wrap {
            Some(wrap) => wrap(settings, handler),
            None => handler,
        };
        match paths.iter_mut().find(|(path, _)| *path == o.path) {
            // `merge` panics on a method routed twice.
            Some((_, routed)) => *routed = std::mem::take(routed).merge(handler),
            None => paths.push((o.path, handler)),
        }
    }
    paths
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
}

/// Chatwoot's webhook: the webhook limit, not the API's.
fn webhook_limit(_: &ApiSettings, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.layer::<_, Infallible>(DefaultBodyLimit::max(crate::webhooks::MAX_WEBHOOK_BYTES))
}

/// A phone consultation's attachment, with the multipart framing and text fields around it.
fn attachment_limit(
    settings: &ApiSettings,
    route: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    route.layer::<_, Infallible>(DefaultBodyLimit::max(
        settings.attachments.max_bytes + 64 * 1024,
    ))
}

/// A larger body limit for the payment receipt and webchat media uploads.
fn upload_limit(settings: &ApiSettings, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.layer::<_, Infallible>(DefaultBodyLimit::max(settings.max_upload_bytes))
}

const TENANT: &str = "Tenant id (`t-…`).";
const NAMESPACE: &str =
    "the Temporal namespace (the Web UI and CLI send it); when sent, must be the deployment's";

/// Every HTTP endpoint of [`crate::router`]. Keep it in the router's order.
pub fn operations() -> Vec<Operation> {
    use crate::{
        api_keys, assistance, channels, console, management, ops::rest, orders, payments, reports,
        tenants, tracking, webchat, webhooks,
    };
    let webchat_headers = |o: Operation| o.header("x-tenant-id", true, TENANT);
    vec![
        // Webchat (public widget).
        webchat_headers(
            op(
                "post",
                "/v1/webchat/messages",
                "Send a webchat message; answers with the conversation's replies",
            )
            .handle(webchat::post_message)
            .returns("WebchatReply"),
        )
        .auth(Auth::Webchat)
        .header(
            "x-idempotency-key",
            true,
            "Repeats with the same key get the first answer",
        )
        .json::<zengine_domain::channel::webchat::WebchatBody>()
        .errors(&[400, 404, 409, 422, 429, 503, 504]),
        webchat_headers(
            op(
                "get",
                "/v1/webchat/messages",
                "Poll the replies a webchat conversation produced outside a request",
            )
            .handle(webchat::get_messages)
            .returns("WebchatOutbox"),
        )
        .auth(Auth::Webchat)
        .query::<webchat::OutboxQuery>()
        .errors(&[400, 404, 503]),
        op(
            "options",
            "/v1/webchat/messages",
            "CORS preflight of the webchat widget",
        )
        .handle(webchat::preflight)
        .hidden(),
        // Payload codec for the Temporal Web UI (remote codec server protocol).
        op(
            "post",
            "/codec/decode",
            "Decrypt Temporal payloads (Web UI remote codec)",
        )
        .handle(crate::codec::decode)
        .wrap(crate::codec::wrap)
        .auth(Auth::Caller)
        .header("x-namespace", false, NAMESPACE)
        .json::<crate::codec::JsonPayloads>()
        .returns_type::<crate::codec::JsonPayloads>()
        .errors(&[400, 413, 422]),
        op(
            "post",
            "/codec/encode",
            "Encrypt Temporal payloads (Web UI remote codec)",
        )
        .handle(crate::codec::encode)
        .wrap(crate::codec::wrap)
        .auth(Auth::Caller)
        .header("x-namespace", false, NAMESPACE)
        .json::<crate::codec::JsonPayloads>()
        .returns_type::<crate::codec::JsonPayloads>()
        .errors(&[400, 413, 422]),
        // Orders.
        op("post", "/v1/orders", "Create an order")
            .handle(orders::create)
            .link(
                "GetOrder",
                "get",
                "/v1/orders/{id}",
                &[("id", "$response.body#/order_id")],
            )
            .link(
                "SubmitPayment",
                "post",
                "/v1/orders/{id}/payments",
                &[("id", "$response.body#/order_id")],
            )
            .link(
                "ListPayments",
                "get",
                "/v1/orders/{id}/payments",
                &[("id", "$response.body#/order_id")],
            )
            .link(
                "ChangeStatus",
                "post",
                "/v1/orders/{id}/status",
                &[("id", "$response.body#/order_id")],
            )
            .link(
                "TrackingTimeline",
                "get",
                "/v1/tracking",
                &[("order_id", "$response.body#/order_id")],
            )
            .returns("Order")
            .caller()
            .json::<zengine_activities::orders::CreateOrderRequest>()
            .ok(&[200, 201])
            .errors(&[400, 409, 422, 503]),
        op("get", "/v1/orders", "List orders, newest first")
            .handle(orders::list)
            .returns("OrderPage")
            .caller()
            .query::<orders::ListQuery>()
            .errors(&[400]),
        op("get", "/v1/orders/{id}", "An order")
            .handle(orders::get)
            .returns("Order")
            .caller()
            .errors(&[404]),
        op(
            "post",
            "/v1/orders/{id}/status",
            "Move an order to a status",
        )
        .handle(orders::change_status)
        .caller()
        .json::<orders::StatusBody>()
        .errors(&[400, 404, 409, 422, 503]),
        // Payments.
        op(
            "post",
            "/v1/orders/{id}/payments",
            "Upload a payment receipt image (OCR, review)",
        )
        .handle(payments::submit)
        .link(
            "GetPayment",
            "get",
            "/v1/payments/{id}",
            &[("id", "$response.body#/payment_id")],
        )
        .link(
            "ReviewPayment",
            "post",
            "/v1/payments/{id}/review",
            &[("id", "$response.body#/payment_id")],
        )
        .link(
            "GetReceipt",
            "get",
            "/v1/payments/{id}/receipt",
            &[("id", "$response.body#/payment_id")],
        )
        .wrap(upload_limit)
        .returns("Payment")
        .tag("payments")
        .caller()
        .body(Body::Multipart("image"))
        .ok(&[200, 201, 202])
        .errors(&[400, 404, 409, 415, 422, 429, 503]),
        op(
            "get",
            "/v1/orders/{id}/payments",
            "The payments of an order",
        )
        .handle(payments::list_for_order)
        .returns("PaymentList")
        .tag("payments")
        .caller()
        .errors(&[404]),
        op("get", "/v1/payments/{id}", "A payment")
            .handle(payments::get)
            .returns("Payment")
            .caller()
            .errors(&[404]),
        op(
            "get",
            "/v1/payments",
            "Payments in one status, oldest first (the review queue)",
        )
        .handle(payments::list)
        .caller()
        .query::<payments::ListQuery>()
        .errors(&[400]),
        op(
            "get",
            "/v1/payments/{id}/receipt",
            "The receipt image of a payment",
        )
        .handle(payments::receipt)
        .caller()
        .ok_as(200, "image/*")
        .errors(&[404]),
        // Channel webhooks.
        op(
            "get",
            "/v1/webhooks/whatsapp",
            "WhatsApp (Meta) webhook verification handshake",
        )
        .handle(webhooks::whatsapp_handshake)
        .query::<webhooks::Handshake>()
        .ok_as(200, "text/plain")
        .errors(&[400, 403, 503]),
        op(
            "post",
            "/v1/webhooks/whatsapp",
            "WhatsApp Cloud API webhook",
        )
        .handle(webhooks::receive_whatsapp)
        .auth(Auth::Webhook)
        .header(
            "x-hub-signature-256",
            true,
            "`sha256=` HMAC of the body with the app secret",
        )
        .body(Body::Raw)
        .errors(&[400, 401, 403, 404, 422, 503]),
        op(
            "post",
            "/v1/webhooks/{provider}",
            "A channel provider's webhook (tenant from the payload or credential)",
        )
        .handle(webhooks::receive)
        .auth(Auth::Webhook)
        .body(Body::Raw)
        .errors(&[400, 401, 403, 404, 409, 422, 503]),
        // Conversations.
        op(
            "get",
            "/v1/conversations/handoffs",
            "Conversations handed off to a human agent and still waiting",
        )
        .handle(console::handoffs)
        .caller()
        .query::<console::HandoffQuery>()
        .errors(&[400, 403, 503]),
        // Channels.
        op(
            "get",
            "/v1/events",
            "The tenant's channel event stream (cursor-paginated)",
        )
        .handle(channels::events)
        .returns("EventPage")
        .tag("channels")
        .caller()
        .query::<channels::EventsQuery>()
        .errors(&[400]),
        op(
            "get",
            "/v1/channels/dead-letters",
            "Outbound messages that exhausted their retries",
        )
        .handle(channels::dead_letters)
        .returns("DeadLetters")
        .caller(),
        op(
            "post",
            "/v1/channels/dead-letters/{client_message_id}/redrive",
            "Send a dead letter again",
        )
        .handle(channels::redrive)
        .returns("Redrive")
        .caller()
        .ok(&[202])
        .errors(&[404, 409, 503]),
        op(
            "get",
            "/v1/channels/health",
            "Health and circuit state of the tenant's channels",
        )
        .handle(channels::health)
        .returns("ChannelHealth")
        .caller(),
        op(
            "post",
            "/v1/channels/amazon-connect/contacts",
            "Register an Amazon Connect chat contact",
        )
        .handle(channels::register_connect_contact)
        .caller()
        .json::<channels::ConnectContact>()
        .ok(&[201])
        .errors(&[400, 409, 422, 502, 503]),
        op(
            "post",
            "/v1/channels/health/check",
            "Probe the tenant's channels now",
        )
        .handle(channels::check_health)
        .caller()
        .errors(&[502, 503, 504]),
        op(
            "get",
            "/v1/channels/360dialog/templates",
            "The tenant's WhatsApp templates (360dialog)",
        )
        .handle(channels::list_templates)
        .caller()
        .errors(&[404, 422, 502, 503, 504]),
        op(
            "post",
            "/v1/channels/360dialog/templates",
            "Create a WhatsApp template (360dialog)",
        )
        .handle(channels::create_template)
        .caller()
        .body(Body::JsonObject)
        .ok(&[201])
        .errors(&[400, 404, 409, 422, 502, 503, 504]),
        op(
            "delete",
            "/v1/channels/360dialog/templates/{name}",
            "Delete a WhatsApp template (360dialog)",
        )
        .handle(channels::delete_template)
        .caller()
        .ok(&[204])
        .errors(&[404, 422, 502, 503, 504]),
        op(
            "post",
            "/v1/webhooks/{provider}/{tenant}",
            "A channel provider's webhook for a named tenant",
        )
        .handle(webhooks::receive_for_tenant)
        .auth(Auth::Webhook)
        .body(Body::Raw)
        .errors(&[400, 401, 403, 404, 409, 422, 503]),
        op(
            "post",
            "/v1/webhooks/chatwoot/{tenant}",
            "Chatwoot's webhook of a tenant (agent replies, resolved conversations)",
        )
        .handle(crate::chatwoot::webhook)
        .wrap(webhook_limit)
        .auth(Auth::Webhook)
        .body(Body::Raw)
        .errors(&[400, 401, 404, 413, 503]),
        op(
            "post",
            "/v1/webchat/media",
            "Upload an image into a webchat conversation",
        )
        .handle(payments::upload_webchat_media)
        .wrap(upload_limit)
        .auth(Auth::Webchat)
        .header("x-tenant-id", true, TENANT)
        .body(Body::Multipart("image"))
        .ok(&[200, 201, 202])
        .errors(&[400, 404, 409, 415, 422, 503]),
        op(
            "post",
            "/v1/payments/{id}/review",
            "Approve or reject a payment in review",
        )
        .handle(payments::review)
        .caller()
        .json::<payments::ReviewBody>()
        .errors(&[400, 404, 409, 422, 503]),
        // Routes.
        op(
            "post",
            "/v1/routes",
            "Request a delivery route optimisation",
        )
        .handle(crate::routes::create)
        .link(
            "GetRoute",
            "get",
            "/v1/routes/{id}",
            &[("id", "$response.body#/route_id")],
        )
        .returns("RouteAccepted")
        .caller()
        .json::<zengine_activities::routing::RouteRequest>()
        .ok(&[202])
        .errors(&[400, 409, 422, 503]),
        op("get", "/v1/routes/{id}", "A route request and its result")
            .handle(crate::routes::get)
            .returns("Route")
            .caller()
            .errors(&[404]),
        op("get", "/v1/drivers/{id}/routes", "A driver's routes")
            .handle(crate::routes::for_driver)
            .returns("DriverRoutes")
            .tag("routes")
            .caller(),
        // Tracking.
        op("put", "/v1/tracking", "Record a tracking event of an order")
            .handle(tracking::put)
            .caller()
            .json::<tracking::TrackingBody>()
            .ok(&[200, 201])
            .errors(&[400, 404, 409, 422]),
        op("get", "/v1/tracking", "The tracking timeline of an order")
            .handle(tracking::timeline)
            .returns("TrackingTimeline")
            .caller()
            .query::<tracking::TimelineQuery>()
            .errors(&[400, 404]),
        // Management.
        op(
            "put",
            "/v1/tenants/{tenant}/flows/{name}",
            "Validate and publish the next version of a flow",
        )
        .handle(management::publish_flow)
        .returns("FlowPublished")
        .link(
            "GetFlow",
            "get",
            "/v1/tenants/{tenant}/flows/{name}",
            &[
                ("tenant", "$request.path.tenant"),
                ("name", "$request.path.name"),
            ],
        )
        .tag("management")
        .auth(Auth::Admin)
        .query::<management::PublishQuery>()
        .body(Body::JsonObject)
        .ok(&[201])
        .errors(&[400, 404, 422]),
        op(
            "get",
            "/v1/tenants/{tenant}/flows/{name}",
            "The current version of a flow",
        )
        .handle(management::get_flow)
        .tag("management")
        .auth(Auth::Admin)
        .errors(&[400, 404]),
        op(
            "post",
            "/v1/tenants/{tenant}/flows/{name}/validate",
            "Check a draft flow without publishing it; every problem names its node and field",
        )
        .handle(crate::studio::validate_flow)
        .returns_type::<crate::studio::FlowValidation>()
        .tag("management")
        .auth(Auth::Admin)
        .body(Body::JsonObject)
        .errors(&[400, 404]),
        op(
            "post",
            "/v1/tenants/{tenant}/flows/{name}/simulate",
            "Run a draft (or the published flow) on customer inputs, commands stubbed",
        )
        .handle(crate::studio::simulate_flow)
        .returns_type::<zengine_domain::flow::simulate::Transcript>()
        .tag("management")
        .auth(Auth::Admin)
        .json::<crate::studio::SimulateBody>()
        .errors(&[400, 404, 422]),
        op(
            "put",
            "/v1/tenants/{tenant}/flows/{name}/draft",
            "Save the flow's unpublished working copy (as written; answers its validation)",
        )
        .handle(crate::studio::save_draft)
        .returns_type::<crate::studio::DraftSaved>()
        .tag("management")
        .auth(Auth::Admin)
        .body(Body::JsonObject)
        .errors(&[400, 404, 422]),
        op(
            "get",
            "/v1/tenants/{tenant}/flows/{name}/draft",
            "The flow's saved draft",
        )
        .handle(crate::studio::get_draft)
        .tag("management")
        .auth(Auth::Admin)
        .errors(&[404]),
        op(
            "delete",
            "/v1/tenants/{tenant}/flows/{name}/draft",
            "Discard the flow's draft",
        )
        .handle(crate::studio::delete_draft)
        .tag("management")
        .auth(Auth::Admin)
        .ok(&[204])
        .errors(&[404]),
        op(
            "get",
            "/v1/tenants/{tenant}/flows/{name}/versions/{version}",
            "One published version of a flow",
        )
        .handle(crate::studio::version)
        .tag("management")
        .auth(Auth::Admin)
        .errors(&[400, 404]),
        op(
            "get",
            "/v1/tenants/{tenant}/flows/{name}/diff",
            "What one version of a flow changed from another, node by node",
        )
        .handle(crate::studio::diff)
        .returns_type::<crate::studio::FlowDiff>()
        .tag("management")
        .auth(Auth::Admin)
        .query::<crate::studio::DiffQuery>()
        .errors(&[400, 404]),
        op(
            "post",
            "/v1/tenants/{tenant}/flows/{name}/impact",
            "Which recent conversations of a flow a draft would change, and where",
        )
        .handle(crate::studio::impact)
        .returns_type::<crate::studio::Impact>()
        .tag("management")
        .auth(Auth::Admin)
        .json::<crate::studio::ImpactBody>()
        .errors(&[400, 404, 422, 503]),
        op(
            "post",
            "/v1/conversations/{tenant}/{channel}/{contact}/return-to-bot",
            "Hand a conversation back from an agent to the bot",
        )
        .handle(management::return_to_bot)
        .tag("management")
        .auth(Auth::Admin)
        .errors(&[400, 404, 409, 503]),
        // Assistance and MOK.
        op(
            "post",
            "/v1/assistances/events/draft",
            "Create an assistance event draft",
        )
        .handle(assistance::create_draft)
        .link(
            "GetDraft",
            "get",
            "/v1/assistances/events/draft/{id}",
            &[("id", "$response.body#/event_id")],
        )
        .link(
            "UpdateDraft",
            "put",
            "/v1/assistances/events/draft/{id}",
            &[("id", "$response.body#/event_id")],
        )
        .returns("AssistanceEventDraft")
        .caller()
        .json::<zengine_domain::assistance::EventFields>()
        .ok(&[201])
        .errors(&[400, 409, 422, 503]),
        op(
            "get",
            "/v1/assistances/events/draft/{id}",
            "An assistance event draft",
        )
        .handle(assistance::get_draft)
        .returns("AssistanceEventDraft")
        .caller()
        .errors(&[404]),
        op(
            "put",
            "/v1/assistances/events/draft/{id}",
            "Update (or submit) an assistance event draft",
        )
        .handle(assistance::update_draft)
        .returns("AssistanceEventDraft")
        .caller()
        .json::<zengine_domain::assistance::EventFields>()
        .ok(&[200, 201])
        .errors(&[400, 404, 409, 422, 503]),
        op("get", "/v1/assistances/events/{id}", "An assistance event")
            .handle(assistance::get_event)
            .returns("AssistanceEvent")
            .caller()
            .errors(&[404]),
        op(
            "post",
            "/v1/assistances/events/{id}/statuses",
            "Move an assistance event to a status",
        )
        .handle(assistance::change_status)
        .caller()
        .json::<assistance::StatusBody>()
        .errors(&[400, 404, 409, 422, 503]),
        op(
            "post",
            "/v1/assistances/events/{id}/providers",
            "Assign a provider to an assistance event",
        )
        .handle(assistance::assign_provider)
        .caller()
        .json::<assistance::AssignBody>()
        .ok(&[200, 201])
        .errors(&[400, 404, 409, 422, 503]),
        op(
            "post",
            "/v1/assistances/events/{id}/providers/{provider_id}/start",
            "A provider starts its service",
        )
        .handle(assistance::start_provider)
        .caller()
        .errors(&[400, 404, 409, 422, 503]),
        op(
            "post",
            "/v1/assistances/events/{id}/providers/{provider_id}/resolve",
            "A provider resolves its service",
        )
        .handle(assistance::resolve_provider)
        .caller()
        .errors(&[400, 404, 409, 422, 503]),
        op(
            "post",
            "/v1/assistances/notes",
            "Add a note to an assistance event",
        )
        .handle(assistance::add_note)
        .caller()
        .json::<assistance::NoteBody>()
        .ok(&[201])
        .errors(&[400, 404, 409, 422, 503]),
        op(
            "post",
            "/v1/assistances/phone-consultations",
            "Record a phone consultation (multipart, optional attachment)",
        )
        .handle(assistance::add_consultation)
        .wrap(attachment_limit)
        .caller()
        .body(Body::Multipart("attachment"))
        .ok(&[201])
        .errors(&[400, 404, 409, 415, 422, 503]),
        op(
            "get",
            "/v1/assistances/phone-consultations/{id}/attachment",
            "The attachment of a phone consultation",
        )
        .handle(assistance::get_attachment)
        .caller()
        .ok_as(200, "application/octet-stream")
        .errors(&[404, 503]),
        op("get", "/v1/masters/{catalogue}", "A master-data catalogue")
            .handle(assistance::catalogue)
            .returns("Catalogue")
            .tag("assistances")
            .caller()
            .errors(&[404]),
        op("get", "/v1/providers/search", "Search assistance providers")
            .handle(assistance::search_providers)
            .returns("ProviderList")
            .tag("assistances")
            .caller()
            .query::<assistance::SearchQuery>()
            .errors(&[400]),
        op(
            "post",
            "/v1/mok/events",
            "Receive a MOK assistance event (idempotent by event id)",
        )
        .handle(assistance::post_mok_event)
        .caller()
        .json::<zengine_domain::assistance::MokEventRequest>()
        .ok(&[200, 201, 202])
        .errors(&[400, 409, 422, 503]),
        op("get", "/v1/mok/events/{event_id}", "A MOK event's tracking")
            .handle(assistance::get_mok_event)
            .caller()
            .errors(&[404]),
        // API keys.
        op(
            "post",
            "/v1/tenants/{tenant}/api-keys",
            "Create an API key (the secret is shown once)",
        )
        .handle(api_keys::create)
        .returns("ApiKeyCreated")
        .link(
            "RevokeKey",
            "delete",
            "/v1/tenants/{tenant}/api-keys/{id}",
            &[
                ("tenant", "$request.path.tenant"),
                ("id", "$response.body#/key_id"),
            ],
        )
        .tag("api-keys")
        .auth(Auth::Admin)
        .json::<api_keys::CreateBody>()
        .ok(&[201])
        .errors(&[400, 404, 409, 422]),
        op(
            "get",
            "/v1/tenants/{tenant}/api-keys",
            "The tenant's API keys",
        )
        .handle(api_keys::list)
        .returns("ApiKeyList")
        .tag("api-keys")
        .auth(Auth::Admin)
        .errors(&[400, 404]),
        op(
            "delete",
            "/v1/tenants/{tenant}/api-keys/{id}",
            "Revoke an API key",
        )
        .handle(api_keys::revoke)
        .returns("ApiKey")
        .tag("api-keys")
        .auth(Auth::Admin)
        .errors(&[400, 404, 409]),
        // Tenant administration.
        op("post", "/v1/tenants", "Create a tenant (platform admin)")
            .handle(tenants::create)
            .returns("TenantRecord")
            .link(
                "GetTenant",
                "get",
                "/v1/tenants/{tenant}",
                &[("tenant", "$response.body#/tenant_id")],
            )
            .auth(Auth::Admin)
            .json::<tenants::CreateBody>()
            .ok(&[201])
            .errors(&[400, 409, 422, 503]),
        op("get", "/v1/tenants", "List tenants (platform admin)")
            .handle(tenants::list)
            .returns("TenantList")
            .auth(Auth::Admin)
            .query::<tenants::ListQuery>()
            .errors(&[400]),
        op(
            "get",
            "/v1/tenants/{tenant}",
            "A tenant with its channels, flows and settings",
        )
        .handle(tenants::get)
        .auth(Auth::Admin)
        .errors(&[404]),
        op(
            "patch",
            "/v1/tenants/{tenant}",
            "Rename a tenant or change its main flow",
        )
        .handle(tenants::update)
        .auth(Auth::Admin)
        .json::<tenants::UpdateBody>()
        .errors(&[400, 404, 422]),
        op(
            "post",
            "/v1/tenants/{tenant}/suspend",
            "Suspend a tenant (platform admin)",
        )
        .handle(tenants::suspend)
        .returns("TenantStatusChange")
        .auth(Auth::Admin)
        .errors(&[404]),
        op(
            "post",
            "/v1/tenants/{tenant}/resume",
            "Resume a suspended tenant (platform admin)",
        )
        .handle(tenants::resume)
        .returns("TenantStatusChange")
        .auth(Auth::Admin)
        .errors(&[404, 409]),
        op(
            "post",
            "/v1/tenants/{tenant}/erase",
            "Erase a suspended tenant: its secrets and payload key go (platform admin)",
        )
        .handle(tenants::erase)
        .returns("TenantStatusChange")
        .auth(Auth::Admin)
        .errors(&[404, 409, 503]),
        op(
            "get",
            "/v1/tenants/{tenant}/settings",
            "The tenant's settings",
        )
        .handle(tenants::get_settings)
        .auth(Auth::Admin)
        .errors(&[404]),
        op(
            "patch",
            "/v1/tenants/{tenant}/settings",
            "Change the tenant's settings",
        )
        .handle(tenants::update_settings)
        .auth(Auth::Admin)
        .json::<tenants::SettingsBody>()
        .errors(&[400, 404, 409, 422]),
        op(
            "get",
            "/v1/tenants/{tenant}/flows",
            "The tenant's flows and their versions",
        )
        .handle(tenants::flows)
        .auth(Auth::Admin)
        .errors(&[404]),
        op(
            "get",
            "/v1/tenants/{tenant}/channels",
            "The tenant's channel strategies (secret references only)",
        )
        .handle(tenants::channels)
        .auth(Auth::Admin)
        .errors(&[404]),
        op(
            "put",
            "/v1/tenants/{tenant}/channels/{strategy}",
            "Configure a channel strategy of the tenant",
        )
        .handle(tenants::put_channel)
        .link(
            "RemoveChannel",
            "delete",
            "/v1/tenants/{tenant}/channels/{strategy}",
            &[
                ("tenant", "$request.path.tenant"),
                ("strategy", "$request.path.strategy"),
            ],
        )
        .auth(Auth::Admin)
        .json::<tenants::ChannelBody>()
        .errors(&[400, 404, 409, 422]),
        op(
            "delete",
            "/v1/tenants/{tenant}/channels/{strategy}",
            "Remove a channel strategy of the tenant",
        )
        .handle(tenants::delete_channel)
        .auth(Auth::Admin)
        .ok(&[204])
        .errors(&[404]),
        op(
            "get",
            "/v1/tenants/{tenant}/chatwoot",
            "The tenant's Chatwoot (agent desk) configuration",
        )
        .handle(crate::chatwoot::get_settings)
        .auth(Auth::Admin)
        .errors(&[404]),
        op(
            "put",
            "/v1/tenants/{tenant}/chatwoot",
            "Configure the tenant's Chatwoot (agent desk)",
        )
        .handle(crate::chatwoot::put_settings)
        .link(
            "GetChatwoot",
            "get",
            "/v1/tenants/{tenant}/chatwoot",
            &[("tenant", "$request.path.tenant")],
        )
        .link(
            "RemoveChatwoot",
            "delete",
            "/v1/tenants/{tenant}/chatwoot",
            &[("tenant", "$request.path.tenant")],
        )
        .auth(Auth::Admin)
        .json::<crate::chatwoot::ChatwootBody>()
        .errors(&[400, 404, 422]),
        op(
            "delete",
            "/v1/tenants/{tenant}/chatwoot",
            "Remove the tenant's Chatwoot configuration",
        )
        .handle(crate::chatwoot::delete_settings)
        .link(
            "GetChatwoot",
            "get",
            "/v1/tenants/{tenant}/chatwoot",
            &[("tenant", "$request.path.tenant")],
        )
        .auth(Auth::Admin)
        .ok(&[204])
        .errors(&[404]),
        op(
            "get",
            "/v1/reports/{name}",
            "A report of the tenant (JSON, or CSV with Accept: text/csv or format=csv)",
        )
        .handle(reports::get)
        .caller()
        .query::<reports::ReportQuery>()
        .errors(&[400, 404]),
        // Operator API.
        op("get", "/v1/ops/workflows", "List the tenant's workflows")
            .handle(rest::list)
            .returns_type::<crate::ops::WorkflowPage>()
            .caller()
            .query::<rest::ListQuery>()
            .errors(&[400, 503]),
        op("get", "/v1/ops/workflows/{id}", "Describe a workflow")
            .handle(rest::describe)
            .returns_type::<crate::ops::WorkflowDetail>()
            .caller()
            .query::<rest::RunQuery>()
            .errors(&[400, 404, 503]),
        op(
            "get",
            "/v1/ops/workflows/{id}/history",
            "A workflow's history, decoded",
        )
        .handle(rest::history)
        .returns_type::<crate::ops::HistoryPage>()
        .caller()
        .query::<rest::RunQuery>()
        .errors(&[400, 404, 503]),
        op("post", "/v1/ops/workflows/{id}/cancel", "Cancel a workflow")
            .handle(rest::cancel)
            .caller()
            .json::<rest::ReasonBody>()
            .errors(&[400, 404, 409, 503]),
        op(
            "post",
            "/v1/ops/workflows/{id}/terminate",
            "Terminate a workflow",
        )
        .handle(rest::terminate)
        .caller()
        .json::<rest::ReasonBody>()
        .errors(&[400, 404, 409, 503]),
        op(
            "post",
            "/v1/ops/workflows/{id}/reset",
            "Reset a workflow to an earlier point",
        )
        .handle(rest::reset)
        .caller()
        .json::<rest::ReasonBody>()
        .errors(&[400, 404, 409, 503]),
        op(
            "post",
            "/v1/ops/workflows/{id}/actions/{action}",
            "Run a domain action on a workflow (signal or update)",
        )
        .handle(rest::act)
        .caller()
        .json::<rest::ActionBody>()
        .errors(&[400, 404, 409, 422, 503]),
        op(
            "get",
            "/v1/ops/dead-letters",
            "The tenant's dead-lettered outbound messages",
        )
        .handle(rest::dead_letters)
        .caller()
        .query::<rest::DeadLettersQuery>()
        .errors(&[400]),
        op(
            "post",
            "/v1/ops/dead-letters/{client_message_id}/redrive",
            "Send a dead letter again (once, however often asked)",
        )
        .handle(rest::redrive)
        .caller()
        .ok(&[202])
        .errors(&[400, 404, 503]),
        // Service.
        op("get", "/healthz", "Liveness")
            .handle(|| async { axum::Json(json!({"status": "ok"})) })
            .tag("service"),
        op(
            "get",
            "/readyz",
            "Readiness: the database and Temporal answer",
        )
        .handle(crate::readyz)
        .returns("Readiness")
        .tag("service")
        .ok(&[200, 503]),
        op("get", "/metrics", "Prometheus metrics")
            .handle(crate::metrics::render)
            .tag("service")
            .ok_as(200, "text/plain"),
        op("get", "/openapi.json", "This document")
            .handle(serve)
            .tag("service"),
    ]
}

/// The error body of every 4xx/5xx answer.
#[allow(dead_code)] // Only its schema is used; the body is built in `error.rs`.
#[derive(JsonSchema)]
struct ErrorBody {
    error: ErrorInner,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
struct ErrorInner {
    code: crate::ErrorCode,
    message: String,
    /// Itemised problems (e.g. every validation error of a flow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    details: Vec<String>,
}

fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
}

/// The document, built once per process.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let error_schema = generator.subschema_for::<ErrorBody>();
    let mut paths = Map::new();
    for o in operations().into_iter().filter(|o| !o.hidden) {
        let mut parameters = Vec::new();
        for segment in o.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                parameters.push(json!({
                    "name": name, "in": "path", "required": true,
                    "schema": {"type": "string", "minLength": 1},
                }));
            }
        }
        if let Some(query) = o.query {
            let schema = query(&mut generator).to_value();
            let schema = inline(&generator, schema);
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    let mut parameter = json!({
                        "name": name, "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": property,
                    });
                    if let Some(about) = property.get("description") {
                        parameter["description"] = about.clone();
                    }
                    parameters.push(parameter);
                }
            }
        }
        for (name, required, about) in &o.headers {
            parameters.push(json!({
                "name": name, "in": "header", "required": required, "description": about,
                "schema": {"type": "string"},
            }));
        }
        let mut responses = Map::new();
        for (status, content_type) in &o.success {
            let mut response = json!({"description": reason(*status)});
            if let Some(content_type) = content_type {
                let schema = match *content_type {
                    "application/json" => match o.returns {
                        Some(Returns::Named(name)) => {
                            json!({"$ref": format!("#/components/schemas/{name}")})
                        }
                        Some(Returns::Derived(schema)) => schema(&mut generator).to_value(),
                        None => json!({}),
                    },
                    "text/plain" => json!({"type": "string"}),
                    _ => json!({"type": "string", "format": "binary"}),
                };
                response["content"] = json!({ *content_type: {"schema": schema} });
            }
            if !o.links.is_empty() {
                let links: Map<String, Value> = o
                    .links
                    .iter()
                    .map(|l| {
                        let parameters: Map<String, Value> = l
                            .parameters
                            .iter()
                            .map(|(name, from)| ((*name).to_owned(), json!(from)))
                            .collect();
                        let link = json!({
                            "operationId": operation_id(l.method, l.path),
                            "parameters": parameters,
                        });
                        (l.name.to_owned(), link)
                    })
                    .collect();
                response["links"] = Value::Object(links);
            }
            responses.insert(status.to_string(), response);
        }
        let mut errors = o.errors.clone();
        match o.auth {
            Auth::Caller | Auth::Admin => errors.extend([400, 401, 403, 404, 429, 503]),
            Auth::Webchat => errors.extend([400, 404]),
            Auth::Webhook => errors.extend([401, 403]),
            Auth::Public => {}
        }
        if !matches!(o.body, Body::None) {
            errors.extend([400, 413]);
        }
        errors.push(500);
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(
                status.to_string(),
                json!({
                    "description": reason(status),
                    "content": {"application/json": {"schema": error_schema.clone()}},
                }),
            );
        }
        let mut operation = json!({
            "operationId": operation_id(o.method, o.path),
            "summary": o.summary,
            "tags": [o.tag],
            "parameters": parameters,
            "responses": responses,
        });
        let body = match o.body {
            Body::None => None,
            Body::Json(schema) => {
                Some(json!({"application/json": {"schema": schema(&mut generator)}}))
            }
            Body::JsonObject => Some(json!({"application/json": {"schema": {"type": "object"}}})),
            Body::Multipart(field) => Some(json!({"multipart/form-data": {"schema": {
                "type": "object",
                "properties": {field: {"type": "string", "format": "binary"}},
            }}})),
            Body::Raw => Some(json!({"application/json": {"schema": {}}})),
        };
        if let Some(content) = body {
            operation["requestBody"] = json!({"required": true, "content": content});
        }
        operation["security"] = match o.auth {
            Auth::Public | Auth::Webchat => json!([]),
            Auth::Caller => json!([{"bearer": []}, {"apiKey": []}]),
            Auth::Admin => json!([{"bearer": []}]),
            Auth::Webhook => json!([{"providerWebhook": []}]),
        };
        paths
            .entry(o.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(o.method.to_owned(), operation);
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    for (name, schema) in responses::components() {
        assert!(
            schemas.insert(name.clone(), schema).is_none(),
            "response schema `{name}` clashes with a derived one"
        );
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ZEngine API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Durable workflow orchestration: channels, webchat, orders, payments, \
                routes, tracking, assistance, operator API. Errors are \
                `{\"error\": {\"code\", \"message\"}}`; see docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http", "scheme": "bearer",
                    "description": "A JWT (tenant and role from its claims), an API key \
                        `zk_<id>_<secret>`, or the admin token with `x-tenant-id`.",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "providerWebhook": {
                    "type": "apiKey", "in": "header", "name": "x-hub-signature-256",
                    "description": "Per provider: WhatsApp `X-Hub-Signature-256`, Five9 basic \
                        auth and IP allowlist, Amazon Connect SNS signatures, 360dialog and \
                        others as in docs/channels.md.",
                },
            },
        },
    });
    no_boolean_schemas(&mut document);
    document
}

/// Writes the "anything" schema `true` (what `schemars` derives for a JSON value) as `{}`:
/// both mean the same in JSON Schema, but client generators (openapi-python-client) accept
/// only object schemas. Only schema positions change (`additionalProperties: false` stays).
fn no_boolean_schemas(value: &mut Value) {
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(no_boolean_schemas);
        }
        return;
    };
    let anything = |schema: &mut Value| {
        if *schema == Value::Bool(true) {
            *schema = json!({});
        }
    };
    for (key, child) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "$defs" => {
                if let Value::Object(schemas) = child {
                    schemas.values_mut().for_each(anything);
                }
            }
            "items"
            | "additionalProperties"
            | "not"
            | "contains"
            | "propertyNames"
            | "if"
            | "then"
            | "else" => anything(child),
            "oneOf" | "anyOf" | "allOf" | "prefixItems" => {
                if let Value::Array(schemas) = child {
                    schemas.iter_mut().for_each(anything);
                }
            }
            _ => {}
        }
        no_boolean_schemas(child);
    }
}

/// Replaces a top-level `$ref` into `/components/schemas` by the schema it names (query
/// parameters need the properties themselves).
fn inline(generator: &SchemaGenerator, schema: Value) -> Value {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
        return schema;
    };
    let name = reference.rsplit('/').next().unwrap_or_default();
    generator.definitions().get(name).cloned().unwrap_or(schema)
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let segment = segment.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        id.extend(
            segment
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

/// `GET /openapi.json`.
pub async fn serve() -> axum::Json<&'static Value> {
    axum::Json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_operation_is_routed_once_and_documented_unless_hidden() {
        let operations = operations();
        let unhandled: Vec<_> = operations
            .iter()
            .filter(|o| o.handler.is_none())
            .map(|o| format!("{} {}", o.method, o.path))
            .collect();
        assert!(unhandled.is_empty(), "no handler: {unhandled:?}");
        let listed: BTreeSet<(&str, &str)> =
            operations.iter().map(|o| (o.method, o.path)).collect();
        assert_eq!(
            listed.len(),
            operations.len(),
            "an operation is listed twice"
        );
        // Building the router merges each path's methods (and would panic on a clash).
        let _ = routes(&ApiSettings::default());
        let doc = document();
        for o in &operations {
            let documented = doc["paths"][o.path].get(o.method).is_some();
            assert_eq!(documented, !o.hidden, "{} {}", o.method, o.path);
        }
    }

    #[test]
    fn no_schema_is_a_bare_boolean_for_client_generators() {
        fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (key, child) in map {
                        let at = format!("{path}/{key}");
                        let schema_map = matches!(key.as_str(), "properties" | "$defs");
                        if schema_map && let Value::Object(schemas) = child {
                            for (name, schema) in schemas {
                                if schema.is_boolean() {
                                    found.push(format!("{at}/{name}"));
                                }
                            }
                        }
                        if key == "items" && child.is_boolean() {
                            found.push(at.clone());
                        }
                        walk(child, &at, found);
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, &format!("{path}/{i}"), found);
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(document(), "", &mut found);
        assert!(found.is_empty(), "boolean schemas: {found:?}");
    }

    #[test]
    fn every_link_names_an_operation_and_its_parameters() {
        let doc = document();
        let mut by_id = Map::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                by_id.insert(
                    operation["operationId"].as_str().unwrap().to_owned(),
                    operation.clone(),
                );
            }
        }
        let mut links = 0;
        for operation in by_id.values() {
            for response in operation["responses"].as_object().unwrap().values() {
                let Some(found) = response.get("links").and_then(Value::as_object) else {
                    continue;
                };
                for (name, link) in found {
                    links += 1;
                    let target = &by_id[link["operationId"].as_str().unwrap()];
                    let accepted: BTreeSet<&str> = target["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["name"].as_str().unwrap())
                        .collect();
                    for parameter in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            accepted.contains(parameter.as_str()),
                            "link {name} of {}: {parameter} is not a parameter of {}",
                            operation["operationId"],
                            link["operationId"]
                        );
                    }
                }
            }
        }
        assert!(links >= 15, "only {links} links");
    }

    #[test]
    fn document_has_schemas_errors_and_security() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = &doc["components"]["schemas"];
        let codes = schemas["ErrorCode"].to_string();
        for code in [
            "idempotency_key_reused",
            "forbidden",
            "rate_limited",
            "internal",
        ] {
            assert!(codes.contains(&format!("\"{code}\"")), "{code} in {codes}");
        }
        let review = &doc["paths"]["/v1/payments/{id}/review"]["post"];
        assert_eq!(
            review["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ReviewBody"
        );
        assert_eq!(
            schemas["ReviewBody"]["additionalProperties"], false,
            "deny_unknown_fields is documented"
        );
        assert_eq!(
            review["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        let list = &doc["paths"]["/v1/orders"]["get"]["parameters"];
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "customer_phone" && p["in"] == "query")
        );
        assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
        assert!(
            doc["paths"]["/v1/orders"]["post"]["security"]
                .to_string()
                .contains("bearer")
        );
    }

    #[test]
    fn main_endpoints_have_typed_success_bodies() {
        let doc = document();
        for (method, path, status, schema) in [
            ("post", "/v1/orders", "201", "Order"),
            ("get", "/v1/orders", "200", "OrderPage"),
            ("get", "/v1/payments/{id}", "200", "Payment"),
            ("get", "/v1/routes/{id}", "200", "Route"),
            ("get", "/v1/events", "200", "EventPage"),
            ("get", "/v1/channels/dead-letters", "200", "DeadLetters"),
            ("get", "/v1/ops/workflows", "200", "WorkflowPage"),
            ("get", "/v1/ops/workflows/{id}", "200", "WorkflowDetail"),
            (
                "get",
                "/v1/ops/workflows/{id}/history",
                "200",
                "HistoryPage",
            ),
            (
                "get",
                "/v1/assistances/events/{id}",
                "200",
                "AssistanceEvent",
            ),
        ] {
            let body = &doc["paths"][path][method]["responses"][status]["content"]["application/json"]
                ["schema"];
            assert_eq!(
                body["$ref"],
                format!("#/components/schemas/{schema}"),
                "{method} {path}"
            );
            assert!(
                doc["components"]["schemas"][schema]["required"].is_array(),
                "{schema} names its required fields"
            );
        }
    }

    /// The operator, assistance and MOK request bodies are their handlers' types: each names
    /// its fields and refuses others, so generated clients and schemathesis send real bodies.
    #[test]
    fn operator_assistance_and_mok_bodies_are_typed() {
        let doc = document();
        for (method, path, schema, field) in [
            (
                "post",
                "/v1/ops/workflows/{id}/cancel",
                "ReasonBody",
                "reason",
            ),
            (
                "post",
                "/v1/ops/workflows/{id}/terminate",
                "ReasonBody",
                "reason",
            ),
            (
                "post",
                "/v1/ops/workflows/{id}/reset",
                "ReasonBody",
                "run_id",
            ),
            (
                "post",
                "/v1/ops/workflows/{id}/actions/{action}",
                "ActionBody",
                "note",
            ),
            (
                "post",
                "/v1/assistances/events/draft",
                "EventFields",
                "category",
            ),
            (
                "put",
                "/v1/assistances/events/draft/{id}",
                "EventFields",
                "beneficiary_phone",
            ),
            (
                "post",
                "/v1/assistances/events/{id}/providers",
                "AssignBody",
                "provider_id",
            ),
            ("post", "/v1/assistances/notes", "NoteBody", "text"),
            ("post", "/v1/mok/events", "MokEventRequest", "action"),
            ("post", "/codec/decode", "JsonPayloads", "payloads"),
            ("post", "/codec/encode", "JsonPayloads", "payloads"),
        ] {
            let body =
                &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
            assert_eq!(
                body["$ref"],
                format!("#/components/schemas/{schema}"),
                "{method} {path}"
            );
            let component = &doc["components"]["schemas"][schema];
            assert!(
                component["properties"][field].is_object(),
                "{schema} documents `{field}`"
            );
            assert_eq!(
                component["additionalProperties"], false,
                "{schema}: unknown fields are refused, and documented so"
            );
        }
        // Amazon Connect contact flows may send more than the two fields read.
        let connect = &doc["components"]["schemas"]["ConnectContact"];
        assert!(
            connect["required"]
                .to_string()
                .contains("participant_token")
        );
    }

    /// `docs/openapi.json` is the document of this code; `ZENGINE_UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn committed_document_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let current = serde_json::to_string_pretty(document()).unwrap() + "\n";
        if std::env::var_os("ZENGINE_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &current).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/openapi.json is stale: ZENGINE_UPDATE_OPENAPI=1 cargo test -p zengine-api --lib openapi"
        );
    }
}
