//! Development tools for the Dingdang partner service.
//!
//! - [`table`]: create the payments table, locally (moto) or anywhere, from
//!   the `AWS::DynamoDB::Table` resource in `template.yaml`, so that the
//!   local table and the deployed one cannot drift apart.
//! - [`stream`]: the stream pump, the table's stream fed to the
//!   entitlements function under `cargo lambda watch`, which has no streams.

pub mod stream;
pub mod table;

pub use table::{create_table_from_template, template_path};
