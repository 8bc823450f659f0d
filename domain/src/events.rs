//! The types of the domain events ZEngine records (`domain_event`, `GET /v1/events`, the
//! reports' projections): one enum, so a producer cannot misspell a type its consumers match.
//! The string forms are stored and published; never change one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A domain event's type (`<Aggregate>.<WhatHappened>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `Conversation.MessageReceived`: a customer message reached a conversation.
    ConversationMessageReceived,
    /// `Conversation.MessageDelivered`: a provider reported an outbound message delivered or read.
    ConversationMessageDelivered,
    /// `Conversation.ReplySent`: a reply was accepted by the channel's provider.
    ConversationReplySent,
    /// `Conversation.HandedOff`: the flow handed the conversation to a person.
    ConversationHandedOff,
    /// `Conversation.ReturnedToBot`: an operator or the agent desk gave the conversation back to the bot.
    ConversationReturnedToBot,
    /// `Conversation.SurveyCompleted`: the customer answered the satisfaction survey.
    ConversationSurveyCompleted,
    /// `Outbound.Failed`: a reply was given up (dead letter).
    OutboundFailed,
    /// `Order.StatusChanged`: an order moved to another status.
    OrderStatusChanged,
    /// `Orders.Purged`: retention purged a tenant's old orders.
    OrdersPurged,
    /// `Payment.Assigned`: a receipt paid its order.
    PaymentAssigned,
    /// `Payment.Rejected`: a receipt was refused (duplicate operation code).
    PaymentRejected,
    /// `Payment.ManualReview`: a receipt waits for a person.
    PaymentManualReview,
    /// `Payment.Reviewed`: an operator approved or rejected a receipt.
    PaymentReviewed,
    /// `Payment.ReviewEscalated`: a review waited too long; operators were texted.
    PaymentReviewEscalated,
    /// `Driver.RouteAssigned`: a driver was given a route.
    DriverRouteAssigned,
    /// `Channel.HealthChanged`: a channel account's health check changed status.
    ChannelHealthChanged,
    /// `Assistance.StatusChanged`: an assistance event changed status.
    AssistanceStatusChanged,
    /// `Assistance.ProviderAssigned`: a provider was assigned to an assistance event.
    AssistanceProviderAssigned,
    /// `Assistance.ProviderStarted`: a provider started its service.
    AssistanceProviderStarted,
    /// `Assistance.ProviderResolved`: a provider resolved its service.
    AssistanceProviderResolved,
    /// `Assistance.ProviderStartOverdue`: a provider did not start in time (SLA).
    AssistanceProviderStartOverdue,
    /// `Assistance.MokFailed`: a MOK tracking event ended in its error branch.
    AssistanceMokFailed,
    /// `Tenant.Created`: a tenant was created.
    TenantCreated,
    /// `Tenant.Updated`: a tenant's name or main flow changed.
    TenantUpdated,
    /// `Tenant.Suspended`: a tenant was suspended.
    TenantSuspended,
    /// `Tenant.Resumed`: a suspended tenant was resumed.
    TenantResumed,
    /// `Tenant.Erased`: a suspended tenant's secrets (payload key included) were removed.
    TenantErased,
    /// `Tenant.SettingsChanged`: a tenant's settings changed.
    TenantSettingsChanged,
    /// `Tenant.ChannelConfigured`: a channel account was configured.
    TenantChannelConfigured,
    /// `Tenant.ChannelRemoved`: a channel account was removed.
    TenantChannelRemoved,
    /// `Tenant.ChatwootConfigured`: the agent desk (Chatwoot) was configured.
    TenantChatwootConfigured,
    /// `Tenant.ChatwootRemoved`: the agent desk (Chatwoot) was removed.
    TenantChatwootRemoved,
    /// `Tenant.ApiKeyCreated`: an API key was created.
    TenantApiKeyCreated,
    /// `Tenant.ApiKeyRevoked`: an API key was revoked.
    TenantApiKeyRevoked,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 34] = [
        Self::ConversationMessageReceived,
        Self::ConversationMessageDelivered,
        Self::ConversationReplySent,
        Self::ConversationHandedOff,
        Self::ConversationReturnedToBot,
        Self::ConversationSurveyCompleted,
        Self::OutboundFailed,
        Self::OrderStatusChanged,
        Self::OrdersPurged,
        Self::PaymentAssigned,
        Self::PaymentRejected,
        Self::PaymentManualReview,
        Self::PaymentReviewed,
        Self::PaymentReviewEscalated,
        Self::DriverRouteAssigned,
        Self::ChannelHealthChanged,
        Self::AssistanceStatusChanged,
        Self::AssistanceProviderAssigned,
        Self::AssistanceProviderStarted,
        Self::AssistanceProviderResolved,
        Self::AssistanceProviderStartOverdue,
        Self::AssistanceMokFailed,
        Self::TenantCreated,
        Self::TenantUpdated,
        Self::TenantSuspended,
        Self::TenantResumed,
        Self::TenantErased,
        Self::TenantSettingsChanged,
        Self::TenantChannelConfigured,
        Self::TenantChannelRemoved,
        Self::TenantChatwootConfigured,
        Self::TenantChatwootRemoved,
        Self::TenantApiKeyCreated,
        Self::TenantApiKeyRevoked,
    ];

    /// The stored form (`Order.StatusChanged`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConversationMessageReceived => "Conversation.MessageReceived",
            Self::ConversationMessageDelivered => "Conversation.MessageDelivered",
            Self::ConversationReplySent => "Conversation.ReplySent",
            Self::ConversationHandedOff => "Conversation.HandedOff",
            Self::ConversationReturnedToBot => "Conversation.ReturnedToBot",
            Self::ConversationSurveyCompleted => "Conversation.SurveyCompleted",
            Self::OutboundFailed => "Outbound.Failed",
            Self::OrderStatusChanged => "Order.StatusChanged",
            Self::OrdersPurged => "Orders.Purged",
            Self::PaymentAssigned => "Payment.Assigned",
            Self::PaymentRejected => "Payment.Rejected",
            Self::PaymentManualReview => "Payment.ManualReview",
            Self::PaymentReviewed => "Payment.Reviewed",
            Self::PaymentReviewEscalated => "Payment.ReviewEscalated",
            Self::DriverRouteAssigned => "Driver.RouteAssigned",
            Self::ChannelHealthChanged => "Channel.HealthChanged",
            Self::AssistanceStatusChanged => "Assistance.StatusChanged",
            Self::AssistanceProviderAssigned => "Assistance.ProviderAssigned",
            Self::AssistanceProviderStarted => "Assistance.ProviderStarted",
            Self::AssistanceProviderResolved => "Assistance.ProviderResolved",
            Self::AssistanceProviderStartOverdue => "Assistance.ProviderStartOverdue",
            Self::AssistanceMokFailed => "Assistance.MokFailed",
            Self::TenantCreated => "Tenant.Created",
            Self::TenantUpdated => "Tenant.Updated",
            Self::TenantSuspended => "Tenant.Suspended",
            Self::TenantResumed => "Tenant.Resumed",
            Self::TenantErased => "Tenant.Erased",
            Self::TenantSettingsChanged => "Tenant.SettingsChanged",
            Self::TenantChannelConfigured => "Tenant.ChannelConfigured",
            Self::TenantChannelRemoved => "Tenant.ChannelRemoved",
            Self::TenantChatwootConfigured => "Tenant.ChatwootConfigured",
            Self::TenantChatwootRemoved => "Tenant.ChatwootRemoved",
            Self::TenantApiKeyCreated => "Tenant.ApiKeyCreated",
            Self::TenantApiKeyRevoked => "Tenant.ApiKeyRevoked",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event type this build does not know (an older or newer ZEngine recorded it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_and_is_aggregate_dot_event() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            let (aggregate, what) = t.as_str().split_once('.').unwrap();
            assert!(aggregate.starts_with(char::is_uppercase), "{t}");
            assert!(what.starts_with(char::is_uppercase), "{t}");
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert!("Order.Shipped".parse::<EventType>().is_err());
    }
}
