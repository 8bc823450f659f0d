//! The gRPC operator service through a real tonic client: reflection, the same auth and the same
//! tenant boundary as the REST API.

use std::time::{Duration, Instant};

use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use zengine_api::grpc::proto;
use zengine_api::grpc::proto::operations_client::OperationsClient;

use crate::auth::{add_tenant, hs256_options, token};
use crate::helpers::{ADMIN_TOKEN, spawn_app_with};
use crate::ops::order_workflow;

fn with_auth<T>(message: T, token: Option<&str>, tenant: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-tenant-id", tenant.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn the_grpc_service_lists_itself_and_enforces_the_same_auth_and_tenant_boundary() {
    let mut options = hs256_options();
    options.api.grpc_addr = "127.0.0.1:0".into();
    let app = spawn_app_with(options).await;
    add_tenant(&app, "acme").await;
    let demo_order = order_workflow(&app, "demo", "grpc-1").await;
    let acme_order = order_workflow(&app, "acme", "grpc-1").await;
    let channel = Channel::from_shared(app.grpc_address.clone().expect("gRPC enabled"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the gRPC service");

    // Reflection lists the service.
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(services)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<_> = services.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&zengine_api::grpc::SERVICE_NAME),
        "{names:?}"
    );

    let mut client = OperationsClient::new(channel);
    let list = |token: Option<String>| {
        let message = proto::ListWorkflowsRequest {
            workflow_type: "Order".into(),
            ..proto::ListWorkflowsRequest::default()
        };
        with_auth(message, token.as_deref(), None)
    };

    // No, bad or wrong-kind credentials.
    let status = client.list_workflows(list(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .list_workflows(list(Some("forged.jwt.token".into())))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // A viewer sees demo's workflows only (visibility catches up within seconds).
    let viewer = token("demo", "viewer");
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let page = client
            .list_workflows(list(Some(viewer.clone())))
            .await
            .unwrap()
            .into_inner();
        if page.workflows.iter().any(|w| w.workflow_id == demo_order) {
            break page;
        }
        assert!(Instant::now() < deadline, "{page:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        listed
            .workflows
            .iter()
            .all(|w| w.workflow_id.starts_with("demo/")),
        "{listed:?}"
    );
    let bad = proto::ListWorkflowsRequest {
        query: "x = 1) OR (TenantId = 'acme'".into(),
        ..proto::ListWorkflowsRequest::default()
    };
    let bad = with_auth(bad, Some(&viewer), None);
    assert_eq!(
        client.list_workflows(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // Describe and history of demo's order; acme's order does not exist for demo.
    let describe = |id: &str, token: &str| {
        with_auth(
            proto::DescribeWorkflowRequest {
                workflow_id: id.into(),
                run_id: String::new(),
            },
            Some(token),
            None,
        )
    };
    let detail = client
        .describe_workflow(describe(&demo_order, &viewer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.workflow.unwrap().workflow_type, "Order");
    assert_eq!(detail.actions, ["change_order_status"]);
    let status = client
        .describe_workflow(describe(&acme_order, &viewer))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let history = client
        .get_history(with_auth(
            proto::GetHistoryRequest {
                workflow_id: demo_order.clone(),
                ..Default::default()
            },
            Some(&viewer),
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.events[0].event_type, "WorkflowExecutionStarted");
    let input: serde_json::Value = serde_json::from_str(&history.events[0].details_json).unwrap();
    assert_eq!(input["input"][0]["tenant_id"], "demo", "{input}");

    // Acting needs the operator role; the admin token works with x-tenant-id.
    let terminate = |token: &str, tenant: Option<&str>, reason: &str| {
        with_auth(
            proto::LifecycleRequest {
                workflow_id: demo_order.clone(),
                run_id: String::new(),
                reason: reason.into(),
            },
            Some(token),
            tenant,
        )
    };
    let status = client
        .terminate_workflow(terminate(&viewer, None, "x"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let operator = token("demo", "operator");
    let status = client
        .terminate_workflow(terminate(&operator, None, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let done = client
        .terminate_workflow(terminate(ADMIN_TOKEN, Some("demo"), "grpc test"))
        .await
        .unwrap()
        .into_inner();
    let result: serde_json::Value = serde_json::from_str(&done.result_json).unwrap();
    assert_eq!(result["action"], "terminate");
    let status = client
        .terminate_workflow(terminate(&operator, None, "again"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let act = with_auth(
        proto::ActRequest {
            workflow_id: acme_order.clone(),
            action: "change_order_status".into(),
            to: "CANCELLED".into(),
            ..Default::default()
        },
        Some(&operator),
        None,
    );
    assert_eq!(client.act(act).await.unwrap_err().code(), Code::NotFound);
    app.shutdown().await;
}

#[tokio::test]
async fn dead_letters_are_listed_and_redriven_once_over_grpc() {
    let mut options = hs256_options();
    options.api.grpc_addr = "127.0.0.1:0".into();
    let app = spawn_app_with(options).await;
    let (x, y) = ("51944400001", "51944400002");
    let (fake, tenant) = crate::ops::dead_lettered_tenant(&app, "gdl", "360401", &[x, y], 1).await;
    let other = crate::auth::unique_tenant("gdlother");
    add_tenant(&app, &other).await;
    let channel = Channel::from_shared(app.grpc_address.clone().expect("gRPC enabled"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the gRPC service");

    // Reflection describes the new methods.
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(format!(
            "{}.RedriveDeadLetter",
            zengine_api::grpc::SERVICE_NAME
        ))),
    };
    let mut stream = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    assert!(
        matches!(
            response.message_response,
            Some(MessageResponse::FileDescriptorResponse(_))
        ),
        "{response:?}"
    );

    let mut client = OperationsClient::new(channel);
    let (viewer, operator) = (token(&tenant, "viewer"), token(&tenant, "operator"));
    let stranger = token(&other, "operator");
    let list = |token: &str, conversation: &str| {
        with_auth(
            proto::ListDeadLettersRequest {
                conversation_id: conversation.into(),
            },
            Some(token),
            None,
        )
    };
    let letters = client
        .list_dead_letters(list(&viewer, ""))
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let conv_y = crate::helpers::whatsapp_conversation_id(&tenant, y);
    let of_y = client
        .list_dead_letters(list(&viewer, &conv_y))
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(of_y.len(), 1);
    assert_eq!(of_y[0].conversation_id, conv_y);
    assert_eq!(of_y[0].strategy, "whatsapp-360dialog");
    let reply: serde_json::Value = serde_json::from_str(&of_y[0].reply_json).unwrap();
    assert!(reply.is_object(), "{reply}");
    assert!(
        client
            .list_dead_letters(list(&stranger, ""))
            .await
            .unwrap()
            .into_inner()
            .dead_letters
            .is_empty()
    );

    let one = |token: &str, id: &str| {
        with_auth(
            proto::RedriveDeadLetterRequest {
                client_message_id: id.into(),
            },
            Some(token),
            None,
        )
    };
    let id_y = of_y[0].client_message_id.clone();
    for (token, id, code) in [
        (viewer.as_str(), id_y.as_str(), Code::PermissionDenied),
        (stranger.as_str(), id_y.as_str(), Code::NotFound),
        (operator.as_str(), "", Code::InvalidArgument),
        (operator.as_str(), "nope", Code::NotFound),
    ] {
        let status = client
            .redrive_dead_letter(one(token, id))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{id}: {status:?}");
    }
    let status = client
        .redrive_dead_letter(with_auth(
            proto::RedriveDeadLetterRequest {
                client_message_id: id_y.clone(),
            },
            None,
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    fake.up("POST /messages");
    let redriven = client
        .redrive_dead_letter(one(&operator, &id_y))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redriven.client_message_id, id_y);
    assert!(redriven.workflow_id.contains("/redrive/"));
    let status = client
        .redrive_dead_letter(one(&operator, &id_y))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "twice sends once");

    // A whole conversation: another tenant's is not found; the owner's re-drives its letter.
    let conv_x = crate::helpers::whatsapp_conversation_id(&tenant, x);
    let conversation = |token: &str| {
        with_auth(
            proto::RedriveConversationRequest {
                conversation_id: conv_x.clone(),
            },
            Some(token),
            None,
        )
    };
    let status = client
        .redrive_conversation(conversation(&stranger))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let done = client
        .redrive_conversation(conversation(&operator))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.redriven.len(), 1, "{done:?}");
    let again = client
        .redrive_conversation(conversation(&operator))
        .await
        .unwrap()
        .into_inner();
    assert!(again.redriven.is_empty(), "{again:?}");
    // The same through Act.
    let act = client
        .act(with_auth(
            proto::ActRequest {
                workflow_id: conv_x.clone(),
                action: "redrive_dead_letters".into(),
                ..Default::default()
            },
            Some(&operator),
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    let result: serde_json::Value = serde_json::from_str(&act.result_json).unwrap();
    assert_eq!(
        result["result"]["redriven"],
        serde_json::json!([]),
        "{result}"
    );

    // Two refused sends, then each re-driven once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.seen("POST /messages").len() < 4 {
        assert!(Instant::now() < deadline, "re-driven sends did not go out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.seen("POST /messages").len(), 4);
    app.shutdown().await;
}
