//! Replaying recorded histories against the current workflow code.
//!
//! Histories are stored as binary protobuf (`temporal.api.history.v1.History`): the SDK's JSON
//! reader does not accept what the CLI or Web UI export and is fragile across SDK versions.

use std::path::Path;

use anyhow::Context;
use prost::Message;
use temporalio_client::WorkflowHistory;
use temporalio_common::data_converters::DataConverter;
use temporalio_common::protos::temporal::api::history::v1::{History, HistoryEvent};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

use crate::{
    AssistanceWorkflow, ChannelHealthWorkflow, ConversationWorkflow, MokWorkflow, OrderWorkflow,
    PaymentWorkflow, RedriveWorkflow, RetentionPurgeWorkflow, RouteOptimisationWorkflow,
};

/// A replayer that knows every ZEngine workflow, for plaintext histories and histories
/// encrypted with the development key (the committed fixtures).
pub fn replayer() -> anyhow::Result<WorkflowReplayer> {
    replayer_with(crate::codec::EncryptionCodec::dev().data_converter())
}

/// A replayer that knows every ZEngine workflow and decodes payloads with `data_converter`
/// (give it the payload codec of the deployment that recorded encrypted histories).
pub fn replayer_with(data_converter: DataConverter) -> anyhow::Result<WorkflowReplayer> {
    let options = WorkflowReplayerOptions::new()
        .data_converter(data_converter)
        .register_workflow::<ConversationWorkflow>()?
        .register_workflow::<OrderWorkflow>()?
        .register_workflow::<PaymentWorkflow>()?
        .register_workflow::<RouteOptimisationWorkflow>()?
        .register_workflow::<ChannelHealthWorkflow>()?
        .register_workflow::<RedriveWorkflow>()?
        .register_workflow::<AssistanceWorkflow>()?
        .register_workflow::<MokWorkflow>()?
        .register_workflow::<RetentionPurgeWorkflow>()?
        .build();
    Ok(WorkflowReplayer::new(options)?)
}

/// Encodes events as a binary protobuf `History`.
pub fn encode_history(events: Vec<HistoryEvent>) -> Vec<u8> {
    History { events }.encode_to_vec()
}

/// Decodes a binary protobuf `History`.
pub fn decode_history(bytes: &[u8]) -> anyhow::Result<History> {
    History::decode(bytes).context("not a binary protobuf temporal.api.history.v1.History")
}

/// Replays the binary history in `path`; an error names the nondeterminism or failure.
pub async fn replay_file(replayer: &WorkflowReplayer, path: &Path) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(path).with_context(|| format!("Failed to read {}", path.display()))?;
    let history = decode_history(&bytes)?;
    replayer
        .replay_workflow(WorkflowHistory::from(history))
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))
}
