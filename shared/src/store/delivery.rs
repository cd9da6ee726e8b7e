//! The outbox attributes of an item: `<prefix>Status`, `<prefix>Since`,
//! `<prefix>DueAt`, `<prefix>DeliveredAt`, `<prefix>Attempts` (prefix
//! `grant` on an order, `revoke` on a refund).

use super::item::{n, s, Item, Read};
use crate::domain::entitlements::{Delivery, DeliveryStatus};
use crate::domain::StoreError;

pub(crate) fn write(item: &mut Item, prefix: &str, delivery: &Delivery) {
    item.insert(format!("{prefix}Status"), s(delivery.status.as_str()));
    item.insert(format!("{prefix}Since"), n(delivery.since));
    item.insert(format!("{prefix}Attempts"), n(i64::from(delivery.attempts)));
    if let Some(at) = delivery.due_at {
        item.insert(format!("{prefix}DueAt"), n(at));
    }
    if let Some(at) = delivery.delivered_at {
        item.insert(format!("{prefix}DeliveredAt"), n(at));
    }
}

pub(crate) fn read(r: &Read<'_>, prefix: &str) -> Result<Option<Delivery>, StoreError> {
    let Some(status) = r.opt_str(&format!("{prefix}Status")) else {
        return Ok(None);
    };
    let status = DeliveryStatus::parse(status).ok_or_else(|| {
        StoreError::new(format!("stored `{prefix}Status` is not a delivery status"))
    })?;
    Ok(Some(Delivery {
        status,
        since: r.num(&format!("{prefix}Since"))?,
        due_at: r.opt_num(&format!("{prefix}DueAt"))?,
        delivered_at: r.opt_num(&format!("{prefix}DeliveredAt"))?,
        attempts: r
            .opt_num(&format!("{prefix}Attempts"))?
            .map(|a| u32::try_from(a).unwrap_or(u32::MAX))
            .unwrap_or(0),
    }))
}
