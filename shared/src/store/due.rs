//! The write-sharded due index: which partition key an item's next check
//! goes under, and reading every shard soonest first.

use md5::{Digest, Md5};

pub(crate) use crate::domain::reconcile::DueKind;

fn prefix(kind: DueKind) -> &'static str {
    match kind {
        DueKind::Order => "ORDER#DUE#",
        DueKind::Refund => "REFUND#DUE#",
        DueKind::Grant => "GRANT#DUE#",
        DueKind::Revoke => "REVOKE#DUE#",
    }
}

/// The partition key items of this kind had before the index was sharded;
/// still read, so nothing written before is orphaned.
fn legacy(kind: DueKind) -> Option<&'static str> {
    match kind {
        DueKind::Order => Some("ORDER#CREATED"),
        DueKind::Refund => Some("REFUND#OPEN"),
        DueKind::Grant | DueKind::Revoke => None,
    }
}

/// The shard of `id`: stable, spread evenly (the first two bytes of its
/// md5).
pub(crate) fn shard_of(id: &str, shards: u16) -> u16 {
    let digest = Md5::digest(id.as_bytes());
    u16::from_be_bytes([digest[0], digest[1]]) % shards.max(1)
}

/// `gsi1pk` of `id` of `kind`.
pub(crate) fn due_partition(kind: DueKind, id: &str, shards: u16) -> String {
    format!("{}{:02}", prefix(kind), shard_of(id, shards))
}

/// Every partition key the sweep reads for `kind`.
pub(crate) fn partitions(kind: DueKind, shards: u16) -> Vec<String> {
    (0..shards.max(1))
        .map(|shard| format!("{}{shard:02}", prefix(kind)))
        .chain(legacy(kind).map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spread_over_every_shard_evenly() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[usize::from(shard_of(&format!("ORD{i:08}"), 16))] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
        assert_eq!(shard_of("X", 16), shard_of("X", 16));
        assert_eq!(shard_of("X", 0), 0);
        assert_eq!(due_partition(DueKind::Order, "X", 1), "ORDER#DUE#00");
        assert_eq!(
            partitions(DueKind::Refund, 2),
            ["REFUND#DUE#00", "REFUND#DUE#01", "REFUND#OPEN"]
        );
    }
}
