//! Create the DynamoDB table described in `template.yaml`.
//!
//! The template is the single source of truth for the table's key schema and
//! indexes: this module reads the one `AWS::DynamoDB::Table` resource from it
//! and creates a table with exactly its `AttributeDefinitions`, `KeySchema`,
//! `GlobalSecondaryIndexes`, `BillingMode` and `StreamSpecification`, then
//! applies its `TimeToLiveSpecification`.
//!
//! CloudFormation short-form tags (`!Ref`, `!Sub`, `!GetAtt`, `!If`...) may
//! appear anywhere else in the template; the table's own properties must be
//! plain values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ProvisionedThroughput, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use serde::Deserialize;
use serde_yaml::Value;

/// The workspace root's `template.yaml`.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("template.yaml")
}

/// The properties of the template's table that the local table reproduces.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableSpec {
    pub attribute_definitions: Vec<AttributeDef>,
    pub key_schema: Vec<KeyElement>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<GsiSpec>,
    #[serde(default)]
    pub billing_mode: Option<String>,
    #[serde(default)]
    pub provisioned_throughput: Option<Throughput>,
    #[serde(default)]
    pub stream_specification: Option<StreamSpec>,
    #[serde(default)]
    pub time_to_live_specification: Option<TtlSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDef {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GsiSpec {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: ProjectionSpec,
    #[serde(default)]
    pub provisioned_throughput: Option<Throughput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionSpec {
    #[serde(default)]
    pub projection_type: Option<String>,
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Throughput {
    pub read_capacity_units: i64,
    pub write_capacity_units: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpec {
    pub stream_view_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlSpec {
    pub attribute_name: String,
    pub enabled: bool,
}

/// Reads the single `AWS::DynamoDB::Table` resource of a CloudFormation/SAM
/// template (YAML text).
pub fn table_spec_from_template(yaml: &str) -> Result<TableSpec> {
    let doc: Value = serde_yaml::from_str(yaml).context("template is not valid YAML")?;
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow!("template has no Resources mapping"))?;

    let mut tables = resources.iter().filter(|(_, resource)| {
        resource.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table")
    });
    let (name, resource) = tables
        .next()
        .ok_or_else(|| anyhow!("template has no AWS::DynamoDB::Table resource"))?;
    let name = name.as_str().unwrap_or("<non-string key>").to_owned();
    if let Some((other, _)) = tables.next() {
        bail!(
            "template has more than one AWS::DynamoDB::Table resource ({name}, {})",
            other.as_str().unwrap_or("<non-string key>")
        );
    }

    let properties = resource
        .get("Properties")
        .ok_or_else(|| anyhow!("table resource {name} has no Properties"))?;
    if let Some(path) = find_tag(properties, "Properties") {
        bail!(
            "table resource {name}: {path} uses a CloudFormation tag; \
             the table's properties must be plain values"
        );
    }
    serde_yaml::from_value(properties.clone())
        .with_context(|| format!("table resource {name}: unexpected Properties"))
}

/// Path of the first tagged value (`!Ref` ...) under `value`, if any.
fn find_tag(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Tagged(tagged) => Some(format!("{path} ({})", tagged.tag)),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_tag(item, &format!("{path}[{i}]"))),
        Value::Mapping(map) => map.iter().find_map(|(key, item)| {
            let key = key.as_str().unwrap_or("?");
            find_tag(item, &format!("{path}.{key}"))
        }),
        _ => None,
    }
}

impl TableSpec {
    fn attribute_definitions(&self) -> Result<Vec<AttributeDefinition>> {
        self.attribute_definitions
            .iter()
            .map(|a| {
                Ok(AttributeDefinition::builder()
                    .attribute_name(&a.attribute_name)
                    .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                    .build()?)
            })
            .collect()
    }

    fn billing_mode(&self) -> BillingMode {
        BillingMode::from(self.billing_mode.as_deref().unwrap_or("PROVISIONED"))
    }
}

fn key_schema(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>> {
    elements
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()?)
        })
        .collect()
}

fn throughput(t: &Throughput) -> Result<ProvisionedThroughput> {
    Ok(ProvisionedThroughput::builder()
        .read_capacity_units(t.read_capacity_units)
        .write_capacity_units(t.write_capacity_units)
        .build()?)
}

fn gsi(g: &GsiSpec) -> Result<GlobalSecondaryIndex> {
    let mut projection = Projection::builder();
    if let Some(t) = &g.projection.projection_type {
        projection = projection.projection_type(ProjectionType::from(t.as_str()));
    }
    for attr in &g.projection.non_key_attributes {
        projection = projection.non_key_attributes(attr);
    }
    let mut index = GlobalSecondaryIndex::builder()
        .index_name(&g.index_name)
        .set_key_schema(Some(key_schema(&g.key_schema)?))
        .projection(projection.build());
    if let Some(t) = &g.provisioned_throughput {
        index = index.provisioned_throughput(throughput(t)?);
    }
    Ok(index.build()?)
}

/// Creates `table_name` with the key schema, indexes, billing mode and stream
/// of the template's table, then enables its TTL. An existing table of that
/// name is left as it is.
pub async fn create_table_from_template(
    client: &Client,
    template: &Path,
    table_name: &str,
) -> Result<()> {
    let yaml = std::fs::read_to_string(template)
        .with_context(|| format!("cannot read {}", template.display()))?;
    let spec =
        table_spec_from_template(&yaml).with_context(|| format!("in {}", template.display()))?;
    create_table(client, &spec, table_name).await
}

/// Creates `table_name` from an already parsed [`TableSpec`].
pub async fn create_table(client: &Client, spec: &TableSpec, table_name: &str) -> Result<()> {
    let mut request = client
        .create_table()
        .table_name(table_name)
        .set_attribute_definitions(Some(spec.attribute_definitions()?))
        .set_key_schema(Some(key_schema(&spec.key_schema)?))
        .billing_mode(spec.billing_mode());
    if !spec.global_secondary_indexes.is_empty() {
        let indexes = spec
            .global_secondary_indexes
            .iter()
            .map(gsi)
            .collect::<Result<Vec<_>>>()?;
        request = request.set_global_secondary_indexes(Some(indexes));
    }
    if let Some(t) = &spec.provisioned_throughput {
        request = request.provisioned_throughput(throughput(t)?);
    }
    if let Some(stream) = &spec.stream_specification {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                .build()?,
        );
    }

    match request.send().await {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            return Ok(());
        }
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!("CreateTable {table_name} failed")));
        }
    }

    wait_until_active(client, table_name).await?;

    if let Some(ttl) = &spec.time_to_live_specification {
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&ttl.attribute_name)
                    .enabled(ttl.enabled)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("UpdateTimeToLive {table_name} failed"))?;
    }
    Ok(())
}

async fn wait_until_active(client: &Client, table_name: &str) -> Result<()> {
    const ATTEMPTS: u32 = 120;
    for _ in 0..ATTEMPTS {
        let out = client
            .describe_table()
            .table_name(table_name)
            .send()
            .await
            .with_context(|| format!("DescribeTable {table_name} failed"))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("table {table_name} did not become ACTIVE within 60 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_project_template() {
        let yaml = std::fs::read_to_string(template_path()).unwrap();
        let spec = table_spec_from_template(&yaml).unwrap();
        assert_eq!(spec.billing_mode.as_deref(), Some("PAY_PER_REQUEST"));
        assert_eq!(
            spec.key_schema,
            vec![KeyElement {
                attribute_name: "pk".into(),
                key_type: "HASH".into()
            }]
        );
        let names: Vec<_> = spec
            .attribute_definitions
            .iter()
            .map(|a| (a.attribute_name.as_str(), a.attribute_type.as_str()))
            .collect();
        assert_eq!(names, [("pk", "S"), ("gsi1pk", "S"), ("gsi1sk", "S")]);
        assert_eq!(spec.global_secondary_indexes.len(), 1);
        let gsi = &spec.global_secondary_indexes[0];
        assert_eq!(gsi.index_name, "by-status-due");
        assert_eq!(gsi.projection.projection_type.as_deref(), Some("ALL"));
        assert_eq!(
            spec.stream_specification,
            Some(StreamSpec {
                stream_view_type: "NEW_AND_OLD_IMAGES".into()
            })
        );
        assert_eq!(
            spec.time_to_live_specification,
            Some(TtlSpec {
                attribute_name: "ttl".into(),
                enabled: true
            })
        );
        // Every value converts to an SDK type.
        spec.attribute_definitions().unwrap();
        super::gsi(gsi).unwrap();
    }

    const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Environment:
      Variables:
        TABLE_NAME: !Ref T
        X: !If [C, !Sub '${A}', '']
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Resource: !GetAtt T.Arn
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions:
        - { AttributeName: pk, AttributeType: S }
      KeySchema:
        - { AttributeName: pk, KeyType: HASH }
      BillingMode: PAY_PER_REQUEST
Outputs:
  O:
    Value: !GetAtt T.StreamArn
"#;

    #[test]
    fn tags_elsewhere_do_not_matter() {
        let spec = table_spec_from_template(TEMPLATE).unwrap();
        assert_eq!(spec.attribute_definitions.len(), 1);
        assert!(spec.global_secondary_indexes.is_empty());
        assert_eq!(spec.time_to_live_specification, None);
    }

    #[test]
    fn a_tag_in_the_table_is_an_error() {
        let yaml = TEMPLATE.replace("BillingMode: PAY_PER_REQUEST", "BillingMode: !Ref Mode");
        let err = table_spec_from_template(&yaml).unwrap_err().to_string();
        assert!(err.contains("Properties.BillingMode"), "{err}");
    }

    #[test]
    fn exactly_one_table() {
        let none = TEMPLATE.replace("AWS::DynamoDB::Table", "AWS::SQS::Queue");
        assert!(table_spec_from_template(&none).is_err());
        let two = TEMPLATE.replace(
            "Resources:\n",
            "Resources:\n  U:\n    Type: AWS::DynamoDB::Table\n    Properties: {}\n",
        );
        let err = table_spec_from_template(&two).unwrap_err().to_string();
        assert!(err.contains("more than one"), "{err}");
    }
}
