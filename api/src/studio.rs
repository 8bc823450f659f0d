//! The flow studio's endpoints: drafts, live validation, preview, versions and what a change
//! does before it ships. Publishing stays `PUT /v1/tenants/{tenant}/flows/{name}`
//! (`management.rs`).
//!
//! `POST …/flows/{name}/validate` checks a draft with the validator `zengine flow validate`
//! runs; `POST …/flows/{name}/simulate` runs it with the interpreter the workflow runs
//! ([`zengine_domain::flow::simulate`]), commands stubbed.
//!
//! `PUT|GET|DELETE /v1/tenants/{tenant}/flows/{name}/draft` keep one unpublished working copy
//! per flow, saved as written (a draft may be half done; saving answers its validation too).
//!
//! `GET /v1/tenants/{tenant}/flows/{name}/versions/{version}` reads one published version and
//! `GET …/diff?from=&to=` compares two, node by node (rolling back is publishing an older
//! version's definition again with `PUT /v1/tenants/{tenant}/flows/{name}`).
//!
//! `POST /v1/tenants/{tenant}/flows/{name}/impact`
//! replays the customer messages of the tenant's latest conversations of that flow, read from
//! their workflow histories (decoded for this tenant only, through the operator API), through
//! the version each conversation ran and through the draft, with the same stubs for both, and
//! reports the conversations that would now go differently and where they first diverge.
//!
//! Both runs use [`zengine_domain::flow::simulate`], so a difference comes from the graph, not
//! from the world: commands get the same stubbed outcomes on both sides (not the outcomes the
//! real conversation got), waits elapse at once, and handed-off conversations stay with the
//! agent. Writes nothing and starts nothing.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zengine_domain::InboundMessage;
use zengine_domain::flow::FlowError;
use zengine_domain::flow::simulate::{self, Event, Stubs, TurnRecord};
use zengine_domain::flow::{FlowGraph, State as FlowState};
use zengine_workflows::conversation::{UPDATE_HANDLE_MESSAGE, WORKFLOW_TYPE};

use crate::auth::{Caller, Role};
use crate::ops::{ListFilter, Operations};
use crate::{ApiError, AppState};

/// The answer of [`validate_flow`].
#[derive(Serialize, schemars::JsonSchema)]
pub struct FlowValidation {
    pub valid: bool,
    /// Every problem, pinned to its node and field (`node: null`: the document as a whole).
    pub errors: Vec<FlowError>,
}

/// `POST /v1/tenants/{tenant}/flows/{name}/validate`: checks a draft without publishing it
/// (the flow studio's live validation): 200 with `valid` and the located problems.
pub async fn validate_flow(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    crate::management::tenant_as(&state, &caller, &tenant, Role::Admin).await?;
    let doc: serde_json::Value = crate::parse_json(&crate::read_body(body)?)?;
    let errors = crate::management::flow_of(&name, doc)?
        .err()
        .unwrap_or_default();
    Ok(Json(FlowValidation {
        valid: errors.is_empty(),
        errors,
    })
    .into_response())
}

/// Most customer inputs one simulation takes, and the longest input.
const MAX_SIMULATED_INPUTS: usize = 100;
const MAX_SIMULATED_INPUT_CHARS: usize = 4096;

/// The body of [`simulate_flow`].
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateBody {
    /// The draft to run; the latest published version of the path's flow when absent.
    #[serde(default)]
    flow: Option<serde_json::Value>,
    /// The customer's messages, in order (1 to 100, each at most 4096 characters).
    inputs: Vec<String>,
    /// How commands end (they never run).
    #[serde(default)]
    stubs: Stubs,
    /// Give a handed-off conversation back to the bot at the next input.
    #[serde(default)]
    auto_return: bool,
}

/// `POST /v1/tenants/{tenant}/flows/{name}/simulate`: runs a draft (or the published flow) on
/// the customer inputs given with the interpreter the conversation workflow runs, commands
/// stubbed, waits skipped (the flow studio's preview; `zengine flow simulate` runs the same
/// engine). Starts no workflow and writes nothing.
pub async fn simulate_flow(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let tenant = crate::management::existing_tenant(&state, &caller, &tenant).await?;
    let body: SimulateBody = crate::read_json(body)?;
    if body.inputs.is_empty() || body.inputs.len() > MAX_SIMULATED_INPUTS {
        return Err(ApiError::invalid_field(format!(
            "field `inputs`: 1 to {MAX_SIMULATED_INPUTS} messages"
        )));
    }
    if let Some(i) = body
        .inputs
        .iter()
        .position(|m| m.chars().count() > MAX_SIMULATED_INPUT_CHARS)
    {
        return Err(ApiError::invalid_field(format!(
            "field `inputs[{i}]`: at most {MAX_SIMULATED_INPUT_CHARS} characters"
        )));
    }
    let graph = match body.flow {
        Some(doc) => {
            crate::management::flow_of(&name, doc)?.map_err(crate::management::invalid_flow)?
        }
        None => state
            .db
            .tenants()
            .latest_flow(&tenant.tenant_id, &name)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("flow `{name}` has no published version"))
            })?,
    };
    let transcript = simulate::simulate(&graph, &body.inputs, &body.stubs, body.auto_return);
    Ok(Json(transcript).into_response())
}

/// Most conversations one impact report reads.
const MAX_CONVERSATIONS: u32 = 200;
/// History pages read per conversation (1,000 events each).
const MAX_HISTORY_PAGES: usize = 20;

/// The body of [`impact`].
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactBody {
    /// The draft (validated as for publishing).
    flow: Value,
    /// How many of the latest conversations of this flow to replay (1 to 200, default 100).
    #[serde(default)]
    limit: Option<u32>,
    /// Command outcomes for both runs (as for `simulate`).
    #[serde(default)]
    stubs: Stubs,
}

/// One conversation the draft would change.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Divergence {
    pub workflow_id: String,
    pub run_id: String,
    /// The version the conversation ran.
    pub version: u32,
    /// The first input the two runs answer differently (0-based).
    pub turn: usize,
    pub input: String,
    /// The node the conversation waited at before that input (`None`: it was idle, so the
    /// flow started over at `start`).
    pub at_node: Option<String>,
    /// What that input led to with the version the conversation ran, and with the draft.
    pub published: Vec<Event>,
    pub draft: Vec<Event>,
}

/// The answer of [`impact`].
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Impact {
    /// Conversations of this flow replayed.
    pub examined: usize,
    /// Of those, how many the draft answers differently.
    pub changed: usize,
    /// Changed conversations by the node they diverge at (`start` for an idle conversation).
    pub by_node: BTreeMap<String, usize>,
    pub conversations: Vec<Divergence>,
}

/// `POST /v1/tenants/{tenant}/flows/{name}/impact` (tenant admins).
pub async fn impact(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = crate::management::tenant_as(&state, &caller, &tenant, Role::Admin).await?;
    let body: ImpactBody = crate::read_json(body)?;
    let limit = body.limit.unwrap_or(100);
    if !(1..=MAX_CONVERSATIONS).contains(&limit) {
        return Err(ApiError::invalid_field(format!(
            "field `limit`: 1 to {MAX_CONVERSATIONS}"
        )));
    }
    let draft =
        crate::management::flow_of(&name, body.flow)?.map_err(crate::management::invalid_flow)?;
    let ops = Operations::new(state.temporal.clone());
    let filter = ListFilter {
        workflow_type: Some(WORKFLOW_TYPE.to_owned()),
        ..ListFilter::default()
    };
    let mut examined = 0;
    let mut conversations = Vec::new();
    let mut token: Option<String> = None;
    'pages: loop {
        let page = ops.list(&tenant, &filter, 100, token.as_deref()).await?;
        for run in &page.workflows {
            let Some((pinned, inputs)) = replayable(&ops, &tenant, run).await? else {
                continue;
            };
            if pinned.id != name || inputs.is_empty() {
                continue;
            }
            examined += 1;
            conversations.extend(compare(run, &pinned, &draft, &inputs, &body.stubs));
            if examined >= limit as usize {
                break 'pages;
            }
        }
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    let mut by_node = BTreeMap::new();
    for c in &conversations {
        let node = c.at_node.clone().unwrap_or_else(|| "start".to_owned());
        *by_node.entry(node).or_default() += 1;
    }
    Ok(Json(Impact {
        examined,
        changed: conversations.len(),
        by_node,
        conversations,
    })
    .into_response())
}

/// The flow a conversation run was started with and the customer messages it accepted, from
/// its history; `None` when the history does not hold them (another workflow shape).
async fn replayable(
    ops: &Operations,
    tenant: &zengine_domain::TenantId,
    run: &crate::ops::WorkflowSummary,
) -> Result<Option<(FlowGraph, Vec<String>)>, ApiError> {
    let mut flow = None;
    let mut inputs = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_HISTORY_PAGES {
        let page = ops
            .history(
                tenant,
                &run.workflow_id,
                Some(&run.run_id),
                1000,
                token.as_deref(),
            )
            .await?;
        for event in &page.events {
            match event.event_type.as_str() {
                "WorkflowExecutionStarted" => {
                    flow = event.details["input"][0]
                        .get("flow")
                        .cloned()
                        .and_then(|f| serde_json::from_value::<FlowGraph>(f).ok());
                }
                "WorkflowExecutionUpdateAccepted" => {
                    let input = &event.details["accepted_request"]["input"];
                    if input["name"] == UPDATE_HANDLE_MESSAGE
                        && let Ok(message) =
                            serde_json::from_value::<InboundMessage>(input["args"][0].clone())
                    {
                        inputs.push(message.text);
                    }
                }
                _ => {}
            }
        }
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok(flow.map(|f| (f, inputs)))
}

/// The first input of `run` that `published` (the version it ran) and `draft` answer
/// differently, if any.
fn compare(
    run: &crate::ops::WorkflowSummary,
    published: &FlowGraph,
    draft: &FlowGraph,
    inputs: &[String],
    stubs: &Stubs,
) -> Option<Divergence> {
    let before = simulate::simulate(published, inputs, stubs, false);
    let after = simulate::simulate(draft, inputs, stubs, false);
    let turn = before
        .turns
        .iter()
        .zip(&after.turns)
        .position(|(a, b)| a.events != b.events)?;
    let at_node = turn
        .checked_sub(1)
        .and_then(|previous| node_of(&before.turns[previous]));
    Some(Divergence {
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.clone(),
        version: published.version,
        turn,
        input: inputs[turn].clone(),
        at_node,
        published: before.turns[turn].events.clone(),
        draft: after.turns[turn].events.clone(),
    })
}

/// The node a conversation waits at after `turn`.
fn node_of(turn: &TurnRecord) -> Option<String> {
    match &turn.state {
        FlowState::AwaitingInput { node, .. }
        | FlowState::AwaitingCommand { node }
        | FlowState::Waiting { node }
        | FlowState::Handoff { node } => Some(node.clone()),
        FlowState::Idle | FlowState::SurveyRating | FlowState::SurveyComment { .. } => None,
    }
}

/// `GET /v1/tenants/{tenant}/flows/{name}/versions/{version}`: one published version.
pub async fn version(
    State(state): State<AppState>,
    Path((tenant, name, version)): Path<(String, String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let tenant = crate::management::tenant_as(&state, &caller, &tenant, Role::Viewer).await?;
    let version = version_number("version", &version)?;
    Ok(Json(stored(&state, &tenant, &name, version).await?).into_response())
}

fn version_number(field: &str, raw: &str) -> Result<u32, ApiError> {
    raw.parse::<u32>().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::bad_request(
            crate::ErrorCode::InvalidField,
            format!("`{field}`: a version number (1, 2, …), not `{raw}`"),
        )
    })
}

async fn stored(
    state: &AppState,
    tenant: &zengine_domain::TenantId,
    name: &str,
    version: u32,
) -> Result<FlowGraph, ApiError> {
    state
        .db
        .tenants()
        .flow_version(tenant, name, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow `{name}` has no version {version}")))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older version.
    from: String,
    /// The newer version.
    to: String,
}

/// A node present in both versions, changed.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NodeChange {
    pub id: String,
    pub from: Value,
    pub to: Value,
}

/// A document field (`start`, `session_timeout_secs`, `survey`) that changed.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FieldChange {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

/// The answer of [`diff`]: what `to` changed from `from`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FlowDiff {
    pub from: u32,
    pub to: u32,
    /// Nodes only in `to` / only in `from`, in graph order.
    pub added: Vec<Value>,
    pub removed: Vec<Value>,
    pub changed: Vec<NodeChange>,
    pub fields: Vec<FieldChange>,
}

/// `GET /v1/tenants/{tenant}/flows/{name}/diff?from=&to=`.
pub async fn diff(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    query: Result<Query<DiffQuery>, QueryRejection>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let tenant = crate::management::tenant_as(&state, &caller, &tenant, Role::Viewer).await?;
    let query = crate::read_query(query)?;
    let from = version_number("from", &query.from)?;
    let to = version_number("to", &query.to)?;
    let older = stored(&state, &tenant, &name, from).await?;
    let newer = stored(&state, &tenant, &name, to).await?;
    Ok(Json(compare_versions(&older, &newer)).into_response())
}

fn compare_versions(older: &FlowGraph, newer: &FlowGraph) -> FlowDiff {
    let json = |node: &zengine_domain::flow::Node| serde_json::to_value(node).unwrap_or_default();
    let before: BTreeMap<&str, Value> = older
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), json(n)))
        .collect();
    let after: BTreeMap<&str, Value> = newer
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), json(n)))
        .collect();
    let only_in = |graph: &FlowGraph, other: &BTreeMap<&str, Value>| {
        graph
            .nodes
            .iter()
            .filter(|n| !other.contains_key(n.id.as_str()))
            .map(json)
            .collect()
    };
    let added = only_in(newer, &before);
    let removed = only_in(older, &after);
    let changed = newer
        .nodes
        .iter()
        .filter_map(|n| {
            let from = before.get(n.id.as_str())?;
            let to = &after[n.id.as_str()];
            (from != to).then(|| NodeChange {
                id: n.id.clone(),
                from: from.clone(),
                to: to.clone(),
            })
        })
        .collect();
    let (a, b) = (
        serde_json::to_value(older).unwrap_or_default(),
        serde_json::to_value(newer).unwrap_or_default(),
    );
    let fields = ["start", "session_timeout_secs", "survey"]
        .into_iter()
        .filter(|f| a.get(f) != b.get(f))
        .map(|f| FieldChange {
            field: f.to_owned(),
            from: a.get(f).cloned().unwrap_or(Value::Null),
            to: b.get(f).cloned().unwrap_or(Value::Null),
        })
        .collect();
    FlowDiff {
        from: older.version,
        to: newer.version,
        added,
        removed,
        changed,
        fields,
    }
}

/// The answer of [`save_draft`].
#[derive(Serialize, schemars::JsonSchema)]
pub struct DraftSaved {
    pub flow_id: String,
    pub saved_by: String,
    /// Whether it could be published as it is, and its problems.
    pub validation: FlowValidation,
}

/// `PUT /v1/tenants/{tenant}/flows/{name}/draft` (admins): saves the working copy.
pub async fn save_draft(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = crate::management::tenant_as(&state, &caller, &tenant, Role::Admin).await?;
    crate::management::valid_flow_name(&name)?;
    let doc: Value = crate::parse_json(&crate::read_body(body)?)?;
    let errors = crate::management::flow_of(&name, doc.clone())?
        .err()
        .unwrap_or_default();
    state
        .db
        .tenants()
        .save_draft(&tenant, &name, &doc, &caller.subject)
        .await?;
    Ok(Json(DraftSaved {
        flow_id: name,
        saved_by: caller.subject.clone(),
        validation: FlowValidation {
            valid: errors.is_empty(),
            errors,
        },
    })
    .into_response())
}

/// `GET /v1/tenants/{tenant}/flows/{name}/draft`.
pub async fn get_draft(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let tenant = crate::management::tenant_as(&state, &caller, &tenant, Role::Viewer).await?;
    let draft = state
        .db
        .tenants()
        .draft(&tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow `{name}` has no draft")))?;
    Ok(Json(draft).into_response())
}

/// `DELETE /v1/tenants/{tenant}/flows/{name}/draft` (admins): 204.
pub async fn delete_draft(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let tenant = crate::management::tenant_as(&state, &caller, &tenant, Role::Admin).await?;
    if !state.db.tenants().delete_draft(&tenant, &name).await? {
        return Err(ApiError::not_found(format!("flow `{name}` has no draft")));
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
