//! Every Temporal workflow and schedule id ZEngine builds, in one place.
//!
//! A tenant's workflows are `{tenant}/<kind>/<business key>`: the tenant comes first, so the
//! payload codec (`zengine_workflows::codec`) seals them under that tenant's key and operators'
//! queries can be confined to it. Deployment-wide workflows are `{prefix}_system/<kind>`, under
//! the deployment's task-queue prefix (tenant ids that would collide are reserved, see
//! [`TenantId::is_reserved`]). Ids, like workflow types and search attributes, are **not**
//! encrypted: never put personal data in a key (conversations on phone channels use a keyed
//! hash of the number, [`ConversationId::temporal_id`](crate::ConversationId::temporal_id)).
//!
//! These strings are stored in Temporal and in the database; changing one orphans the
//! workflows already running under the old form.

use crate::TenantId;

/// The pseudo-tenant of deployment-wide workflows (their `TenantId` search attribute).
pub const SYSTEM_TENANT: &str = "_system";

/// An order: `{tenant}/order/{order_id}`.
pub fn order(tenant: &TenantId, order_id: &str) -> String {
    format!("{tenant}/order/{order_id}")
}

/// A receipt payment: `{tenant}/payment/{payment_id}`
/// ([`payment_id_for`](crate::payment::payment_id_for)).
pub fn payment(tenant: &TenantId, payment_id: &str) -> String {
    format!("{tenant}/payment/{payment_id}")
}

/// A route optimisation: `{tenant}/route/{plan_id}`.
pub fn route(tenant: &TenantId, plan_id: &str) -> String {
    format!("{tenant}/route/{plan_id}")
}

/// An assistance event: `{tenant}/assistance/{event_id}`.
pub fn assistance(tenant: &TenantId, event_id: &str) -> String {
    format!("{tenant}/assistance/{event_id}")
}

/// A MOK tracking event: `{tenant}/mok/{event_id}`. The partner's event id is the key, so the
/// same event delivered twice is one workflow.
pub fn mok(tenant: &TenantId, event_id: &str) -> String {
    format!("{tenant}/mok/{event_id}")
}

/// The re-drive of a dead letter: `{tenant}/redrive/{client_message_id}`.
pub fn redrive(tenant: &TenantId, client_message_id: &str) -> String {
    format!("{tenant}/redrive/{client_message_id}")
}

/// The channel health schedule: `{prefix}_system/channel-health`.
pub fn channel_health(prefix: &str) -> String {
    format!("{prefix}{SYSTEM_TENANT}/channel-health")
}

/// The retention schedule: `{prefix}_system/retention`.
pub fn retention(prefix: &str) -> String {
    format!("{prefix}{SYSTEM_TENANT}/retention")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_come_first_and_platform_ids_are_reserved() {
        let t = TenantId::parse("acme").unwrap();
        for id in [
            order(&t, "o-1"),
            payment(&t, "pay_1"),
            route(&t, "r-1"),
            assistance(&t, "e-1"),
            mok(&t, "e-1"),
            redrive(&t, "m-1"),
        ] {
            assert_eq!(id.split('/').next(), Some("acme"), "{id}");
        }
        for id in [channel_health("zt-1"), retention(""), channel_health("")] {
            let first = id.split('/').next().unwrap();
            assert!(TenantId::is_reserved(first), "{id}");
        }
        // The stored forms (running workflows are found by them).
        assert_eq!(order(&t, "o-1"), "acme/order/o-1");
        assert_eq!(assistance(&t, "ase_1"), "acme/assistance/ase_1");
        assert_eq!(mok(&t, "mok-1"), "acme/mok/mok-1");
        assert_eq!(route(&t, "r-1"), "acme/route/r-1");
        assert_eq!(channel_health("zt-1"), "zt-1_system/channel-health");
        assert_eq!(retention(""), "_system/retention");
    }
}
